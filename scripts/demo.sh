#!/usr/bin/env bash
# The main job on this machine: `pulumi up` of examples/demo against a moto server (a local AWS
# endpoint) with a local state backend, then a second preview that must show no changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PLL_DEV_CACHE:-$HOME/.cache/pulumi-lambda-layers-dev}
py="$root/.venv/bin/python"
version=$("$py" -c 'import importlib.metadata as m; print(m.version("pulumi"))')
bin="$cache/pulumi/v$version/bin"
[ -x "$bin/pulumi" ] || { echo "demo: Pulumi CLI missing in $bin: run make pulumi" >&2; exit 1; }

work="$root/out/demo"
rm -rf "$work" && mkdir -p "$work/state"   # moto starts empty, so the state must too

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

export PATH="$bin:$root/.venv/bin:$PATH"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export PULUMI_BACKEND_URL="file://$work/state" PULUMI_HOME="$work/pulumi-home" \
  PULUMI_CONFIG_PASSPHRASE="" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_PYTHON_CMD="$py" \
  PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

cd "$root/examples/demo"
echo "== moto on $AWS_ENDPOINT_URL, state in $work/state"
pulumi --non-interactive stack select --create demo
echo "== pulumi up (validates and fingerprints at program time, builds and publishes at apply)"
pulumi --non-interactive up --yes --skip-preview
echo "== stack outputs"
pulumi --non-interactive stack output --json
echo "== what the local AWS endpoint holds"
"$py" - <<'PY'
import boto3
lam = boto3.client("lambda")
for v in lam.list_layer_versions(LayerName="demo-deps")["LayerVersions"]:
    print(v["LayerVersionArn"], v.get("CompatibleRuntimes"), v.get("CompatibleArchitectures"))
PY
echo "== second preview: nothing changed, so nothing to do"
pulumi --non-interactive preview --expect-no-changes

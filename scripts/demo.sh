#!/usr/bin/env bash
# `make demo`: the library's mission in six steps, against a moto server (a local AWS endpoint)
# and a local state backend. One sharp layer shared by two functions and one Python layer with a
# native package (numpy, built in the Docker builder) on a third: publish v1, bump one pin, see
# it in the preview, publish v2, watch the functions move and v1 go, check drift, and end clean.
# Every step checks what it shows against the endpoint and fails the demo when it is not true.
#
# Needs: .venv, the Pulumi CLI (scripts/pulumi-cli.sh), Docker with the local image
# pulumi-lambda-layers-dev/python3.11:x86_64 (scripts/build-images.sh python3.11:x86_64).
# The checkout is never modified: examples/demo is copied to out/demo/program and edited there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
IMAGE=pulumi-lambda-layers-dev/python3.11:x86_64
start=$SECONDS

bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' off=$'\e[0m'
[ -t 1 ] || bold='' dim='' red='' green='' off=''
n=0
step() { n=$((n + 1)); printf '\n%s== %d. %s%s %s(%d s)%s\n' "$bold" "$n" "$1" "$off" "$dim" "$((SECONDS - start))" "$off"; shift; local l; for l in "$@"; do echo "   $l"; done; }
say() { echo "   $*"; }
run() { printf '%s$ %s%s\n' "$bold" "$*" "$off"; "$@"; }
ok() { echo "   ${green}ok${off}: $*"; }
die() { echo "${red}demo FAILED at step $n: $*${off}" >&2; exit 1; }

[ -x "$py" ] || die "no venv at $root/.venv: run make venv"
# Normally one line ("cached: ..."); it builds only when the venv's SDK is of another version.
# --quick: the tests' optimised CLI if it is there, else the quicker build make demo made.
bin=$(bash "$root/scripts/pulumi-cli.sh" --quick | tail -n 1) || true
[ -x "$bin/pulumi" ] || die "the Pulumi CLI is not built: run make pulumi (scripts/pulumi-cli.sh)"
docker image inspect "$IMAGE" >/dev/null 2>&1 \
  || die "local Docker image $IMAGE missing: run make demo-image (scripts/build-images.sh python3.11:x86_64)"

work="$root/out/demo"
rm -rf "$work" && mkdir -p "$work/state"   # moto starts empty, so the state must too
prog="$work/program"
cp -r "$root/examples/demo" "$prog"

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
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
# A layer cache of the demo's own: every run really builds both layers, as on a fresh machine.
export PLL_CACHE_DIR="$work/layer-cache"

# What the AWS endpoint holds, read with boto3, and the checks on it (exit 1 with the reason).
endpoint() {
  "$py" - "$@" <<'PY'
import io, json, sys, zipfile
import boto3

lam = boto3.client("lambda")
cmd, args = sys.argv[1], sys.argv[2:]

def fail(msg):
    print(f"   NOT TRUE: {msg}", file=sys.stderr)
    sys.exit(1)

def versions(name):
    return [v["LayerVersionArn"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]]

if cmd == "make-functions":  # make-functions name:runtime ...
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="demo-fn-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
    for spec in args:
        name, runtime = spec.split(":")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            if runtime.startswith("python"):
                z.writestr("app.py", "import numpy\n\ndef handler(event, context):\n"
                           "    return {'mean': float(numpy.mean(event['values']))}\n")
            else:
                z.writestr("index.mjs", "import sharp from 'sharp';\nexport const handler = "
                           "async (e) => (await sharp(Buffer.from(e.image, 'base64')).metadata());\n")
        fn = lam.create_function(FunctionName=name, Runtime=runtime, Role=role,
                                 Handler="app.handler" if runtime.startswith("python") else "index.handler",
                                 Code={"ZipFile": code.getvalue()}, Architectures=["x86_64"])
        print(f"   made {fn['FunctionArn']} ({runtime}, no layers)")
elif cmd == "functions":  # functions name ...: each function's layer ARNs
    for name in args:
        layers = [l["Arn"] for l in lam.get_function_configuration(FunctionName=name).get("Layers", [])]
        print(f"   function {name:15} layers: {', '.join(layers) or '(none)'}")
elif cmd == "versions":  # versions layer-name ...: the versions the endpoint holds
    for name in args:
        print(f"   layer    {name:15} versions: {', '.join(versions(name)) or '(none)'}")
elif cmd == "expect-on":  # expect-on version-arn function ...: each has exactly this version
    arn, names = args[0], args[1:]
    base = arn.rsplit(":", 1)[0]
    for name in names:
        layers = [l["Arn"] for l in lam.get_function_configuration(FunctionName=name).get("Layers", [])]
        if arn not in layers:
            fail(f"function {name} is not on {arn}; its layers: {layers or 'none'}")
        stale = [l for l in layers if l.startswith(base + ":") and l != arn]
        if stale:
            fail(f"function {name} still has {stale} besides {arn}")
elif cmd == "expect-versions":  # expect-versions layer-name version-arn ...: exactly these
    name, want = args[0], args[1:]
    got = versions(name)
    if sorted(got) != sorted(want):
        fail(f"layer {name} has versions {got or 'none'}, expected exactly {want}")
else:
    sys.exit(f"endpoint: unknown command {cmd}")
PY
}
output() { pulumi --non-interactive stack output "$1"; }

step "A local AWS endpoint and three functions that are not in the Pulumi program" \
  "moto on $AWS_ENDPOINT_URL, Pulumi state in $work/state, program copied to $prog." \
  "The pulumi-aws provider plugin cannot be had on this machine, so the functions are made" \
  "here with boto3, as another tool or team would; LayerAttachment keeps them on the layers."
endpoint make-functions demo-thumbnail:nodejs20.x demo-medium:nodejs20.x demo-stats:python3.11 \
  || die "could not make the functions in moto (log: $work/moto.log)"
cd "$prog"
run pulumi --non-interactive stack select --create demo

step "pulumi up: v1 of each layer, and the functions on it" \
  "At program time both layers are validated and fingerprinted (both locks are read as they" \
  "are, nothing is resolved); at apply sharp is built on this machine from its package-lock," \
  "numpy in a container of $IMAGE;" \
  "both are published and the attachments put them on the functions."
run pulumi --non-interactive up --yes --skip-preview --suppress-progress --suppress-outputs || die "pulumi up failed"
sharp_v1=$(output sharp_version_arn) numpy_v1=$(output numpy_version_arn)
say "stack outputs: sharp $sharp_v1, numpy $numpy_v1; packages:"
pulumi --non-interactive stack output --json | "$py" -c '
import json, sys
o = json.load(sys.stdin)
for k in ("sharp", "numpy"):
    print(f"     {k}: " + ", ".join(f"{p} {v}" for p, v in sorted(o[k + "_packages"].items())) + f" (builder: {o['"'"'builders'"'"'][k]})")'
say "what the AWS endpoint holds:"
endpoint versions demo-sharp demo-numpy
endpoint functions demo-thumbnail demo-medium demo-stats
endpoint expect-versions demo-sharp "$sharp_v1" && endpoint expect-versions demo-numpy "$numpy_v1" \
  || die "the endpoint does not hold v1 of each layer"
endpoint expect-on "$sharp_v1" demo-thumbnail demo-medium && endpoint expect-on "$numpy_v1" demo-stats \
  || die "the functions are not on v1"
ok "one version of each layer; sharp on demo-thumbnail and demo-medium, numpy on demo-stats"

step "Change one dependency: six 1.16.0 -> 1.17.0 in the Python layer's lock" \
  "(in the copy; examples/demo is left as it is)"
lock=layers/python/requirements.lock
sed -i 's/^six==1\.16\.0$/six==1.17.0/' "$lock"
diff -u "$root/examples/demo/$lock" "$lock" | sed 's/^/   /' && die "the lock did not change"
grep -qx 'six==1.17.0' "$lock" || die "the lock does not pin six==1.17.0"

step "pulumi preview --diff: the package change, before anything is built" \
  "The new fingerprint means a new layer version (a replace); packages shows old -> new."
run pulumi --non-interactive preview --diff --suppress-progress 2>&1 | tee "$work/preview-diff.txt" \
  || die "pulumi preview --diff failed"
grep -Eq 'six *: *"1\.16\.0" *=> *"1\.17\.0"' "$work/preview-diff.txt" \
  || die "the preview does not show six \"1.16.0\" => \"1.17.0\" (output: $work/preview-diff.txt)"
ok "the preview shows six \"1.16.0\" => \"1.17.0\""

step "pulumi up: v2 of the numpy layer, demo-stats moved to it, v1 gone" \
  "Pulumi publishes v2, updates the attachment (the function moves), then deletes v1." \
  "sharp did not change, so it stays on v1 with its two functions."
run pulumi --non-interactive up --yes --skip-preview --suppress-progress --suppress-outputs || die "the second pulumi up failed"
numpy_v2=$(output numpy_version_arn) sharp_now=$(output sharp_version_arn)
say "what the AWS endpoint holds:"
endpoint versions demo-sharp demo-numpy
endpoint functions demo-thumbnail demo-medium demo-stats
[ "$numpy_v2" != "$numpy_v1" ] || die "no new numpy layer version: still $numpy_v1"
[ "$sharp_now" = "$sharp_v1" ] || die "sharp changed ($sharp_v1 -> $sharp_now) though its lock did not"
endpoint expect-on "$numpy_v2" demo-stats || die "demo-stats did not move to $numpy_v2"
endpoint expect-versions demo-numpy "$numpy_v2" || die "v1 of demo-numpy is still there (or v2 is missing)"
endpoint expect-on "$sharp_v1" demo-thumbnail demo-medium && endpoint expect-versions demo-sharp "$sharp_v1" \
  || die "the sharp layer or its functions changed"
ok "demo-stats moved to $numpy_v2; $numpy_v1 deleted; sharp untouched"

step "lambda-layers drift: no function on a stale version" \
  "It lists the functions on any version of each layer; exit 1 when one is on an old version."
drift_check() {  # drift_check VERSION_ARN FUNCTIONS: all on it, none stale
  local out="$work/drift-$(cut -d: -f7 <<<"$1").txt"
  run lambda-layers drift --layer "$1" | tee "$out" || die "drift reports functions on a stale version of $1"
  grep -q "^$2 function(s) use .*; 0 stale\$" "$out" || die "drift does not find $2 function(s) on $1"
}
drift_check "$numpy_v2" 1
drift_check "$sharp_v1" 2
ok "all three functions on their layer's current version, nothing stale"

step "pulumi preview --expect-no-changes: the stack matches the endpoint" \
  "(--diff too: were anything left to do, it would show what)"
run pulumi --non-interactive preview --diff --suppress-progress --expect-no-changes || die "the last preview is not clean"
ok "no changes"

printf '\n%sdemo passed in %d s%s (work folder: %s)\n' "$green" "$((SECONDS - start))" "$off" "$work"

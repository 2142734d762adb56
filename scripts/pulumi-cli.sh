#!/usr/bin/env bash
# Build the Pulumi CLI, a Python language host and the dynamic-provider launcher from Go modules into a
# per-version cache, for the e2e tests and the demo. Idempotent; the last stdout line is the bin dir.
# A `pulumi` already on PATH at the SDK's version, with those tools beside it, is linked in instead.
# Two builds: the tests' (optimised, v<version>/bin, the one tests/e2e/pulumi_harness.py runs) and,
# with --quick, the demo's: compiled without optimisation or inlining (-N -l), 3.5 min instead of 6
# on 2 cores for a CLI ~10% slower, in v<version>-quick/bin; --quick takes the optimised one if cached.
#
# Env: PYTHON (interpreter whose `pulumi` package fixes the version; default .venv/bin/python),
#      PLL_DEV_CACHE (cache root), GO (go binary), PULUMI_CLI_VERSION (force the pkg/v3 version of the CLI),
#      PLL_GO_FETCH_JOBS (modules fetched at once, default 16).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CACHE=${PLL_DEV_CACHE:-$HOME/.cache/pulumi-lambda-layers-dev}
PKG=github.com/pulumi/pulumi/pkg/v3
SDK=github.com/pulumi/pulumi/sdk/v3

log() { echo "pulumi-cli.sh: $*" >&2; }
die() { echo "pulumi-cli.sh: error: $*" >&2; exit 1; }

[[ -x $PYTHON ]] || die "python interpreter '$PYTHON' not found: create the venv (python -m venv .venv && .venv/bin/pip install -e '.[dev]') or set PYTHON"
VER=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("pulumi"))' 2>/dev/null) \
  || die "the 'pulumi' Python package is not installed in $PYTHON"
OPTIMISED=$CACHE/pulumi/v$VER/bin
QUICK=0 BIN=$OPTIMISED GCFLAGS=
if [[ ${1:-} == --quick ]]; then QUICK=1 BIN=$CACHE/pulumi/v$VER-quick/bin GCFLAGS="all=-N -l"; fi
TOOLS=(pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python)

cli_version() { PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME=$CACHE/pulumi/home "$1/pulumi" version 2>/dev/null; }
cache_ok() {
  local t
  for t in "${TOOLS[@]}"; do [[ -x $1/$t ]] || return 1; done
  # Links to a CLI on PATH (below) must still be that version: an upgrade there retires them.
  if [[ -L $1/pulumi ]]; then [[ $(cli_version "$1") == "v$VER" ]]; else cli_version "$1" >/dev/null; fi
}
for dir in "$OPTIMISED" "$BIN"; do
  if cache_ok "$dir"; then
    log "cached: $(cli_version "$dir") in $dir"
    echo "$dir"
    exit 0
  fi
done

# A `pulumi` on PATH at exactly the SDK's version (e.g. from get.pulumi.com) saves the build, but
# only with the language host, its exec shim and the dynamic-provider launcher beside it: the engine
# looks for those next to `pulumi`. The (optimised) cache dir gets links to them, since the e2e tests
# and the demo take the tools from there.
path_cli() {
  local found dir t
  found=$(command -v pulumi 2>/dev/null) || return 1
  dir=$(cd "$(dirname "$(readlink -f "$found")")" && pwd)
  [[ $dir != "$(readlink -f "$OPTIMISED" 2>/dev/null)" ]] || return 1  # our own cache, found broken above
  [[ $(cli_version "$dir") == "v$VER" ]] || { log "pulumi on PATH ($found) is $(cli_version "$dir" || echo "not runnable"), not v$VER: building"; return 1; }
  for t in "${TOOLS[@]}"; do
    [[ -x $dir/$t ]] || { log "pulumi v$VER on PATH ($found) has no $t beside it: building"; return 1; }
  done
  echo "$dir"
}
if dir=$(path_cli); then
  mkdir -p "$(dirname "$OPTIMISED")"
  tmp=$(mktemp -d "$CACHE/pulumi/.link-v$VER.XXXXXX") && chmod 0755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT  # gone after the mv below; a failed ln leaves nothing behind
  for t in "${TOOLS[@]}"; do ln -s "$dir/$t" "$tmp/$t"; done
  rm -rf "$OPTIMISED.old"
  [[ ! -e $OPTIMISED ]] || mv "$OPTIMISED" "$OPTIMISED.old"
  mv -T "$tmp" "$OPTIMISED"
  rm -rf "$OPTIMISED.old"
  log "using pulumi v$VER on PATH from $dir (linked into $OPTIMISED)"
  echo "$OPTIMISED"
  exit 0
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x $GO ]] || die "go not found (looked for '$GO'): install Go >= 1.26 or set GO=/path/to/go"
# A toolchain download would need a host we cannot reach: fail clearly on an old local go instead.
export GOTOOLCHAIN=local

mkdir -p "$CACHE/pulumi"
# Leftovers of builds killed too hard for the trap below.
find "$CACHE/pulumi" -maxdepth 1 -name '.build-*' -mmin +180 -exec rm -rf {} +
# Same filesystem as the target so the final rename is atomic; nothing half-built is ever at $BIN.
WORK=$(mktemp -d "$CACHE/pulumi/.build-v$VER.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/src/langhost" "$WORK/bin"
cd "$WORK/src"
"$GO" mod init pll.local/pulumi-dev-build >/dev/null 2>&1

modinfo() { "$GO" mod download -json "$1" 2>/dev/null; }
json_field() { "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]) or "")' "$1"; }

# The CLI at exactly the SDK's version when the proxy has it; else the release commit (from the SDK tag's
# VCS origin) as a pseudo-version; else the oldest newer pkg/v3 release (this proxy mirror lacks most tags).
resolve_pkg() {
  local hash newer
  if [[ -n ${PULUMI_CLI_VERSION:-} ]]; then echo "$PULUMI_CLI_VERSION"; return; fi
  if modinfo "$PKG@v$VER" >/dev/null; then echo "v$VER"; return; fi
  hash=$(modinfo "$SDK@v$VER" | "$PYTHON" -c 'import json,sys; print((json.load(sys.stdin).get("Origin") or {}).get("Hash",""))')
  if [[ -n $hash ]] && modinfo "$PKG@$hash" >/dev/null; then modinfo "$PKG@$hash" | json_field Version; return; fi
  newer=$("$GO" list -m -versions "$PKG" | tr ' ' '\n' | tail -n +2 | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' \
    | { cat; echo "v$VER"; } | sort -V | sed -n "/^v${VER//./\\.}\$/,\$p" | grep -vx "v$VER" | head -1 || true)
  [[ -n $newer ]] || die "no $PKG version >= v$VER on the Go proxy; set PULUMI_CLI_VERSION=vX.Y.Z"
  log "warning: $PKG@v$VER is not on the Go proxy; building the CLI from $newer (the CLI is backward compatible with older SDKs)"
  echo "$newer"
}
PKGVER=$(resolve_pkg)
log "building pulumi CLI $PKGVER for the Python SDK $VER in $WORK (a cold build takes $([[ $QUICK == 1 ]] && echo 4-6 || echo 7-9) minutes)"

SDKDIR=$(modinfo "$SDK@v$VER" | json_field Dir)
[[ -n $SDKDIR ]] || die "cannot download $SDK@v$VER from the Go proxy ($("$GO" env GOPROXY))"

# `go install pkg@version` refuses modules whose go.mod has replace directives, so a wrapper module
# requires them and repeats their non-local replaces (the local `sdk/v3 => ../sdk` becomes a plain require).
for mod in "$PKG@$PKGVER" "$SDK@$PKGVER"; do
  gomod=$(modinfo "$mod" | json_field GoMod)
  [[ -n $gomod ]] || die "cannot download $mod from the Go proxy"
  "$GO" mod edit -json "$gomod" | "$PYTHON" -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if new.get("Version"):  # local path replaces have no version
        lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
        print("-replace=" + lhs + "=" + new["Path"] + "@" + new["Version"])
' | while read -r flag; do "$GO" mod edit "$flag"; done
done

# The upstream pulumi-language-python module is not on the proxy mirror reachable here, so a minimal
# host with the same contract (exec shim, PULUMI_CONFIG env, `virtualenv` runtime option) is compiled instead.
cat >langhost/main.go <<'EOF'
// Command pulumi-language-python is a minimal Python language host: it runs the SDK's exec shim.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set by -ldflags to the Python SDK version whose exec shim sits next to this binary.
var version = "3.0.0-dev"

// bailExitCode is what the exec shim exits with after it has already shown the user an error.
const bailExitCode = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
	shim   string
}

func main() {
	// The engine may pass --logtostderr/-v (already registered by the SDK's glog import) and --tracing.
	flag.String("tracing", "", "accepted for engine compatibility; tracing is not supported")
	flag.Parse()
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	h := &host{engine: flag.Arg(0), shim: filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{Init: func(s *grpc.Server) error {
		pulumirpc.RegisterLanguageRuntimeServer(s, h)
		return nil
	}})
	if err != nil {
		fail(err)
	}
	fmt.Println(handle.Port) // the engine reads the port from our first stdout line
	if err := <-handle.Done; err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pulumi-language-python:", err)
	os.Exit(1)
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// Nothing to pre-install: plugins are resolved on demand (dynamic providers ship next to the CLI).
func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// python honours the `virtualenv` runtime option like the upstream host, else PULUMI_PYTHON_CMD.
func python(info *pulumirpc.ProgramInfo, env []string) (string, []string) {
	if v, ok := info.GetOptions().GetFields()["virtualenv"]; ok && v.GetStringValue() != "" {
		venv := v.GetStringValue()
		if !filepath.IsAbs(venv) {
			venv = filepath.Join(info.GetRootDirectory(), venv)
		}
		bin := filepath.Join(venv, "bin")
		env = append(env, "VIRTUAL_ENV="+venv, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		return filepath.Join(bin, "python"), env
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd, env
	}
	return "python3", env
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	// Empty, not null: the shim iterates both without a None check.
	config, err := json.Marshal(nonNil(req.GetConfig()))
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(append([]string{}, req.GetConfigSecretKeys()...))
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	py, env := python(req.GetInfo(), env)
	program := req.GetInfo().GetEntryPoint()
	if program == "" {
		program = "."
	}
	args := []string{"-u", h.shim,
		"--monitor", req.GetMonitorAddress(), "--engine", h.engine,
		"--project", req.GetProject(), "--stack", req.GetStack(), "--organization", req.GetOrganization(),
		"--root_directory", req.GetInfo().GetRootDirectory(), "--pwd", req.GetInfo().GetProgramDirectory(),
		"--dry_run", strconv.FormatBool(req.GetDryRun()), "--parallel", strconv.Itoa(int(req.GetParallel())),
		program}
	cmd := exec.CommandContext(ctx, py, append(args, req.GetArgs()...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stdout, os.Stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run %s: %v", py, err)}, nil
	}
}
EOF

# go fetches GOMAXPROCS modules at a time (2 on this machine) and the proxy is slow to answer,
# so the steps that download the ~330 modules run with more fetches in flight.
fetch() { GOMAXPROCS=$FETCH_JOBS "$GO" "$@" >&2; }
FETCH_JOBS=${PLL_GO_FETCH_JOBS:-16}
fetch get "$PKG@$PKGVER" "$SDK@$PKGVER"
fetch get -tool "$PKG/cmd/pulumi@$PKGVER"
fetch mod tidy
fetch mod download
# --quick: without optimisation or inlining (-N -l), the cold compile of the ~1,700 packages.
build() { "$GO" build -trimpath ${GCFLAGS:+-gcflags="$GCFLAGS"} "$@" >&2; }
build -ldflags "-s -w -X $SDK/go/common/version.Version=$PKGVER" -o "$WORK/bin/" "$PKG/cmd/pulumi"
build -ldflags "-s -w -X main.version=$VER" -o "$WORK/bin/pulumi-language-python" ./langhost

# The exec shim comes from the SDK module at exactly the installed Python SDK's version.
install -m 0755 "$SDKDIR/python/cmd/pulumi-language-python-exec" "$WORK/bin/"
# Found next to `pulumi` (bundled plugin lookup); the engine passes the `virtualenv` option as PULUMI_RUNTIME_VIRTUALENV.
cat >"$WORK/bin/pulumi-resource-pulumi-python" <<'EOF'
#!/bin/sh
# Dynamic provider launcher: the project's venv when Pulumi.yaml names one, else PULUMI_PYTHON_CMD or python3.
if [ -n "${PULUMI_RUNTIME_VIRTUALENV:-}" ]; then
    case $PULUMI_RUNTIME_VIRTUALENV in /*) venv=$PULUMI_RUNTIME_VIRTUALENV ;; *) venv=$PWD/$PULUMI_RUNTIME_VIRTUALENV ;; esac
    exec "$venv/bin/python" -u -m pulumi.dynamic "$@"
fi
exec "${PULUMI_PYTHON_CMD:-python3}" -u -m pulumi.dynamic "$@"
EOF
chmod 0755 "$WORK/bin/pulumi-resource-pulumi-python"

PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME=$WORK/home "$WORK/bin/pulumi" version >&2 \
  || die "the freshly built pulumi binary does not run"
mkdir -p "$(dirname "$BIN")"
rm -rf "$BIN.old"
[[ ! -e $BIN ]] || mv "$BIN" "$BIN.old"  # a broken earlier cache (cache_ok failed) is replaced whole
mv -T "$WORK/bin" "$BIN"
rm -rf "$BIN.old"
cp "$WORK/src/go.mod" "$(dirname "$BIN")/wrapper-go.mod"  # records exactly what was built
log "built into $BIN"
echo "$BIN"

# Installs the pinned requirements into the layer's folder with the image's own pip.
# Environment: PLL_VERSION (X.Y of the runtime), PLL_IN, PLL_OUT, PLL_PREFIX (the layer's folder);
# PLL_WHEELS, if set: the folder the host fetches the pins' wheels into (build/prefetch.py); it
# writes "ready" (or "online": ask the index) to $PLL_WHEELS.done when it is done.
py=$(command -v python3 || command -v python)
# One interpreter for the version check and pip, run as `python -m pip` would run it: every start
# costs most of a second natively and seconds under emulation (arm64 on x86_64), and importing pip
# as many again.
"$py" - "$PLL_VERSION" "$PLL_IN/requirements.txt" "$PLL_OUT/$PLL_PREFIX" <<'EOF'
import os
import runpy
import shutil
import sys
import time

want, requirements, target = sys.argv[1:4]
have = "%d.%d" % sys.version_info[:2]
if have != want:
    sys.stderr.write("pll: the image has Python %s but the runtime is Python %s\n" % (have, want))
    sys.exit(86)
import pip

print("pll: pip %s (python %s)" % (pip.__version__, have), flush=True)
args = ["pip", "install", "--no-deps", "--no-compile", "--disable-pip-version-check",
        "--progress-bar", "off", "-r", requirements, "--target", target]
wheels = os.environ.get("PLL_WHEELS", "")
if wheels:
    # pip's configuration of this image could name other indexes than the requirements do: then
    # its choice online could differ from its choice among the host's files.
    homes = [os.path.join(d, "pip", "pip.conf")
             for d in os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":") if d]
    homes += ["/etc/pip.conf", os.path.join(sys.prefix, "pip.conf"),
              os.path.expanduser("~/.config/pip/pip.conf"), os.path.expanduser("~/.pip/pip.conf")]
    own = [p for p in homes if os.path.exists(p)]
    own += [k for k in ("PIP_CONFIG_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
                        "PIP_NO_INDEX", "PIP_NO_BINARY", "PIP_ONLY_BINARY") if os.environ.get(k)]
    if own:
        print("pll: the image configures pip (%s): asking the index, not using the host's files"
              % ", ".join(own), flush=True)
        wheels = ""
if wheels:
    try:  # most of pip's start-up, while the host may still be fetching
        import pip._internal.cli.main  # noqa: F401
    except ImportError:
        pass
    done, limit = wheels + ".done", 900  # the host's fetch gives up well before (timeouts)
    deadline = time.monotonic() + limit
    while not os.path.exists(done) and time.monotonic() < deadline:
        time.sleep(0.02)
    verdict = open(done).read().strip() if os.path.exists(done) else "not done in %ds" % limit
    if verdict != "ready":
        print("pll: asking the index (the host's fetch: %s)" % verdict, flush=True)
        wheels = ""
if wheels:
    print("pll: installing the wheels the host fetched, no index", flush=True)
    sys.argv = args[:2] + ["--no-index", "--find-links", wheels] + args[2:]
    try:
        runpy.run_module("pip", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        # Not what pip wants here (another Python, a musl image): all of it as without them.
        print("pll: pip could not install from the host's files (exit %s): asking the index"
              % exc.code, flush=True)
        shutil.rmtree(target, ignore_errors=True)
        os.execv(sys.executable, [sys.executable, "-m"] + args)
    sys.exit(0)
sys.argv = args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
EOF

# Installs the pinned requirements into the layer's folder with the image's own pip.
# Environment: PLL_VERSION (X.Y of the runtime), PLL_IN, PLL_OUT, PLL_PREFIX (the layer's folder).
py=$(command -v python3 || command -v python)
# One interpreter for the version check and pip, run as `python -m pip` would run it: every start
# costs most of a second natively and seconds under emulation (arm64 on x86_64), and importing pip
# as many again.
"$py" - "$PLL_VERSION" "$PLL_IN/requirements.txt" "$PLL_OUT/$PLL_PREFIX" <<'EOF'
import runpy
import sys

want, requirements, target = sys.argv[1:4]
have = "%d.%d" % sys.version_info[:2]
if have != want:
    sys.stderr.write("pll: the image has Python %s but the runtime is Python %s\n" % (have, want))
    sys.exit(86)
import pip

print("pll: pip %s (python %s)" % (pip.__version__, have), flush=True)
sys.argv = ["pip", "install", "--no-deps", "--no-compile", "--disable-pip-version-check",
            "--progress-bar", "off", "-r", requirements, "--target", target]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
EOF

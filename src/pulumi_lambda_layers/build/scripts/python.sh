# Installs the pinned requirements into the layer's folder with the image's own pip.
# Environment: PLL_VERSION (X.Y of the runtime), PLL_IN, PLL_OUT, PLL_PREFIX (the layer's folder).
py=$(command -v python3 || command -v python)
# One interpreter start for both (`pip --version` alone costs most of a second).
about=$("$py" -c 'import sys, pip; print("%d.%d" % sys.version_info[:2], pip.__version__)')
v=${about%% *}
if [ "$v" != "$PLL_VERSION" ]; then
  echo "pll: the image has Python $v but the runtime is Python $PLL_VERSION" >&2
  exit 86
fi
echo "pll: pip ${about#* } (python $v)"
"$py" -m pip install --no-deps --no-compile --disable-pip-version-check --progress-bar off \
  -r "$PLL_IN/requirements.txt" --target "$PLL_OUT/$PLL_PREFIX"

# Installs the locked packages into nodejs/node_modules with the image's own npm.
# Environment: PLL_VERSION (the runtime's major Node.js version), PLL_IN, PLL_OUT.
v=$(node -p 'process.versions.node.split(".")[0]')
if [ "$v" != "$PLL_VERSION" ]; then
  echo "pll: the image has Node.js $v but the runtime is Node.js $PLL_VERSION" >&2
  exit 86
fi
mkdir -p "$PLL_OUT/nodejs"
cp "$PLL_IN/package.json" "$PLL_IN/package-lock.json" "$PLL_OUT/nodejs/"
cd "$PLL_OUT/nodejs"
echo "pll: npm $(npm --version)"
npm ci --omit=dev --no-audit --no-fund
rm -f package.json package-lock.json

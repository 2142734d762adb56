# Installs the locked packages into nodejs/node_modules with the image's own npm.
# Environment: PLL_VERSION (the runtime's major Node.js version), PLL_IN, PLL_OUT.
# One node start for both: `npm --version` alone costs most of a second. npm's version is read
# from the package.json beside the npm-cli.js that `npm` resolves to.
about=$(node -e 'const fs = require("fs"), path = require("path"); let npm = "unknown";
try { npm = JSON.parse(fs.readFileSync(path.join(path.dirname(fs.realpathSync(process.argv[1])),
  "..", "package.json"))).version; } catch (e) {}
console.log(process.versions.node.split(".")[0], npm)' "$(command -v npm || echo npm)")
v=${about%% *}
if [ "$v" != "$PLL_VERSION" ]; then
  echo "pll: the image has Node.js $v but the runtime is Node.js $PLL_VERSION" >&2
  exit 86
fi
mkdir -p "$PLL_OUT/nodejs"
cp "$PLL_IN/package.json" "$PLL_IN/package-lock.json" "$PLL_OUT/nodejs/"
cd "$PLL_OUT/nodejs"
echo "pll: npm ${about#* }"
# The lock pins every tarball by integrity: a cached one is the same bytes, so npm need not ask
# the registry again (--prefer-offline).
npm ci --omit=dev --no-audit --no-fund --prefer-offline
rm -f package.json package-lock.json

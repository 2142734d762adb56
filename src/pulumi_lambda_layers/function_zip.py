"""Package function code deterministically; for Node.js ES modules, link node_modules to the layer."""

from __future__ import annotations

from pathlib import Path

from pulumi_lambda_layers.build.archive import ZipResult, make_zip
from pulumi_lambda_layers.errors import SpecError
from pulumi_lambda_layers.runtimes import get_runtime

# Node's ES module resolver ignores NODE_PATH, so `import sharp from 'sharp'` in an .mjs handler
# never looks in /opt/nodejs/node_modules. A node_modules symlink next to the handler makes the
# ordinary upward search find the layer's packages.
LAYER_NODE_MODULES = "/opt/nodejs/node_modules"


def package_function(source_dir: str | Path, output: str | Path, runtime: str,
                     link_layer_modules: bool | None = None) -> ZipResult:
    """Zip a function's code. link_layer_modules (default: on for Node.js functions that have ES
    module handlers and no node_modules of their own) adds `node_modules -> /opt/nodejs/node_modules`."""
    src = Path(source_dir)
    rt = get_runtime(runtime)
    if not src.is_dir():
        raise SpecError("source_dir", f"{src} is not a directory", "point it at the function code")
    if link_layer_modules and rt.language != "nodejs":
        raise SpecError("link_layer_modules", f"{rt.id} is not a Node.js runtime",
                        "the node_modules link is only for Node.js ES module handlers")
    has_own = (src / "node_modules").exists()
    if link_layer_modules and has_own:
        raise SpecError("link_layer_modules", f"{src / 'node_modules'} already exists",
                        "remove it (its packages belong in the layer) or set link_layer_modules=False")
    if link_layer_modules is None:
        link_layer_modules = rt.language == "nodejs" and not has_own and uses_es_modules(src)
    links = {"node_modules": LAYER_NODE_MODULES} if link_layer_modules else None
    return make_zip(src, Path(output), links=links)


def uses_es_modules(src: Path) -> bool:
    """Whether the code has .mjs files or a package.json with "type": "module"."""
    import json

    if any(src.rglob("*.mjs")):
        return True
    manifest = src / "package.json"
    if manifest.is_file():
        try:
            return bool(json.loads(manifest.read_text()).get("type") == "module")
        except ValueError:
            return False
    return False

"""Smoke test: import a layer's packages (and call a handler) in a container set up like Lambda."""

from __future__ import annotations

import collections
import json
import os
import posixpath
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.build.docker import _lines, docker_client, ensure_image
from pulumi_lambda_layers.errors import BuildError, SmokeError, SpecError, ValidationError
from pulumi_lambda_layers.runtimes import DOCKER_PLATFORM, UNAME_MACHINE, Architecture, Runtime, check_architecture, \
    get_runtime
from pulumi_lambda_layers.validate.checks import check_paths, check_symlinks, inspect_zip

__all__ = ["SmokeError", "SmokeResult", "lambda_environment", "layer_imports", "smoke_test"]

Log = Callable[[str], None]

FUNCTION_NAME = "pll-smoke-test"
DEFAULT_TIMEOUT_S = 300.0
# Lambda runs code as an unprivileged sandbox user (sbx_user1051, 993:990), so files the layer
# ships without read permission for others fail there; running as root would hide that.
SANDBOX_USER = "993:990"

_OPT, _TASK, _PLL = "/opt", "/var/task", "/pll"
_MARK = "@@pll-smoke@@ "
_TAIL_LINES = 40
_HINTS = 6
# Exit codes for an image that cannot stand in for the runtime (the layer is not to blame).
_EXIT_VERSION, _EXIT_ARCH, _EXIT_NO_INTERPRETER = 86, 87, 89

# Importing these would run code that is not meant to be imported (or is not a package at all).
_NOT_IMPORTED = {"bin", "lib", "lib64", "include", "share", "test", "tests", "setup", "conftest"}
_SITE_PACKAGES = re.compile(r"python/lib/python\d+\.\d+/site-packages/")
_NODE_MODULES = re.compile(r"nodejs/(?:node\d+/)?node_modules/")
_EXTENSION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.(?:cpython-[^.]+\.|abi3\.)?so")

# Runs first in every smoke container: refuse an image for another architecture (as the Docker
# builder does), then hand over to the runner with Lambda's environment already set.
_PRELUDE = """m=$(uname -m)
if [ "$m" != "{machine}" ]; then
  echo "pll: the image runs $m code but the layer is for {machine}" >&2; exit {arch_exit}
fi
exe=$(command -v {interpreter}) || {{
  echo "pll: the image has no {interpreter} on PATH ($PATH)" >&2; exit {no_exit}; }}
exec "$exe" {runner} {config}
"""

# Runs inside the image's Python (any 3.x): one JSON record per line on the real stdout; whatever
# the layer prints goes to stderr so it can never be mistaken for a record. __import__ (unlike
# importlib.import_module) leaves importlib's own frames out of tracebacks.
_PYTHON_RUNNER = r'''
import json, os, sys, time, traceback

MARK = "@@pll-smoke@@ "


class Context(object):
    def __init__(self, cfg):
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = cfg["function_arn"]
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = cfg["request_id"]
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.time() + cfg["timeout_s"]

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def origin_of(module):
    paths = list(getattr(module, "__path__", None) or [])
    return getattr(module, "__file__", None) or (paths[0] if paths else None)


def error_text():
    kind, exc, tb = sys.exc_info()
    return "".join(traceback.format_exception(kind, exc, tb.tb_next))  # not main()'s frame


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # the runner's folder is not on Lambda's path
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    have = "%d.%d" % sys.version_info[:2]
    if have != cfg["version"]:
        sys.stderr.write("pll: the image has Python %s but the runtime is Python %s\n"
                         % (have, cfg["version"]))
        return 86
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def emit(record):
        out.write(MARK + json.dumps(record) + "\n")
        out.flush()

    emit({"kind": "env", "version": "%d.%d.%d" % sys.version_info[:3],
          "executable": sys.executable})
    preloaded = set(sys.modules)
    for name in cfg["imports"]:
        emit({"kind": "begin", "name": name})
        start = time.time()
        try:
            __import__(name)
            module = sys.modules[name]
        except BaseException:
            emit({"kind": "import", "name": name, "ok": False, "seconds": time.time() - start,
                  "error": error_text()})
            continue
        emit({"kind": "import", "name": name, "ok": True, "seconds": time.time() - start,
              "origin": origin_of(module), "preloaded": name in preloaded})
    handler = cfg.get("handler")
    if handler:
        name = "handler " + handler
        emit({"kind": "begin", "name": name})
        start = time.time()
        try:
            modname = handler.rpartition(".")[0].replace("/", ".")
            fname = handler.rpartition(".")[2]
            __import__(modname)
            module = sys.modules[modname]
            function = getattr(module, fname, None)
            if not callable(function):
                raise AttributeError("%s has no function %r" % (origin_of(module), fname))
            result = function(cfg["event"], Context(cfg))
            emit({"kind": "handler", "name": name, "ok": True, "seconds": time.time() - start,
                  "result": json.loads(json.dumps(result))})
        except BaseException:
            emit({"kind": "handler", "name": name, "ok": False, "seconds": time.time() - start,
                  "error": error_text()})
    emit({"kind": "done"})
    return 0


sys.exit(main())
'''

# The same protocol for Node.js, in CommonJS so it runs on every Lambda Node version. ES-module
# packages are loaded with import() from the file require() would have found (import() of a bare
# name ignores NODE_PATH); handlers are found the way Lambda's runtime looks for them.
_NODE_RUNNER = r'''
'use strict';
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const { builtinModules } = require('module');

const MARK = '@@pll-smoke@@ ';
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const realWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const emit = (record) => realWrite(MARK + JSON.stringify(record) + '\n');
const errorText = (e) => (e && e.stack) ? String(e.stack) : String(e);
const isEsm = (e) => e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE');
const importFile = (file) => import(pathToFileURL(file).href);

async function load(name) {
  try {
    const mod = require(name);
    let origin = null;
    try { origin = require.resolve(name); } catch (e) { /* loaded already; the path is a bonus */ }
    return { mod, origin };
  } catch (e) {
    if (!isEsm(e)) throw e;
    const origin = require.resolve(name);
    return { mod: await importFile(origin), origin };
  }
}

async function loadHandlerModule(spec) {
  const base = path.basename(spec);
  const dot = base.indexOf('.');
  if (dot < 1 || dot === base.length - 1) throw new Error(`handler '${spec}' is not 'file.function'`);
  const stem = path.resolve(process.env.LAMBDA_TASK_ROOT, path.dirname(spec), base.slice(0, dot));
  const names = base.slice(dot + 1).split('.');
  for (const ext of ['.js', '.mjs', '.cjs']) {
    if (!fs.existsSync(stem + ext)) continue;
    if (ext === '.mjs') return { mod: await importFile(stem + ext), names };
    try {
      return { mod: require(stem + ext), names };
    } catch (e) {
      if (!isEsm(e)) throw e;
      return { mod: await importFile(stem + ext), names };
    }
  }
  return { mod: (await load(base.slice(0, dot))).mod, names };  // a handler module in the layer
}

function context() {
  const deadline = Date.now() + cfg.timeout_s * 1000;
  const env = process.env;
  return {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME, functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: cfg.function_arn, memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: cfg.request_id, logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME, callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

async function runHandler(spec) {
  const { mod, names } = await loadHandlerModule(spec);
  let fn = mod;
  for (const key of names) fn = fn == null ? undefined : fn[key];
  if (typeof fn !== 'function') throw new Error(`handler '${spec}': the module exports no function '${names.join('.')}'`);
  if (fn.length >= 3) {  // callback style
    return await new Promise((resolve, reject) => {
      const r = fn(cfg.event, context(), (err, value) => (err ? reject(err) : resolve(value)));
      if (r && typeof r.then === 'function') r.then(resolve, reject);
    });
  }
  return await fn(cfg.event, context());
}

async function main() {
  const have = process.versions.node.split('.')[0];
  if (have !== cfg.version) {
    process.stderr.write(`pll: the image has Node.js ${have} but the runtime is Node.js ${cfg.version}\n`);
    return 86;
  }
  emit({ kind: 'env', version: process.versions.node, executable: process.execPath });
  for (const name of cfg.imports) {
    emit({ kind: 'begin', name });
    const start = Date.now();
    try {
      const { origin } = await load(name);
      emit({ kind: 'import', name, ok: true, seconds: (Date.now() - start) / 1000,
             origin: origin === name ? null : origin, preloaded: builtinModules.includes(name) });
    } catch (e) {
      emit({ kind: 'import', name, ok: false, seconds: (Date.now() - start) / 1000,
             error: errorText(e) });
    }
  }
  if (cfg.handler) {
    const name = 'handler ' + cfg.handler;
    emit({ kind: 'begin', name });
    const start = Date.now();
    try {
      const result = await runHandler(cfg.handler);
      emit({ kind: 'handler', name, ok: true, seconds: (Date.now() - start) / 1000,
             result: result === undefined ? null : JSON.parse(JSON.stringify(result)) });
    } catch (e) {
      emit({ kind: 'handler', name, ok: false, seconds: (Date.now() - start) / 1000,
             error: errorText(e) });
    }
  }
  emit({ kind: 'done' });
  return 0;
}

main().then((code) => { process.exitCode = code; },
            (e) => { process.stderr.write(errorText(e) + '\n'); process.exitCode = 1; });
'''


@dataclass(frozen=True)
class SmokeResult:
    """What one smoke run found: imports that worked or failed, and the handler's answer."""

    imported: list[str]
    failed: dict[str, str]  # import name (or "handler file.fn") -> traceback / reason
    handler_result: Any
    duration_s: float
    runtime: str = ""
    architecture: str = ""
    image: str = ""
    origins: dict[str, str] = field(default_factory=dict)  # import name -> file it loaded from
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "runtime": self.runtime, "architecture": self.architecture,
                "image": self.image, "imported": self.imported, "failed": self.failed,
                "origins": self.origins, "handler_result": self.handler_result,
                "warnings": self.warnings, "duration_s": round(self.duration_s, 3)}


def smoke_test(zip_path: str | Path, runtime: Runtime | str, arch: Architecture | str, *,
               imports: Sequence[str] | None = None, handler: str | None = None,
               event: Any = None, function_dir: str | Path | None = None,
               image: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
               log: Log = print) -> SmokeResult:
    """Unpack the layer at /opt in a Lambda-like container, import its packages (all top-level
    ones, or `imports`), call `handler` once with `event`; SmokeError when anything fails.

    `image` defaults to the AWS Lambda base image of the runtime; a SpecError says when an image
    cannot stand in for the runtime (other Python/Node version or architecture, no interpreter).
    """
    zip_path = Path(zip_path)
    rt = runtime if isinstance(runtime, Runtime) else get_runtime(runtime)
    architecture = check_architecture(arch)
    event = {} if event is None else event
    _check_inputs(zip_path, handler, event, function_dir, timeout_s)
    image_name = image or rt.smoke_image()
    client = docker_client()
    image_obj = ensure_image(client, image_name, DOCKER_PLATFORM[architecture], log)
    with tempfile.TemporaryDirectory(prefix="pll-smoke-") as work:
        layer, task, pll = Path(work, "opt"), Path(work, "task"), Path(work, "pll")
        found = _unpack_layer(zip_path, rt, architecture, layer)
        wanted = list(imports) if imports is not None else found
        _stage_function(Path(function_dir) if function_dir else None, task)
        runner = _write_runner(pll, rt, wanted, handler, event, timeout_s)
        os.chmod(work, 0o755)  # the sandbox user must reach the mounts' sources
        log(f"smoke: {zip_path.name} for {rt.id} on {architecture} in {image_name}: "
            f"import {', '.join(wanted) or 'nothing'}" + (f", call {handler}" if handler else ""))
        volumes = {str(layer): {"bind": _OPT, "mode": "ro"},
                   str(task): {"bind": _TASK, "mode": "ro"},
                   str(pll): {"bind": _PLL, "mode": "ro"}}
        script = _PRELUDE.format(machine=UNAME_MACHINE[architecture], arch_exit=_EXIT_ARCH,
                                 interpreter="python3" if rt.language == "python" else "node",
                                 no_exit=_EXIT_NO_INTERPRETER, runner=runner,
                                 config=f"{_PLL}/smoke.json")
        run = _run_container(client, image_obj, script, lambda_environment(rt, handler), volumes,
                             timeout_s, log)
    _refuse_wrong_image(run, rt, architecture, image_name)
    result = _result(run, rt, architecture, image_name, set(found), timeout_s)
    for warning in result.warnings:
        log(f"smoke: warning: {warning}")
    if result.failed:
        tail = "\n".join(run.tail) if run.pending or not run.done else ""
        raise SmokeError(_message(zip_path, result, _static_hints(zip_path, rt, architecture),
                                  tail), result)
    log(f"smoke: ok ({_count(len(result.imported), 'import')} in {result.duration_s:.1f} s)")
    return result


def lambda_environment(runtime: Runtime, handler: str | None = None) -> dict[str, str]:
    """The environment variables Lambda sets for a function of this runtime (no credentials).

    PYTHONPATH is the search order Lambda's bootstrap ends up with (function code, then the
    layer, then the runtime's own libraries), since the smoke runner replaces that bootstrap.
    """
    env = {
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
                           "/var/task:/var/task/lib:/opt/lib",
        "LANG": "en_US.UTF-8", "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": _TASK, "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime.id}",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]00000000000000000000000000000000",
        # A region lets code create boto3 clients at import time, as it may in Lambda.
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
    }
    if handler:
        env["_HANDLER"] = handler
    if runtime.language == "python":
        env["PYTHONPATH"] = f"{_TASK}:{_OPT}/{runtime.layer_prefix}:{_OPT}/python:/var/runtime"
    else:
        env["NODE_PATH"] = (f"{_OPT}/nodejs/node{runtime.version}/node_modules:"
                            f"{_OPT}/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:"
                            f"{_TASK}")
    return env


def layer_imports(zip_path: str | Path, runtime: Runtime) -> list[str]:
    """The top-level import names (Python) or package names (Node.js) a layer zip provides."""
    with zipfile.ZipFile(zip_path) as zf:
        return _discover(zf, runtime)


# --- the layer and the function code on the host --------------------------------------------


def _check_inputs(zip_path: Path, handler: str | None, event: Any, function_dir: str | Path | None,
                  timeout_s: float) -> None:
    if not zip_path.is_file():
        raise SpecError("zip", f"{zip_path} does not exist", "give the path of a layer zip")
    if handler is not None and (not isinstance(handler, str) or "." not in handler.strip(".")):
        raise SpecError("handler", f"{handler!r} is not 'file.function'",
                        "e.g. handler='app.handler' for def handler(event, context) in app.py")
    if function_dir is not None and not Path(function_dir).is_dir():
        raise SpecError("function_dir", f"{function_dir} is not a directory",
                        "point it at the function's code (mounted at /var/task)")
    try:
        json.dumps(event)
    except (TypeError, ValueError) as exc:
        raise SpecError("event", f"cannot be sent as JSON ({exc})",
                        "pass dicts, lists, strings, numbers, booleans and None only") from None
    if timeout_s <= 0:
        raise SpecError("timeout_s", f"{timeout_s} is not positive", "e.g. timeout_s=300")


def _unpack_layer(zip_path: Path, runtime: Runtime, arch: Architecture, dest: Path) -> list[str]:
    """Extract the zip as Lambda does (modes, symlinks) after the validator's path checks;
    returns the import names found in it."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise SpecError("zip", f"{zip_path} is not a readable zip ({exc})",
                        "give the path of a layer zip") from None
    with zf:
        infos = zf.infolist()
        links = [i for i in infos if stat.S_ISLNK(i.external_attr >> 16)]
        if any(f.severity == "error" for f in [*check_paths(infos), *check_symlinks(zf, links)]):
            # Never write an entry that could land outside dest; the report says which and why.
            raise ValidationError(inspect_zip(zip_path, runtime, arch))
        dest.mkdir()
        real_dest = os.path.realpath(dest)
        try:
            for info in infos:
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                elif info not in links:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    os.chmod(target, (info.external_attr >> 16) & 0o777 or 0o644)
            # Links last, so no file is ever written through one; a link's folder must still
            # resolve inside the layer (links that are each inside can chain to the outside).
            for info in links:
                target = dest / info.filename.rstrip("/")
                parent = os.path.realpath(target.parent)
                if parent != real_dest and not parent.startswith(real_dest + os.sep):
                    raise SpecError("zip", f"{info.filename} would be created outside the layer "
                                    "through another symlink", "rebuild the zip without it")
                os.makedirs(parent, exist_ok=True)
                if target.is_symlink() or target.is_file():
                    target.unlink()
                os.symlink(zf.read(info).decode("utf-8"), target)
        except OSError as exc:
            raise SpecError("zip", f"cannot unpack {zip_path.name}: {exc}",
                            "the zip has conflicting entries; rebuild it") from None
        names = _discover(zf, runtime)
    for folder, _dirs, _files in os.walk(dest):
        os.chmod(folder, 0o755)
    return names


def _discover(zf: zipfile.ZipFile, runtime: Runtime) -> list[str]:
    names = [i.filename for i in zf.infolist() if not i.is_dir()]
    if runtime.language == "python":
        return _python_names(zf, names)
    return _node_names(zf, names)


def _python_names(zf: zipfile.ZipFile, names: list[str]) -> list[str]:
    # Every folder Lambda may import from, and the other versions' site-packages too: packages
    # built for another Python must fail here rather than be skipped.
    by_root: dict[str, list[str]] = {}
    for name in names:
        match = _SITE_PACKAGES.match(name)
        if match:
            by_root.setdefault(match.group(0), []).append(name[match.end():])
        elif name.startswith("python/") and not name.startswith("python/lib/"):
            by_root.setdefault("python/", []).append(name[len("python/"):])
    found: set[str] = set()
    for root, rests in by_root.items():
        folders = set()
        for rest in rests:
            parts = rest.split("/")
            if len(parts) == 1:
                module = _EXTENSION.fullmatch(parts[0])
                found.add(parts[0][:-3] if parts[0].endswith(".py") else
                          module.group(1) if module else "")
            elif len(parts) == 2 and (parts[1] == "__init__.py" or
                                      parts[1].startswith("__init__.") and parts[1].endswith(".so")):
                found.add(parts[0])
            if len(parts) > 1:
                folders.add(parts[0])
        for rest in rests:
            if rest.endswith(".dist-info/top_level.txt") and rest.count("/") == 1:
                # Namespace packages (no __init__.py) are only known from top_level.txt.
                text = zf.read(root + rest).decode("utf-8", errors="replace")
                found.update(line.strip() for line in text.splitlines()
                             if line.strip() in folders)
    return sorted(n for n in found
                  if n.isidentifier() and not n.startswith("_") and n not in _NOT_IMPORTED)


def _node_names(zf: zipfile.ZipFile, names: list[str]) -> list[str]:
    found: set[str] = set()
    for name in names:
        match = _NODE_MODULES.match(name)
        if not match:
            continue
        parts = name[match.end():].split("/")
        if parts[0].startswith("@") and len(parts) == 3 and parts[2] == "package.json":
            package = f"{parts[0]}/{parts[1]}"
        elif not parts[0].startswith("@") and len(parts) == 2 and parts[1] == "package.json":
            package = parts[0]
        else:
            continue
        if not package.startswith((".", "@types/")) and _node_has_entry(zf, name, names):
            found.add(package)
    return sorted(found)


def _node_has_entry(zf: zipfile.ZipFile, manifest: str, names: list[str]) -> bool:
    """Whether require('<package>') can work: a main, a root export or an index file."""
    folder = posixpath.dirname(manifest) + "/"
    try:
        pkg = json.loads(zf.read(manifest))
    except ValueError:
        return True  # let require() say what is wrong with it
    if not isinstance(pkg, dict):
        return True
    exports = pkg.get("exports")
    if isinstance(exports, dict) and exports and all(k.startswith(".") for k in exports):
        return "." in exports  # only subpaths exported (e.g. 'pkg/feature'): nothing at the root
    if exports is not None or pkg.get("main"):
        return True
    return any(folder + index in names for index in ("index.js", "index.json", "index.node"))


def _stage_function(function_dir: Path | None, dest: Path) -> None:
    """Copy the function code (keeping file modes: Lambda needs them world-readable too)."""
    if function_dir is None:
        dest.mkdir()
    else:
        shutil.copytree(function_dir, dest, symlinks=True)
    for folder, _dirs, _files in os.walk(dest):
        os.chmod(folder, 0o755)


def _write_runner(dest: Path, runtime: Runtime, imports: list[str], handler: str | None,
                  event: Any, timeout_s: float) -> str:
    dest.mkdir(mode=0o755)
    python = runtime.language == "python"
    script = "pll_smoke_runner.py" if python else "pll-smoke-runner.js"
    Path(dest, script).write_text(_PYTHON_RUNNER if python else _NODE_RUNNER)
    config = {"version": runtime.version, "imports": imports, "handler": handler, "event": event,
              "timeout_s": timeout_s, "request_id": "00000000-0000-4000-8000-000000000000",
              "function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"}
    Path(dest, "smoke.json").write_text(json.dumps(config))
    for path in dest.iterdir():
        os.chmod(path, 0o644)
    return f"{_PLL}/{script}"


# --- the container ----------------------------------------------------------------------------


@dataclass
class _Run:
    """What came out of one smoke container."""

    code: int
    records: list[dict[str, Any]]
    tail: list[str]
    duration_s: float
    timed_out: bool

    @property
    def done(self) -> bool:
        return any(r.get("kind") == "done" for r in self.records)

    @property
    def pending(self) -> str | None:
        """The import (or handler) that started but never reported: it crashed or hung."""
        finished = {r.get("name") for r in self.records if r.get("kind") in ("import", "handler")}
        begun = [str(r.get("name")) for r in self.records if r.get("kind") == "begin"]
        return begun[-1] if begun and begun[-1] not in finished else None


def _run_container(client: Any, image: Any, script: str, env: dict[str, str],
                   volumes: dict[str, dict[str, str]], timeout_s: float, log: Log) -> _Run:
    start = time.monotonic()
    container = client.containers.run(
        image.id, ["pll-smoke"], entrypoint=["/bin/sh", "-c", script], detach=True,
        environment=env, volumes=volumes, user=SANDBOX_USER, network_mode="none",
        working_dir=_TASK, read_only=True, tmpfs={"/tmp": "rw,exec,mode=1777,size=512m"})
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        try:
            container.kill()
        except Exception:  # already gone: nothing to stop
            pass

    timer = threading.Timer(timeout_s, stop)
    timer.start()
    records: list[dict[str, Any]] = []
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        for line in _lines(container.logs(stream=True, follow=True)):
            # A record can follow output the layer printed without a newline.
            before, mark, data = line.partition(_MARK)
            if before.strip() or not mark:
                tail.append(before)
                log("  " + before)
            if mark:
                try:
                    record = json.loads(data)
                except ValueError:
                    tail.append(line)
                    continue
                records.append(record)
                _log_record(record, log)
        code = int(container.wait().get("StatusCode", 1))
    finally:
        timer.cancel()
        container.remove(force=True)
    return _Run(code, records, list(tail), time.monotonic() - start, timed_out.is_set())


def _log_record(record: dict[str, Any], log: Log) -> None:
    kind, seconds = record.get("kind"), record.get("seconds", 0)
    if kind == "env":
        log(f"smoke: {record.get('executable')} {record.get('version')}")
    elif kind == "import":
        log(f"smoke: import {record.get('name')} {'ok' if record.get('ok') else 'FAILED'} "
            f"({seconds:.2f} s)")
    elif kind == "handler":
        verdict = "returned " + json.dumps(record.get("result")) if record.get("ok") else "FAILED"
        log(f"smoke: {record.get('name')} {verdict} ({seconds:.2f} s)")


def _refuse_wrong_image(run: _Run, runtime: Runtime, arch: Architecture, image: str) -> None:
    """An image that cannot stand in for the runtime is bad input, not a broken layer."""
    if run.records:
        return
    tail = "\n".join(run.tail)
    language = "Python" if runtime.language == "python" else "Node.js"
    fixes = {
        _EXIT_VERSION: f"pass an image with {language} {runtime.version}, e.g. the Lambda base "
                       f"image {runtime.smoke_image()}",
        _EXIT_ARCH: f"pass an image for {DOCKER_PLATFORM[arch]} (foreign architectures need "
                    "qemu/binfmt registered with the F flag)",
        _EXIT_NO_INTERPRETER: f"pass an image with {language} {runtime.version} on PATH, e.g. "
                              f"{runtime.smoke_image()}",
    }
    said = [line.removeprefix("pll: ") for line in run.tail if line.startswith("pll: ")]
    if run.code in fixes and said:
        raise SpecError("image", f"{image}: {said[-1]}", fixes[run.code])
    fix = "see the output; the image must be able to run /bin/sh and " + \
        ("python3" if runtime.language == "python" else "node")
    if "exec format error" in tail:
        fix = (f"the image is for another architecture than this machine and no emulator runs "
               f"it: register qemu binfmt for {arch} (e.g. `docker run --privileged --rm "
               f"tonistiigi/binfmt --install {arch}`), or test on a {arch} machine")
    raise BuildError(f"smoke test in {image}", f"the container exited with {run.code} before the "
                     "test started" + (" (timed out)" if run.timed_out else ""), tail, fix)


def _result(run: _Run, runtime: Runtime, arch: Architecture, image: str, found: set[str],
            timeout_s: float) -> SmokeResult:
    imported: list[str] = []
    failed: dict[str, str] = {}
    origins: dict[str, str] = {}
    warnings: list[str] = []
    handler_result: Any = None
    for record in run.records:
        kind, name = record.get("kind"), str(record.get("name", ""))
        if kind in ("import", "handler") and not record.get("ok"):
            failed[name] = str(record.get("error", "failed"))
        elif kind == "handler":
            handler_result = record.get("result")
        elif kind == "import":
            origin = str(record.get("origin") or "")
            if origin:
                origins[name] = origin
            if name not in found or origin.startswith(_OPT + "/"):
                imported.append(name)
            elif record.get("preloaded"):
                # The runtime itself loaded (or builds in) this name first; Lambda does the same,
                # so the layer's copy is dead weight rather than broken.
                warnings.append(f"{name}: the runtime's own module is used "
                                f"({origin or 'built in'}), never the layer's copy")
                imported.append(name)
            else:
                # Passing on another copy would hide a layer Lambda cannot load (wrong folder).
                failed[name] = (f"imported from {origin or 'a built-in module'}, not from the "
                                f"layer: the layer's copy is not on {runtime.id}'s path or is "
                                "shadowed by the image's or the function's own copy")
    pending = run.pending
    if pending is not None:
        why = (f"did not finish within {timeout_s:g} s" if run.timed_out
               else f"the process died here (exit code {run.code}{_signal_name(run.code)})")
        failed[pending] = why + "; see the output (last lines)"
    elif not run.done:
        failed["runner"] = (f"the smoke runner stopped early (exit code {run.code}"
                            f"{', timed out' if run.timed_out else ''}); see the output")
    return SmokeResult(imported, failed, handler_result, run.duration_s, runtime.id, arch, image,
                       origins, warnings)


def _signal_name(code: int) -> str:
    try:
        return f", {signal.Signals(code - 128).name}" if code > 128 else ""
    except ValueError:
        return ""


def _static_hints(zip_path: Path, runtime: Runtime, arch: Architecture) -> list[str]:
    """The validator's errors often say why an import failed (wrong CPU, Python, folder)."""
    try:
        report = inspect_zip(zip_path, runtime, arch)
    except Exception:  # a hint must never hide the smoke test's own result
        return []
    hints: list[str] = []
    per_code: collections.Counter[str] = collections.Counter()
    for finding in report.errors:
        per_code[finding.code] += 1
        if per_code[finding.code] <= 2 and len(hints) < _HINTS:
            where = f"{finding.path}: " if finding.path else ""
            hints.append(f"[{finding.code}] {where}{finding.message}")
    return hints


def _message(zip_path: Path, result: SmokeResult, hints: list[str], log_tail: str) -> str:
    """Which imports failed, each with its whole traceback (the cause is often at the top)."""
    handlers = [name for name in result.failed if name.startswith("handler ") or name == "runner"]
    failed = len(result.failed) - len(handlers)
    tried = len(result.imported) + failed
    what = [f"{failed} of {_count(tried, 'import')} failed"] if failed else []
    what += [f"the {name} failed" for name in handlers]
    lines = [f"smoke test of {zip_path.name} for {result.runtime} on {result.architecture} in "
             f"{result.image}: {', '.join(what) or 'failed'}"]
    for name, text in result.failed.items():
        lines.append(f"  {name}:")
        lines.extend("    " + line for line in text.rstrip().splitlines())
    if hints:
        lines.append("  the static check of the zip finds:")
        lines.extend("    " + hint for hint in hints)
    if log_tail:
        lines.append("  output (last lines):")
        lines.extend("    " + line for line in log_tail.rstrip().splitlines())
    return "\n".join(lines)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

"""Lambda's world on the host: layer (/opt), function (/var/task), runner (/pll), environment."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.errors import SpecError, ValidationError
from pulumi_lambda_layers.runtimes import Architecture, Runtime
from pulumi_lambda_layers.smoke.discover import discover
from pulumi_lambda_layers.validate import check_paths, check_symlinks, inspect_zip

FUNCTION_NAME = "pll-smoke-test"
OPT, TASK, PLL = "/opt", "/var/task", "/pll"
# The runners keep their file names in the container: they show in the tracebacks they send.
RUNNERS = {"python": "pll_smoke_runner.py", "nodejs": "pll-smoke-runner.js"}
CONFIG = "smoke.json"


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
        "LAMBDA_TASK_ROOT": TASK, "LAMBDA_RUNTIME_DIR": "/var/runtime",
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
        env["PYTHONPATH"] = f"{TASK}:{OPT}/{runtime.layer_prefix}:{OPT}/python:/var/runtime"
    else:
        env["NODE_PATH"] = (f"{OPT}/nodejs/node{runtime.version}/node_modules:"
                            f"{OPT}/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:"
                            f"{TASK}")
    return env


def unpack_layer(zip_path: Path, runtime: Runtime, arch: Architecture, dest: Path) -> list[str]:
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
        names = discover(zf, runtime)
    for folder, _dirs, _files in os.walk(dest):
        os.chmod(folder, 0o755)
    return names


def stage_function(function_dir: Path | None, dest: Path) -> None:
    """Copy the function code (keeping file modes: Lambda needs them world-readable too)."""
    if function_dir is None:
        dest.mkdir()
    else:
        shutil.copytree(function_dir, dest, symlinks=True)
    for folder, _dirs, _files in os.walk(dest):
        os.chmod(folder, 0o755)


def write_runner(dest: Path, runtime: Runtime, imports: list[str], handler: str | None,
                 event: Any, timeout_s: float) -> str:
    """Put the runner script and its config in dest (mounted at PLL); the runner's path there."""
    dest.mkdir(mode=0o755)
    script = RUNNERS[runtime.language]
    source = resources.files("pulumi_lambda_layers.smoke").joinpath("scripts").joinpath(script)
    Path(dest, script).write_bytes(source.read_bytes())
    config = {"version": runtime.version, "imports": imports, "handler": handler, "event": event,
              "timeout_s": timeout_s, "request_id": "00000000-0000-4000-8000-000000000000",
              "function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"}
    Path(dest, CONFIG).write_text(json.dumps(config))
    for path in dest.iterdir():
        os.chmod(path, 0o644)
    return f"{PLL}/{script}"

"""The smoke test: import a layer's packages (and call a handler) in a Lambda-like container."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.containers import docker_client, ensure_image
from pulumi_lambda_layers.errors import SmokeError, SpecError
from pulumi_lambda_layers.log import Sink as Log
from pulumi_lambda_layers.runtimes import (
    DOCKER_PLATFORM,
    Architecture,
    Runtime,
    check_architecture,
    get_runtime,
)
from pulumi_lambda_layers.smoke.discover import layer_imports
from pulumi_lambda_layers.smoke.result import (
    SmokeResult,
    failure_message,
    plural,
    smoke_result,
    static_hints,
)
from pulumi_lambda_layers.smoke.runner import refuse_wrong_image, run_smoke_container
from pulumi_lambda_layers.smoke.stage import (
    OPT,
    PLL,
    TASK,
    lambda_environment,
    stage_function,
    unpack_layer,
    write_runner,
)

__all__ = ["SmokeError", "SmokeResult", "lambda_environment", "layer_imports", "smoke_test"]


DEFAULT_TIMEOUT_S = 300.0


def smoke_test(zip_path: str | Path, runtime: Runtime | str, arch: Architecture | str, *,
               imports: Sequence[str] | None = None, handler: str | None = None,
               event: Any = None, function_dir: str | Path | None = None,
               image: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
               log: Log = print, client: Any = None) -> SmokeResult:
    """Unpack the layer at /opt in a Lambda-like container, import its packages (all top-level
    ones, or `imports`), call `handler` once with `event`; SmokeError when anything fails.

    `image` defaults to the AWS Lambda base image of the runtime; a SpecError says when an image
    cannot stand in for the runtime (other Python/Node version or architecture, no interpreter).
    `client` is a docker SDK client (default: from the environment).
    """
    zip_path = Path(zip_path)
    rt = runtime if isinstance(runtime, Runtime) else get_runtime(runtime)
    architecture = check_architecture(arch)
    event = {} if event is None else event
    _check_inputs(zip_path, handler, event, function_dir, timeout_s)
    image_name = image or rt.smoke_image()
    client = client if client is not None else docker_client()
    image_obj = ensure_image(client, image_name, DOCKER_PLATFORM[architecture], log)
    with tempfile.TemporaryDirectory(prefix="pll-smoke-") as work:
        layer, task, pll = Path(work, "opt"), Path(work, "task"), Path(work, "pll")
        found = unpack_layer(zip_path, rt, architecture, layer)
        wanted = list(imports) if imports is not None else found
        stage_function(Path(function_dir) if function_dir else None, task)
        runner = write_runner(pll, rt, wanted, handler, event, timeout_s)
        os.chmod(work, 0o755)  # the sandbox user must reach the mounts' sources
        log(f"smoke: {zip_path.name} for {rt.id} on {architecture} in {image_name}: "
            f"import {', '.join(wanted) or 'nothing'}" + (f", call {handler}" if handler else ""))
        volumes = {str(layer): {"bind": OPT, "mode": "ro"},
                   str(task): {"bind": TASK, "mode": "ro"},
                   str(pll): {"bind": PLL, "mode": "ro"}}
        run = run_smoke_container(client, image_obj, rt, architecture, runner,
                                  lambda_environment(rt, handler), volumes, timeout_s, log)
    refuse_wrong_image(run, rt, architecture, image_name)
    result = smoke_result(run, rt, architecture, image_name, set(found), timeout_s)
    for warning in result.warnings:
        log(f"smoke: warning: {warning}")
    if result.failed:
        tail = "\n".join(run.tail) if run.pending or not run.done else ""
        hints = static_hints(zip_path, rt, architecture)
        raise SmokeError(failure_message(zip_path, result, hints, tail), result)
    log(f"smoke: ok ({plural(len(result.imported), 'import')} in {result.duration_s:.1f} s)")
    return result


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

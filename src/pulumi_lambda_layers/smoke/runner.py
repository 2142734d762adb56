"""The smoke container: the runner in the image as Lambda's sandbox user; its records."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Any

from pulumi_lambda_layers import containers
from pulumi_lambda_layers.containers import Refusal
from pulumi_lambda_layers.errors import BuildError, SpecError
from pulumi_lambda_layers.log import Sink as Log
from pulumi_lambda_layers.runtimes import DOCKER_PLATFORM, UNAME_MACHINE, Architecture, Runtime
from pulumi_lambda_layers.smoke.stage import CONFIG, PLL, TASK

# Lambda runs code as an unprivileged sandbox user (sbx_user1051, 993:990), so files the layer
# ships without read permission for others fail there; running as root would hide that.
SANDBOX_USER = "993:990"
MARK = "@@pll-smoke@@ "  # starts every record line of the runners (smoke/scripts)


@dataclass
class SmokeRun:
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


def run_smoke_container(client: Any, image: Any, runtime: Runtime, arch: Architecture,
                        runner: str, env: dict[str, str], volumes: dict[str, dict[str, str]],
                        timeout_s: float, log: Log) -> SmokeRun:
    """Run the runner (a path under PLL) in image, read-only and offline, as Lambda would."""
    records: list[dict[str, Any]] = []
    # Its own tail: the layer's output without the records (the container's tail has both).
    tail: collections.deque[str] = collections.deque(maxlen=containers.TAIL_LINES)

    def read(line: str) -> None:
        # A record can follow output the layer printed without a newline.
        before, mark, data = line.partition(MARK)
        if before.strip() or not mark:
            tail.append(before)
            log("  " + before)
        if mark:
            try:
                record = json.loads(data)
            except ValueError:
                tail.append(line)
                return
            records.append(record)
            _log_record(record, log)

    interpreter = "python3" if runtime.language == "python" else "node"
    prelude = containers.script("pulumi_lambda_layers.smoke", "prelude.sh")
    end = containers.run(
        client, image, ["pll-smoke", UNAME_MACHINE[arch], interpreter, runner, f"{PLL}/{CONFIG}"],
        read, timeout_s=timeout_s, entrypoint=["/bin/sh", "-c", prelude], environment=env,
        volumes=volumes, user=SANDBOX_USER, network_mode="none", working_dir=TASK,
        read_only=True, tmpfs={"/tmp": "rw,exec,mode=1777,size=512m"})
    return SmokeRun(end.code, records, list(tail), end.duration_s, end.timed_out)


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


def refuse_wrong_image(run: SmokeRun, runtime: Runtime, arch: Architecture, image: str) -> None:
    """An image that cannot stand in for the runtime is bad input, not a broken layer."""
    if run.records:
        return
    tail = "\n".join(run.tail)
    language = "Python" if runtime.language == "python" else "Node.js"
    fixes = {
        Refusal.VERSION: f"pass an image with {language} {runtime.version}, e.g. the Lambda base "
                         f"image {runtime.smoke_image()}",
        Refusal.ARCHITECTURE: f"pass an image for {DOCKER_PLATFORM[arch]} (foreign architectures "
                              "need qemu/binfmt registered with the F flag)",
        Refusal.INTERPRETER: f"pass an image with {language} {runtime.version} on PATH, e.g. "
                             f"{runtime.smoke_image()}",
    }
    end = containers.Exit(run.code, run.tail, run.duration_s, run.timed_out)
    if end.refusal is not None and end.said:
        raise SpecError("image", f"{image}: {end.said}", fixes[end.refusal])
    fix = "see the output; the image must be able to run /bin/sh and " + \
        ("python3" if runtime.language == "python" else "node")
    if "exec format error" in tail:
        fix = (f"the image is for another architecture than this machine and no emulator runs "
               f"it: register qemu binfmt for {arch} (e.g. `docker run --privileged --rm "
               f"tonistiigi/binfmt --install {arch}`), or test on a {arch} machine")
    raise BuildError(f"smoke test in {image}", f"the container exited with {run.code} before the "
                     "test started" + (" (timed out)" if run.timed_out else ""), tail, fix)

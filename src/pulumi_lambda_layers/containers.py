"""The one container runner (docker SDK): start, stream the lines, name the exit, clean up."""

from __future__ import annotations

import collections
import enum
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.log import Sink as Log

TAIL_LINES = 40
# Our scripts say why they refuse an image on a line of their own that starts with this.
SAID = "pll: "


class Refusal(enum.IntEnum):
    """Exit codes of our container scripts (build/scripts, smoke/scripts) for an image that cannot
    stand in for the target: the input is wrong, not the packages or the layer."""

    VERSION = 86       # another Python or Node.js version than the runtime
    ARCHITECTURE = 87  # the image runs code for another CPU than the layer's
    INTERPRETER = 89   # no python3 / node on PATH


@dataclass(frozen=True)
class Exit:
    """How one container ended: its exit code, the tail of its output, how long it ran."""

    code: int
    tail: list[str]
    duration_s: float
    timed_out: bool

    @property
    def refusal(self) -> Refusal | None:
        """The refusal the exit code names, if it is one of ours."""
        try:
            return Refusal(self.code)
        except ValueError:
            return None

    @property
    def said(self) -> str | None:
        """The last reason a script of ours gave (without the prefix)."""
        return next((line.removeprefix(SAID) for line in reversed(self.tail)
                     if line.startswith(SAID)), None)


def signal_name(code: int) -> str:
    """', SIGSEGV' for an exit code that means the process died of a signal, else ''."""
    try:
        return f", {signal.Signals(code - 128).name}" if code > 128 else ""
    except ValueError:
        return ""


def script(package: str, *names: str) -> str:
    """The text of script files shipped as package data, joined in order."""
    folder = resources.files(package).joinpath("scripts")
    return "".join(folder.joinpath(name).read_text(encoding="utf-8") for name in names)


def run(client: Any, image: Any, command: list[str], on_line: Log, *,
        timeout_s: float | None = None, **options: Any) -> Exit:
    """Run command in image to its end, each output line to on_line; remove it, whatever happens.

    options go to the SDK's containers.run (volumes, environment, user, network_mode, ...); after
    timeout_s the container is killed and the Exit says so.
    """
    start = time.monotonic()
    container = client.containers.run(image.id, command, detach=True, **options)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        try:
            container.kill()
        except Exception:  # already gone: nothing to stop
            pass

    timer = threading.Timer(timeout_s, stop) if timeout_s is not None else None
    if timer is not None:
        timer.start()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        for line in lines(container.logs(stream=True, follow=True)):
            tail.append(line)
            on_line(line)
        code = int(container.wait().get("StatusCode", 1))
    finally:
        if timer is not None:
            timer.cancel()
        container.remove(force=True)
    return Exit(code, list(tail), time.monotonic() - start, timed_out.is_set())


def locked_down(user: str, tmp: str) -> dict[str, Any]:
    """run options for code we do not trust (a package's setup.py, its install scripts): run as
    user (never root), with no capability and no way to gain one (setuid binaries included),
    on a read-only root filesystem; /tmp a tmpfs with these mount options. Only the mounts the
    caller gives as rw can be written besides."""
    return {"user": user, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "read_only": True, "tmpfs": {"/tmp": tmp}}


def lines(stream: Iterable[bytes]) -> Iterator[str]:
    """Text lines from the SDK's log stream, whose chunks can end in the middle of a line."""
    buf = b""
    for chunk in stream:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode(errors="replace").rstrip("\r")
    if buf:
        yield buf.decode(errors="replace")


def docker_client() -> Any:
    """A docker SDK client that answers, or a BuildError saying how to start Docker."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # the SDK raises several types for "no daemon"; all mean the same
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise BuildError("docker", f"no Docker engine answers at {where} ({exc.__class__.__name__})",
                         fix="start Docker (`sudo systemctl start docker`, or `dockerd &`; in this "
                             "repo `make docker`), set DOCKER_HOST, or use builder='local'") from None


def ensure_image(client: Any, image: str, platform: str, log: Log) -> Any:
    """The image object, pulled for the platform when it is not present locally."""
    import docker.errors

    try:
        return client.images.get(image)
    except docker.errors.ImageNotFound:
        pass
    log(f"docker: pulling {image} for {platform}")
    try:
        return client.images.pull(image, platform=platform)
    except docker.errors.APIError as exc:
        raise BuildError("docker pull", f"could not get image {image} for {platform}: "
                         f"{exc.explanation or exc}",
                         fix="check the registry is reachable (docker login, proxy), or build/load "
                             "the image locally and pass image=") from None

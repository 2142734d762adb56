"""Build backends (docker, local) behind one small protocol, and the one place that picks one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec

Log = Callable[[str], None]


class Builder(Protocol):
    """Installs a fingerprinted spec's packages into `root`, laid out as the layer's zip root."""

    name: str

    def build(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """Which builder ran and why it was the one."""

    builder: str
    reason: str


class NoCompatibleWheel(Exception):
    """The local builder found no binary wheel for some package on the target (auto falls back)."""


def run_builder(spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> Outcome:
    """Run the spec's builder; for 'auto', local when every package has a wheel, docker otherwise."""
    from pulumi_lambda_layers.docker import DockerBuilder
    from pulumi_lambda_layers.local import LocalBuilder

    if spec.builder == "docker":
        DockerBuilder().build(spec, fp, root, log)
        return Outcome("docker", "builder='docker' was asked for")
    if spec.builder == "local":
        try:
            LocalBuilder().build(spec, fp, root, log)
        except NoCompatibleWheel as exc:
            from pulumi_lambda_layers.errors import BuildError

            raise BuildError("local build", str(exc),
                             fix="use builder='docker' (or 'auto') to compile it in a "
                                 "Lambda-compatible container") from None
        return Outcome("local", "builder='local' was asked for")
    try:
        LocalBuilder().build(spec, fp, root, log)
        return Outcome("local", "auto: every package has a prebuilt artifact for "
                                f"{spec.runtime.id} {spec.architecture}")
    except NoCompatibleWheel as exc:
        reason = f"auto: {exc}; building in Docker instead"
        log(reason)
        _empty(root)
        DockerBuilder().build(spec, fp, root, log)
        return Outcome("docker", reason)


def _empty(root: Path) -> None:
    import shutil

    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()

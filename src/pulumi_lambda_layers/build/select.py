"""The install step: the one place that picks the builder (local or Docker) and runs it, once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pulumi_lambda_layers.errors import (
    BuildError,
    NoCompatibleWheel,
    NotSplittable,
    step,
)
from pulumi_lambda_layers.log import emit
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec

if TYPE_CHECKING:
    from pulumi_lambda_layers.build.docker import DockerBuilder
    from pulumi_lambda_layers.build.incremental import Assembled

Log = Callable[[str], None]

__all__ = ["Builder", "Installed", "Log", "NoCompatibleWheel", "Outcome", "install", "step_name"]


class Builder(Protocol):
    """Installs a fingerprinted spec's packages into `root`, laid out as the layer's zip root."""

    name: str

    def build(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """Which builder ran and why it was the one."""

    builder: str
    reason: str


@dataclass(frozen=True)
class Installed:
    """What the install step made: a folder laid out as the zip root (the package step zips it),
    or, for a local build package by package, the zip already assembled from packs."""

    outcome: Outcome
    root: Path | None = None
    assembled: Assembled | None = None


def step_name(step: str, spec: LayerSpec, builder: str | None = None) -> str:
    """How a failure names its step: "install (docker, python3.11 x86_64)"."""
    target = f"{spec.runtime.id} {spec.architecture}"
    return f"{step} ({builder}, {target})" if builder else f"{step} ({target})"


def install(spec: LayerSpec, fp: Fingerprint, work: Path, staged: Path) -> Installed:
    """Install the spec's packages for its target. The builder is chosen here and only here:
    docker when asked (Python: package by package, in one container run); local (package by
    package when it can) when asked or for auto; auto builds in Docker only the packages the
    local builder cannot install (Python: the rest are installed here, one layer of both;
    Node.js: the whole layer), without installing anything locally again."""
    if spec.source.kind == "source_dir":
        return Installed(Outcome("none", "source_dir is shipped as it is"), root=spec.source.path)
    if spec.builder == "docker":
        asked = Outcome("docker", "builder='docker' was asked for")
        if spec.runtime.language == "python":
            return _docker_packs(spec, fp, work, staged, asked)
        return _whole(_docker(spec), spec, fp, work, asked)
    reason = ("builder='local' was asked for" if spec.builder == "local" else
              f"auto: every package has a prebuilt artifact for {spec.runtime.id} "
              f"{spec.architecture} or is a pure-Python sdist built here")
    if spec.builder == "auto" and spec.runtime.language == "python":
        return _mixed(spec, fp, work, staged, reason)
    try:
        return _local(spec, fp, work, staged, Outcome("local", reason))
    except NoCompatibleWheel as exc:
        if spec.builder == "local":
            raise BuildError(step_name("install", spec, "local"), str(exc),
                             fix="use builder='docker' (or 'auto') to compile it in a "
                                 "Lambda-compatible container") from None
        why = f"auto: {exc}; building in Docker instead"
        emit(why)
        return _whole(_docker(spec), spec, fp, work, Outcome("docker", why))


def _docker_packs(spec: LayerSpec, fp: Fingerprint, work: Path, staged: Path,
                  outcome: Outcome) -> Installed:
    """Only the packages without a pack of this build image, in one container; else whole."""
    from pulumi_lambda_layers.build import incremental

    builder = _docker(spec)
    try:
        with step(step_name("install", spec, "docker")):
            return Installed(outcome, assembled=incremental.build_docker(spec, fp, work, staged,
                                                                         emit, builder))
    except NotSplittable as exc:
        emit(f"package: cannot pack package by package ({exc}); packing the whole layer")
    return _whole(builder, spec, fp, work, outcome)


def _mixed(spec: LayerSpec, fp: Fingerprint, work: Path, staged: Path, reason: str) -> Installed:
    """auto, Python: the packages with a wheel installed here, the others in one container."""
    from pulumi_lambda_layers.build import incremental

    builder = _docker(spec)
    try:
        with step(step_name("install", spec, "auto")):
            done = incremental.build_mixed(spec, fp, work, staged, emit, builder)
    except NotSplittable as exc:
        # As a local build that cannot be split: the whole layer here, else all of it in Docker.
        emit(f"package: cannot pack package by package ({exc}); packing the whole layer")
        from pulumi_lambda_layers.build.local import LocalBuilder

        try:
            return _whole(LocalBuilder(), spec, fp, work, Outcome("local", reason))
        except NoCompatibleWheel as no_wheel:
            why = f"auto: {no_wheel}; building in Docker instead"
            emit(why)
            return _whole(builder, spec, fp, work, Outcome("docker", why))
    there = done.stats.docker
    if not there:
        return Installed(Outcome("local", reason), assembled=done)
    return Installed(Outcome("docker", f"auto: no prebuilt wheel for {spec.runtime.id} "
                                       f"{spec.architecture} of {', '.join(there)}: built in "
                                       f"Docker, the other {len(fp.packages) - len(there)} "
                                       "packages here"), assembled=done)


def _local(spec: LayerSpec, fp: Fingerprint, work: Path, staged: Path,
           outcome: Outcome) -> Installed:
    """Package by package (only packages without a cached pack are installed), else whole."""
    from pulumi_lambda_layers.build import incremental
    from pulumi_lambda_layers.build.local import LocalBuilder

    try:
        with step(step_name("install", spec, "local")):
            return Installed(outcome, assembled=incremental.build(spec, fp, work, staged, emit))
    except NotSplittable as exc:
        emit(f"package: cannot pack package by package ({exc}); packing the whole layer")
    return _whole(LocalBuilder(), spec, fp, work, outcome)


def _whole(builder: Builder, spec: LayerSpec, fp: Fingerprint, work: Path,
           outcome: Outcome) -> Installed:
    root = work / f"full-{builder.name}"
    root.mkdir()
    with step(step_name("install", spec, builder.name)):
        builder.build(spec, fp, root, emit)
    return Installed(outcome, root=root)


def _docker(spec: LayerSpec) -> DockerBuilder:
    import os

    from pulumi_lambda_layers.build.docker import CACHE_OWNER_ENV, DockerBuilder

    # Whose package cache volume builds use (docs/sandbox.md): the spec's owner (the Pulumi
    # project), else $PLL_CACHE_OWNER, else the deployer's uid.
    return DockerBuilder(cache_owner=spec.cache_owner or os.environ.get(CACHE_OWNER_ENV, ""))

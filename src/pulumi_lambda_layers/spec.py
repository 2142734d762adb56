"""LayerSpec: the one place user input is checked, turned into a frozen, validated description."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pulumi_lambda_layers.errors import SpecError
from pulumi_lambda_layers.runtimes import (
    Architecture,
    Runtime,
    check_architecture,
    did_you_mean,
    get_runtime,
)

SourceKind = Literal["requirements", "lock", "package_json", "source_dir"]
BuilderName = Literal["auto", "docker", "local"]
BUILDERS: tuple[BuilderName, ...] = ("auto", "docker", "local")
SOURCE_KINDS: tuple[SourceKind, ...] = ("requirements", "lock", "package_json", "source_dir")
SLIM_SWITCHES = ("strip_tests", "strip_type_stubs")
PROXY_KEYS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
LOCK_NAMES = ("uv.lock", "poetry.lock")

# Every key a spec accepts; a misspelt key gets a "did you mean" hint instead of being ignored.
SPEC_KEYS = ("runtime", "architecture", *SOURCE_KINDS, "builder", "image", "network_mode",
             "proxy", "ca_bundle", "exclude", "slim", "frozen")


@dataclass(frozen=True)
class Source:
    """Where the dependencies come from: one kind and the file or folder that holds it."""

    kind: SourceKind
    path: Path  # absolute; never part of the content hash

    @property
    def lock_format(self) -> str:
        """For kind 'lock': uv.lock | poetry.lock | requirements (pinned requirements file)."""
        return self.path.name if self.path.name in LOCK_NAMES else "requirements"


@dataclass(frozen=True)
class LayerSpec:
    """A validated layer build request. Build with `make_spec` or `spec_from_dict`."""

    runtime: Runtime
    architecture: Architecture
    source: Source
    builder: BuilderName = "auto"
    image: str | None = None
    network_mode: str | None = None
    proxy: Mapping[str, str] = field(default_factory=dict)
    ca_bundle: Path | None = None
    exclude: tuple[str, ...] = ()
    slim: tuple[str, ...] = ()
    frozen: bool = False  # never resolve: a lock must give every version
    # Whose Docker package-cache volume the build uses (docs/sandbox.md): the Pulumi project for
    # the resource; "" for $PLL_CACHE_OWNER, else the deployer's uid. Not content: never hashed.
    cache_owner: str = ""

    @property
    def build_image(self) -> str:
        """The image a docker build uses: the override or the runtime's SAM build image."""
        return self.image or self.runtime.default_image(self.architecture)


def make_spec(**kwargs: Any) -> LayerSpec:
    """Keyword form of `spec_from_dict`, e.g. make_spec(runtime="python3.11", requirements="r.txt")."""
    return spec_from_dict(kwargs)


def spec_from_dict(args: Mapping[str, Any], base_dir: str | Path | None = None) -> LayerSpec:
    """Validate a mapping of arguments key by key; relative paths are taken from base_dir (cwd)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    for key in args:
        if key not in SPEC_KEYS:
            hint = did_you_mean(str(key), SPEC_KEYS)
            raise SpecError(str(key), "unknown argument",
                            hint or "valid arguments: " + ", ".join(SPEC_KEYS))
    given = {k: v for k, v in args.items() if v is not None}
    if "runtime" not in given:
        raise SpecError("runtime", "missing", "e.g. runtime='python3.12' or 'nodejs20.x'")
    runtime = get_runtime(given["runtime"])
    architecture = check_architecture(given.get("architecture", "x86_64"))
    source = _source(given, runtime, base)
    return LayerSpec(
        runtime=runtime,
        architecture=architecture,
        source=source,
        builder=_builder(given.get("builder", "auto")),
        image=_optional_str(given, "image"),
        network_mode=_optional_str(given, "network_mode"),
        proxy=_proxy(given.get("proxy", {})),
        ca_bundle=_ca_bundle(given.get("ca_bundle"), base),
        exclude=_str_tuple(given.get("exclude", ()), "exclude"),
        slim=_slim(given.get("slim", ())),
        frozen=_frozen(given.get("frozen", False), source),
    )


def _source(given: Mapping[str, Any], runtime: Runtime, base: Path) -> Source:
    named = [k for k in SOURCE_KINDS if k in given]
    if not named:
        raise SpecError("requirements", "no dependency source given",
                        "give exactly one of requirements=, lock=, package_json=, source_dir=")
    if len(named) > 1:
        raise SpecError(named[1], f"two dependency sources given ({' and '.join(named)})",
                        "give exactly one of requirements=, lock=, package_json=, source_dir=")
    kind: SourceKind = named[0]
    path = (base / os.fspath(given[kind])).resolve()
    if kind == "source_dir":
        if not path.is_dir():
            raise SpecError(kind, f"{path} is not a directory", "point it at the folder to ship")
        if not any(path.iterdir()):
            raise SpecError(kind, f"{path} is empty", "put the layer's files in it")
        return Source(kind, path)
    if not path.is_file():
        raise SpecError(kind, f"{path} does not exist", "check the path (relative to the program)")
    if path.stat().st_size == 0 or not path.read_text(errors="replace").strip():
        raise SpecError(kind, f"{path} is empty", "list at least one dependency")
    wants = "nodejs" if kind == "package_json" else "python"
    if runtime.language != wants:
        other = "package_json=" if wants == "python" else "requirements= or lock="
        raise SpecError(kind, f"a {wants} dependency source cannot build a {runtime.id} layer",
                        f"use {other} for {runtime.language} runtimes")
    if kind == "package_json" and path.name != "package.json":
        raise SpecError(kind, f"expected a package.json, got {path.name}",
                        "point it at package.json (package-lock.json is read beside it)")
    return Source(kind, path)


def _frozen(value: Any, source: Source) -> bool:
    if not isinstance(value, bool):
        raise SpecError("frozen", f"expected True or False, got {value!r}")
    if value and source.kind == "requirements":
        raise SpecError("frozen", "requirements= are resolved on every run, which frozen forbids",
                        "use lock= with a pinned file (uv.lock, poetry.lock, pip-compile output)")
    if value and source.kind == "package_json" \
            and not source.path.with_name("package-lock.json").is_file():
        raise SpecError("frozen", f"{source.path} has no package-lock.json beside it",
                        "commit the lock (`npm install --package-lock-only`) or drop frozen")
    return value


def _builder(value: Any) -> BuilderName:
    if value in BUILDERS:
        return value  # type: ignore[no-any-return]
    hint = did_you_mean(str(value), BUILDERS)
    raise SpecError("builder", f"unknown builder {value!r}",
                    (hint + "; " if hint else "") + "use 'auto', 'docker' or 'local'")


def _optional_str(given: Mapping[str, Any], key: str) -> str | None:
    value = given.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(key, f"expected a non-empty string, got {value!r}")
    return value


def _proxy(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise SpecError("proxy", f"expected a mapping like {{'HTTPS_PROXY': 'http://proxy:3128'}}, "
                                 f"got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, val in value.items():
        upper = str(key).upper()
        if upper not in PROXY_KEYS:
            hint = did_you_mean(upper, PROXY_KEYS)
            raise SpecError(f"proxy.{key}", "unknown proxy variable",
                            hint or "use HTTP_PROXY, HTTPS_PROXY or NO_PROXY")
        out[upper] = str(val)
    return out


def _ca_bundle(value: Any, base: Path) -> Path | None:
    if value is None:
        return None
    path: Path = (base / os.fspath(value)).resolve()
    if not path.is_file():
        raise SpecError("ca_bundle", f"{path} does not exist", "give a PEM file of CA certificates")
    if b"BEGIN CERTIFICATE" not in path.read_bytes()[:1 << 20]:
        raise SpecError("ca_bundle", f"{path} holds no PEM certificate",
                        "give a PEM file with -----BEGIN CERTIFICATE----- blocks")
    return path


def _str_tuple(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _slim(value: Any) -> tuple[str, ...]:
    if value is True:
        return SLIM_SWITCHES
    if value is False:
        return ()
    switches = _str_tuple(value, "slim")
    for switch in switches:
        if switch not in SLIM_SWITCHES:
            hint = did_you_mean(switch, SLIM_SWITCHES)
            raise SpecError("slim", f"unknown slimming switch {switch!r}",
                            hint or "valid switches: " + ", ".join(SLIM_SWITCHES))
    return tuple(sorted(set(switches)))

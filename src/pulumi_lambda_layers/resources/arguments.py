"""LambdaLayerBuild's arguments: which are needed at preview, which may be Outputs, config defaults."""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

NAMESPACE = "lambda-layers"

# They decide the content hash, which is computed at preview: an Output there cannot be known yet.
PREVIEW_TIME = ("runtime", "architecture", "requirements", "lock", "package_json", "source_dir",
                "builder", "image", "network_mode", "proxy", "ca_bundle", "exclude", "slim",
                "frozen", "resolution_max_age", "import_version")


@dataclass(kw_only=True)
class LambdaLayerBuildArgs:
    """The arguments of a LambdaLayerBuild (its docstring says what each does).

    Plain values: the ones that decide the content hash, computed at preview (runtime,
    architecture, the source, how it is built). `pulumi.Input`: the ones used at apply time only;
    an Output (from another resource, a StackReference or secret config) is fine there. None
    means: the `lambda-layers:` config default where there is one, else the built-in default.
    """

    runtime: str
    architecture: str = "x86_64"
    requirements: str | None = None
    lock: str | None = None
    package_json: str | None = None
    source_dir: str | None = None
    builder: str | None = None  # config lambda-layers:builder, else "auto"
    image: str | None = None
    network_mode: str | None = None  # config lambda-layers:network
    proxy: Mapping[str, str] | None = None
    ca_bundle: str | None = None  # config lambda-layers:caBundle
    exclude: Sequence[str] | None = None
    slim: Sequence[str] | bool | None = None
    frozen: bool = False
    resolution_max_age: float | str | None = None  # config lambda-layers:resolutionMaxAge
    import_version: str | None = None
    # Apply time: Inputs.
    layer_name: pulumi.Input[str] | None = None
    description: pulumi.Input[str] | None = None
    license_info: pulumi.Input[str] | None = None
    compatible_runtimes: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    share_with: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    retain_versions: pulumi.Input[int] | None = None  # config retainVersions, else 0
    retain_on_delete: pulumi.Input[bool] = False
    s3_bucket: pulumi.Input[str] | None = None  # config lambda-layers:s3Bucket
    cache_bucket: pulumi.Input[str] | None = None  # config lambda-layers:cacheBucket
    cache_prefix: pulumi.Input[str] | None = None  # config lambda-layers:cachePrefix, else ""
    cache_signing_key: pulumi.Input[str] | None = None  # secret config cacheSigningKey
    region: pulumi.Input[str] | None = None  # config lambda-layers:region
    profile: pulumi.Input[str] | None = None  # config lambda-layers:profile
    assume_role_arn: pulumi.Input[str] | None = None
    smoke_test: pulumi.Input[bool | Sequence[str]] | None = None  # config smokeTest, else False
    smoke_image: pulumi.Input[str] | None = None  # config lambda-layers:smokeImage
    consumer_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    force_delete: pulumi.Input[bool] = False
    # SPDX ids or expressions no package may be under; config lambda-layers:denyLicenses
    deny_licenses: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None

    @staticmethod
    def of(kwargs: Mapping[str, Any]) -> LambdaLayerBuildArgs:
        """The args from keyword arguments; a misspelt one is a TypeError with the closest name."""
        known = {f.name for f in dataclasses.fields(LambdaLayerBuildArgs)}
        for key in kwargs:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"LambdaLayerBuild got an unexpected argument {key!r}{hint}")
        if "runtime" not in kwargs:
            raise TypeError("LambdaLayerBuild needs runtime= (e.g. runtime=\"python3.12\")")
        return LambdaLayerBuildArgs(**kwargs)


Problem = dict[str, str]  # {"property": ..., "reason": ...}: what preview shows as a failure


def preview_time_outputs(args: LambdaLayerBuildArgs) -> list[Problem]:
    """An Output (or an Output inside a list or dict) given where preview needs the value."""
    problems = []
    for name in PREVIEW_TIME:
        if _holds_output(getattr(args, name)):
            problems.append({"property": name, "reason": (
                f"{name} is an Output, but the content hash is computed at preview, so {name} "
                "must be known then: pass a plain value (a literal, or pulumi.Config().get(...))")})
    return problems


def _holds_output(value: Any) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, Mapping):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_output(v) for v in value)
    return False


# --- pulumi config defaults ---------------------------------------------------------------------

def _text(value: str) -> str:
    return value


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError
    return number


def _switch_or_names(value: str) -> bool | list[str]:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    names = json.loads(value)
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ValueError
    return names


def _names(value: str) -> list[str]:
    names = json.loads(value)
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError
    return names


# config key -> (argument, parser, what a good value looks like)
CONFIG_DEFAULTS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "builder": ("builder", _text, "auto, local or docker"),
    "network": ("network_mode", _text, "a Docker network mode, e.g. host"),
    "caBundle": ("ca_bundle", _text, "a path to a PEM file"),
    "cacheBucket": ("cache_bucket", _text, "a bucket name"),
    "cachePrefix": ("cache_prefix", _text, "a key prefix, e.g. layers/"),
    "cacheSigningKey": ("cache_signing_key", _text, "a secret (pulumi config set --secret)"),
    "s3Bucket": ("s3_bucket", _text, "a bucket name"),
    "smokeTest": ("smoke_test", _switch_or_names, 'true, false or a JSON list, e.g. ["numpy"]'),
    "smokeImage": ("smoke_image", _text, "an image name"),
    "retainVersions": ("retain_versions", _count, "a whole number >= 0"),
    "region": ("region", _text, "an AWS region, e.g. eu-west-1"),
    "profile": ("profile", _text, "an AWS profile name"),
    "consumerRoles": ("consumer_roles", _names, "a JSON list of IAM role ARNs"),
    "denyLicenses": ("deny_licenses", _names, 'a JSON list of SPDX ids, e.g. ["GPL-3.0-only"]'),
}
# Read elsewhere (program_time, resolution_memo), known here so they are not called misspelt.
OTHER_KEYS = ("resolutionMaxAge", "refreshResolution")


def stack_config() -> dict[str, Any]:
    """The stack's `lambda-layers:` config, key (without the namespace) -> raw value."""
    from pulumi.runtime import config

    raw = {**config.get_config_env(), **config.CONFIG.get()}
    prefix = NAMESPACE + ":"
    return {k.removeprefix(prefix): v for k, v in raw.items() if k.startswith(prefix)}


def config_defaults(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Argument defaults from the stack's lambda-layers: config, and what is wrong in it (an
    unknown key, with the closest known one; a value that does not parse)."""
    defaults: dict[str, Any] = {}
    problems: list[Problem] = []
    known = sorted([*CONFIG_DEFAULTS, *OTHER_KEYS])
    for key, value in sorted(raw.items()):
        full = f"{NAMESPACE}:{key}"
        if key in OTHER_KEYS:
            continue
        if key not in CONFIG_DEFAULTS:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {NAMESPACE}:{close[0]}? " if close else ""
            problems.append({"property": full, "reason": (
                f"{full} is not a setting of this library: {hint}(`pulumi config rm {full}`; "
                f"the settings are {', '.join(known)})")})
            continue
        argument, parse, wanted = CONFIG_DEFAULTS[key]
        try:
            parsed = parse(str(value))
        except ValueError:
            problems.append({"property": full, "reason": f"{full}: expected {wanted}, got "
                             f"{value!r} (`pulumi config set {full} ...`)"})
            continue
        defaults[argument] = parsed  # cacheSigningKey: the resource makes it a secret
    return defaults, problems


def with_defaults(args: LambdaLayerBuildArgs, defaults: Mapping[str, Any]) -> LambdaLayerBuildArgs:
    """args, each argument left as None taken from defaults (an explicit argument wins)."""
    given = {k: v for k, v in defaults.items() if getattr(args, k) is None}
    return dataclasses.replace(args, **given)


def as_list(value: Any) -> Any:
    """An Input list as the provider gets it: a list (items may be Outputs), an Output of one, or
    a string left a string so the check says "write [...]" instead of splitting it."""
    if isinstance(value, pulumi.Output):
        return value.apply(lambda v: v if v is None or isinstance(v, str) else list(v))
    if value is None or isinstance(value, str):
        return value
    return list(value)


__all__ = ["CONFIG_DEFAULTS", "LambdaLayerBuildArgs", "PREVIEW_TIME", "as_list", "config_defaults",
           "preview_time_outputs", "stack_config", "with_defaults"]

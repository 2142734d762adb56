"""Program-time fingerprints of all layers of a program at once, handed to Pulumi as Outputs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from pulumi_lambda_layers.build.slots import count_from_env
from pulumi_lambda_layers.errors import ResolveError, SpecError
from pulumi_lambda_layers.sources.resolution_memo import (
    CONFIG_MAX_AGE,
    CONFIG_REFRESH,
    MAX_AGE_ARGUMENT,
    Freshness,
    parse_max_age,
    parse_switch,
)

if TYPE_CHECKING:
    import pulumi

# Resolving is mostly waiting on the index (a cold `uv pip compile` of requests here: 2.5 s, a
# third of it CPU), so many run at once: 16 covers a typical program in one round and keeps uv
# processes and index connections to a number a registry and a laptop tolerate.
DEFAULT_PARALLEL_RESOLVES = 16
_ENV = "PLL_PARALLEL_RESOLVES"

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


class ProgramFingerprint(NamedTuple):
    """What the program gives a LambdaLayerBuild: hash, packages, build inputs, input errors."""

    content_hash: str
    packages: dict[str, str]
    build: dict[str, Any]
    errors: list[dict[str, str]]


def parallel_resolves() -> int:
    """$PLL_PARALLEL_RESOLVES, else DEFAULT_PARALLEL_RESOLVES."""
    return count_from_env(_ENV, "resolutions") or DEFAULT_PARALLEL_RESOLVES


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(parallel_resolves(), thread_name_prefix="pll-fingerprint")
        return _pool


def freshness_of(max_age: object, config: Mapping[str, Any]) -> Freshness:
    """The argument, else lambda-layers:resolutionMaxAge, else the default; refreshResolution
    forces a fresh resolution. SpecError names the argument or config key that is wrong."""
    if max_age is not None:
        seconds = parse_max_age(max_age, MAX_AGE_ARGUMENT)
    elif config.get(CONFIG_MAX_AGE) is not None:
        seconds = parse_max_age(config[CONFIG_MAX_AGE], CONFIG_MAX_AGE)
    else:
        seconds = Freshness().max_age
    refresh = config.get(CONFIG_REFRESH)
    return Freshness(seconds, parse_switch(refresh) if refresh is not None else False)


def program_config() -> dict[str, Any]:
    """The lambda-layers: config keys of the stack this program runs in (raw strings)."""
    import pulumi

    cfg = pulumi.Config("lambda-layers")
    return {CONFIG_MAX_AGE: cfg.get("resolutionMaxAge"),
            CONFIG_REFRESH: cfg.get("refreshResolution")}


def program_time_fingerprint(args: Mapping[str, Any], freshness: Freshness | None = None
                             ) -> ProgramFingerprint:
    """Validate and hash, never build; bad input comes back as errors against its argument."""
    from pulumi_lambda_layers.sources.credentials import redact_files
    from pulumi_lambda_layers.sources.fingerprint import fingerprint
    from pulumi_lambda_layers.spec import spec_from_dict

    try:
        spec = spec_from_dict(args)
        fp = fingerprint(spec, freshness)
    except SpecError as exc:
        return ProgramFingerprint("", {}, {}, [{"property": exc.argument, "reason": exc.one_line()}])
    except ResolveError as exc:
        kind = next((k for k in ("requirements", "lock", "package_json") if args.get(k)), "runtime")
        return ProgramFingerprint("", {}, {}, [{"property": kind, "reason": str(exc)}])
    build = {
        "builder": spec.builder, "image": spec.image, "network_mode": spec.network_mode,
        "proxy": dict(spec.proxy), "ca_bundle": str(spec.ca_bundle) if spec.ca_bundle else None,
        "exclude": list(spec.exclude), "slim": list(spec.slim), "source_kind": spec.source.kind,
        # Persisted in the state: credentials masked; the provider takes them back from
        # source_path at apply (credentials.restore).
        "source_path": str(spec.source.path), "install_files": redact_files(fp.install_files),
    }
    return ProgramFingerprint(fp.content_hash, fp.packages, build, [])


def start(args: Mapping[str, Any], max_age: object = None,
          config: Mapping[str, Any] | None = None) -> Future[ProgramFingerprint]:
    """Fingerprint on the shared pool; returns at once so the program declares the next layer."""
    try:
        freshness = freshness_of(max_age, program_config() if config is None else config)
    except SpecError as exc:
        return refused([{"property": MAX_AGE_ARGUMENT, "reason": exc.one_line()}])
    # Copied: the caller's dicts may change after the resource is declared.
    return _executor().submit(program_time_fingerprint, dict(args), freshness)


def refused(errors: list[dict[str, str]]) -> Future[ProgramFingerprint]:
    """A fingerprint that was never started, because of these input errors."""
    done: Future[ProgramFingerprint] = Future()
    done.set_result(ProgramFingerprint("", {}, {}, errors))
    return done


class FingerprintOutputs(NamedTuple):
    """A ProgramFingerprint's fields as Outputs; errors is None when there are none."""

    content_hash: pulumi.Output[str]
    packages: pulumi.Output[dict[str, str]]
    build: pulumi.Output[dict[str, Any]]
    errors: pulumi.Output[list[dict[str, str]] | None]


def as_outputs(future: Future[ProgramFingerprint],
               extra_errors: list[dict[str, str]] | None = None) -> FingerprintOutputs:
    """The fields as pulumi Outputs: the engine awaits input props before registering, so each
    resource waits for its own fingerprint only, and the program runs on meanwhile. extra_errors
    (the stack config's, say) join the fingerprint's."""
    import pulumi

    async def result() -> ProgramFingerprint:
        return await asyncio.wrap_future(future)

    def build(r: ProgramFingerprint) -> Any:
        # Masked already; a secret too whenever it held a credential (belt and braces).
        return pulumi.Output.secret(r[2]) if held_credentials(r[2]) else r[2]

    whole: pulumi.Output[ProgramFingerprint] = pulumi.Output.from_input(
        asyncio.ensure_future(result()))
    # An unset input_errors when there are none, as before: nothing new in state or diffs.
    return FingerprintOutputs(whole.apply(lambda r: r[0]), whole.apply(lambda r: r[1]),
                              whole.apply(build),
                              whole.apply(lambda r: [*r[3], *(extra_errors or [])] or None))


def held_credentials(build: Mapping[str, Any]) -> bool:
    """Whether a build's install_files had credentials (masked in them now)."""
    from pulumi_lambda_layers.sources.credentials import masked

    return any(masked(text) for text in (build.get("install_files") or {}).values())

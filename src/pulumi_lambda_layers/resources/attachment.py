"""Pulumi glue: LayerAttachment keeps functions this stack does not own on a layer's version."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from pulumi_lambda_layers.aws import layers
from pulumi_lambda_layers.errors import AttachError, LayerError
from pulumi_lambda_layers.limits import MAX_LAYERS
from pulumi_lambda_layers.resources.arguments import as_list
from pulumi_lambda_layers.resources.common import log, norm, unknown
from pulumi_lambda_layers.resources.layer_build import LambdaLayerBuild

# Applied in place: moving to other functions or another account attaches there first, then
# detaches from the functions left behind (compared by ARN), so none is left without the layer;
# a new position moves the layer there. (layer_unzipped_size follows layer_version_arn.)
ATTACH_UPDATE_KEYS = ("layer_version_arn", "functions", "position", "keep_on_delete", "region",
                      "profile", "assume_role_arn")


@dataclass(frozen=True)
class AttachProps:
    """The attachment provider's view of its inputs."""

    layer_version_arn: str
    functions: tuple[str, ...]
    position: int | None
    keep_on_delete: bool
    target: layers.AwsTarget
    unzipped_size: int | None = None  # of the layer version, when known (a LambdaLayerBuild's)

    @staticmethod
    def of(props: Mapping[str, Any]) -> AttachProps:
        position = props.get("position")
        size = props.get("layer_unzipped_size")
        return AttachProps(
            layer_version_arn=props["layer_version_arn"],
            functions=tuple(props.get("functions") or ()),
            position=int(position) if position is not None else None,
            keep_on_delete=bool(props.get("keep_on_delete")),
            target=layers.AwsTarget(props.get("region") or None, props.get("profile") or None,
                                     props.get("assume_role_arn") or None),
            unzipped_size=int(size) if isinstance(size, (int, float)) else None)


def check_attachment(news: Mapping[str, Any]) -> list[CheckFailure]:
    """Input problems of a LayerAttachment, against the property. Values not known yet at preview
    (a new layer's ARN, a new function's name) pass; they are checked again at apply."""
    failures = []
    functions = news.get("functions")
    if unknown(functions):
        pass
    elif not isinstance(functions, list) or not functions or \
            not all(unknown(f) or (isinstance(f, str) and f) for f in functions):
        failures.append(CheckFailure("functions", "expected a non-empty list of function names "
                                     "or ARNs"))
    elif len({f for f in functions if not unknown(f)}) != sum(not unknown(f) for f in functions):
        failures.append(CheckFailure("functions", "lists a function twice"))
    arn = news.get("layer_version_arn")
    if not unknown(arn) and not (isinstance(arn, str) and re.fullmatch(
            r"arn:[^:]+:lambda:[^:]+:\d{12}:layer:[^:]+:\d+", arn)):
        failures.append(CheckFailure("layer", f"{arn!r} is not a layer version ARN "
                                     "(arn:aws:lambda:<region>:<account>:layer:<name>:<version>); "
                                     "pass a LambdaLayerBuild or its layer_version_arn"))
    position = news.get("position")
    if position is not None and not unknown(position) and (not isinstance(position, (int, float))
                                 or not 0 <= position < MAX_LAYERS):
        failures.append(CheckFailure("position", f"expected 0-{MAX_LAYERS - 1} (a function has at "
                                     f"most {MAX_LAYERS} layers), got {position!r}"))
    return failures


def diff_attachment(olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResult:
    """Update (never replace) when an input or a function's actual layer (drift) differs."""
    wanted = news.get("layer_version_arn")
    attached = olds.get("attached") or {}
    functions = news.get("functions")
    drifted = unknown(functions) or any(attached.get(fn) != wanted for fn in functions or [])
    changed = any(norm(olds.get(k)) != norm(news.get(k)) for k in ATTACH_UPDATE_KEYS)
    return DiffResult(changes=bool(changed or drifted), replaces=[], delete_before_replace=False)


class LayerAttachmentProvider(ResourceProvider):
    """Points named functions at a layer version; reads back drift. Holds no state."""

    serialize_as_secret_always = False

    def configure(self, req: ConfigureRequest) -> None:
        # Called once in the provider host, right after the provider is unpickled.
        from pulumi_lambda_layers.resources.host import clean_errors

        clean_errors()

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_attachment(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_attachment(olds, news)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from pulumi_lambda_layers.aws import functions

        p = AttachProps.of(props)
        changes = functions.attach(p.target, p.layer_version_arn, p.functions, p.position,
                                unzipped_size=p.unzipped_size)
        for change in changes:
            log(f"attach: {change.function}: {len(change.old_layers)} -> "
                 f"{len(change.new_layers)} layers, now {p.layer_version_arn}")
        base = functions.layer_base_arn(p.layer_version_arn)
        return CreateResult(f"{base}|{','.join(p.functions)}", {**props, "attached": {
            fn: p.layer_version_arn for fn in p.functions}, "layer_arn": base})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from pulumi_lambda_layers.aws import functions

        p, old = AttachProps.of(news), AttachProps.of(olds)
        # A new layer (renamed, another region) takes the old one's place in each function; a
        # new position moves it there.
        changes = functions.attach(p.target, p.layer_version_arn, p.functions, p.position,
                                replacing=old.layer_version_arn, move=p.position != old.position,
                                unzipped_size=p.unzipped_size)
        if (set(old.functions) != set(p.functions) or old.target != p.target) \
                and not p.keep_on_delete:
            try:
                _detach_left_behind(old, p)
            except LayerError as exc:
                # The update fails, so the state keeps the old inputs: undo the attach too, so
                # the functions match it again.
                undone = functions.rollback(p.target, changes)
                failed = list(exc.outcomes) if isinstance(exc, AttachError) else \
                    [functions.FunctionOutcome("the functions no longer listed", str(exc))]
                raise AttachError("update (attach, then detach from the functions no "
                                         "longer listed)", p.layer_version_arn,
                                         [*undone, *failed]) from exc
        return UpdateResult({**news, "attached": {fn: p.layer_version_arn for fn in p.functions},
                             "layer_arn": functions.layer_base_arn(p.layer_version_arn)})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from pulumi_lambda_layers.aws import functions

        p = AttachProps.of(props)
        actual = functions.attached_versions(p.target, p.functions, p.layer_version_arn)
        for fn, arn in actual.items():
            if arn != p.layer_version_arn:
                log(f"drift: {fn} uses {arn or 'no version of the layer'}, not "
                     f"{p.layer_version_arn}")
        return ReadResult(id_, {**props, "attached": actual})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from pulumi_lambda_layers.aws import functions

        p = AttachProps.of(props)
        if p.keep_on_delete:
            log("keep_on_delete: functions keep the layer")
            return
        existing = list(functions.attached_versions(p.target, p.functions, p.layer_version_arn))
        if existing:
            functions.detach(p.target, p.layer_version_arn, existing)


def _detach_left_behind(old: AttachProps, new: AttachProps) -> None:
    """Remove the old layer from the functions `old` listed and `new` does not. By ARN: "billing"
    and its ARN, or one account through two profiles, are the same function, which must keep the
    layer just attached."""
    from pulumi_lambda_layers.aws import functions

    kept = set(functions.function_arns(new.target, new.functions).values())
    left = [fn for fn, arn in functions.function_arns(old.target, old.functions).items()
            if arn not in kept]
    if left:
        functions.detach(old.target, old.layer_version_arn, left)
        log(f"detach: {', '.join(left)} no longer listed; layer removed")


class LayerAttachment(pulumi.dynamic.Resource, module="lambda-layers", name="LayerAttachment"):
    """Keeps functions this stack does not own on a layer's current version.

    For each function, any version of the same layer is replaced by the new version ARN (or the
    layer is added at `position`), other layers keep their order. Because it reads the layer's
    version ARN, Pulumi moves the functions before a replaced layer version is deleted.
    """

    attached: pulumi.Output[dict[str, Any]]
    layer_arn: pulumi.Output[str]

    def __init__(self, resource_name: str, *, layer: Any,
                 functions: pulumi.Input[Sequence[pulumi.Input[str]]],
                 position: pulumi.Input[int] | None = None,
                 keep_on_delete: pulumi.Input[bool] = False,
                 region: pulumi.Input[str] | None = None,
                 profile: pulumi.Input[str] | None = None,
                 assume_role_arn: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """layer: a LambdaLayerBuild or a layer version ARN (string or Output); a LambdaLayerBuild
        also gives its unzipped size to the 250 MB check (of an ARN only the zipped size is known).
        functions: names or ARNs (a list, or an Output of one). position: where to add the
        layer (changing it moves the layer).
        keep_on_delete: leave the layer on the functions when this resource is deleted or a
        function is dropped from the list (default: remove it). region/profile/assume_role_arn:
        where the functions are (another account through a role)."""
        # Not getattr(): on an Output (a StackReference value) it would lift the attribute lookup
        # onto the string inside and fail only at apply time.
        version_arn = cast(Any, layer).layer_version_arn if isinstance(layer, pulumi.Resource) \
            else layer
        unzipped = layer.unzipped_size if isinstance(layer, LambdaLayerBuild) else None
        props = {"layer_version_arn": version_arn, "layer_unzipped_size": unzipped,
                 "functions": as_list(functions), "position": position,
                 "keep_on_delete": keep_on_delete, "region": region, "profile": profile,
                 "assume_role_arn": assume_role_arn,
                 "attached": None, "layer_arn": None}
        super().__init__(LayerAttachmentProvider(), resource_name, props, opts)

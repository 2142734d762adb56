"""Share a layer with other stacks: export it in one shape, read it back through a StackReference."""

from __future__ import annotations

from typing import Any

import pulumi

from pulumi_lambda_layers.errors import LayerError


def layer_export(layer: Any) -> dict[str, Any]:
    """The value to `pulumi.export` for a LambdaLayerBuild so consumers can check compatibility."""
    return {"layer_arn": layer.layer_arn, "layer_version_arn": layer.layer_version_arn,
            "version": layer.version, "runtimes": layer.runtimes,
            "architectures": layer.architectures, "content_hash": layer.content_hash}


def export_layer(name: str, layer: Any) -> None:
    """`pulumi.export(name, ...)` of a layer, read by `layer_from_stack` in another stack."""
    pulumi.export(name, layer_export(layer))


def layer_from_stack(stack: pulumi.StackReference, name: str, *, runtime: str | None = None,
                     architecture: str | None = None) -> pulumi.Output[str]:
    """The layer version ARN another stack exported with `export_layer`, checked against the
    consumer's runtime and architecture so an arm64 function never gets an x86_64 layer."""
    def pick(value: Any) -> str:
        return check_shared_layer(value, f"{stack.name if isinstance(stack.name, str) else 'stack'}"
                                  f" output {name!r}", runtime, architecture)

    return stack.require_output(name).apply(pick)


def check_shared_layer(value: Any, where: str, runtime: str | None,
                       architecture: str | None) -> str:
    """The version ARN from an exported layer value; LayerError when it does not fit the consumer."""
    if not isinstance(value, dict) or "layer_version_arn" not in value:
        raise LayerError(f"{where} is not a layer exported with export_layer(); got "
                         f"{type(value).__name__}")
    runtimes = value.get("runtimes") or []
    arches = value.get("architectures") or []
    if runtime and runtimes and runtime not in runtimes:
        raise LayerError(f"{where}: the layer is for {', '.join(runtimes)}, not {runtime}; "
                         "build the layer for this runtime or add it to compatible_runtimes")
    if architecture and arches and architecture not in arches:
        raise LayerError(f"{where}: the layer is built for {', '.join(arches)}, not "
                         f"{architecture}; its native code would fail to load")
    return str(value["layer_version_arn"])

"""Build, validate and publish AWS Lambda layers reproducibly, from Pulumi programs or a CLI."""

from __future__ import annotations

from .errors import BuildError, LayerError, ResolveError, SpecError, ValidationError
from .runtimes import RUNTIMES, Runtime
from .spec import LayerSpec, make_spec, spec_from_dict

# The Pulumi resources import the Pulumi SDK; load them only when asked so the CLI starts fast.
_RESOURCES = {"LambdaLayerBuild": "resources", "LayerBuildProvider": "resources",
              "LayerAttachment": "resources",
              "export_layer": "sharing", "layer_from_stack": "sharing"}


def __getattr__(name: str) -> object:
    if name in _RESOURCES:
        import importlib

        return getattr(importlib.import_module(f".{_RESOURCES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LambdaLayerBuild", "LayerAttachment", "LayerBuildProvider", "export_layer", "layer_from_stack",
    "RUNTIMES", "BuildError", "LayerError", "LayerSpec", "ResolveError", "Runtime", "SpecError",
    "ValidationError", "make_spec", "spec_from_dict",
]

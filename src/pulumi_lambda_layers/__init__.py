"""Build, validate and publish AWS Lambda layers reproducibly, from Pulumi programs or a CLI."""

from __future__ import annotations

from pulumi_lambda_layers.errors import (
    BuildError,
    LayerError,
    ResolveError,
    SmokeError,
    SpecError,
    ValidationError,
)
from pulumi_lambda_layers.runtimes import RUNTIMES, Runtime
from pulumi_lambda_layers.spec import LayerSpec, make_spec, spec_from_dict

# Loaded when first asked for: the Pulumi resources import the Pulumi SDK, the pipeline its
# builders; the CLI and `import pulumi_lambda_layers` stay fast without them.
_LAZY = {"LambdaLayerBuild": "resources", "LambdaLayerBuildArgs": "resources",
         "LayerBuildProvider": "resources",
         "LayerAttachment": "resources", "export_layer": "resources",
         "layer_from_stack": "resources", "build_layer": "build.pipeline",
         "BuildResult": "build.pipeline", "fingerprint": "sources.fingerprint",
         "Fingerprint": "sources.fingerprint"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LambdaLayerBuild", "LambdaLayerBuildArgs", "LayerAttachment", "LayerBuildProvider",
    "export_layer", "layer_from_stack",
    "build_layer", "BuildResult", "fingerprint", "Fingerprint", "make_spec", "spec_from_dict",
    "LayerSpec", "RUNTIMES", "Runtime",
    "LayerError", "SpecError", "ResolveError", "BuildError", "ValidationError", "SmokeError",
]

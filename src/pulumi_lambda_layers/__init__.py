"""Build, validate and publish AWS Lambda layers reproducibly, from Pulumi programs or a CLI."""

from __future__ import annotations

from .errors import BuildError, LayerError, ResolveError, SpecError, ValidationError
from .runtimes import RUNTIMES, Runtime
from .spec import LayerSpec, make_spec, spec_from_dict

__all__ = [
    "RUNTIMES", "BuildError", "LayerError", "LayerSpec", "ResolveError", "Runtime", "SpecError",
    "ValidationError", "make_spec", "spec_from_dict",
]

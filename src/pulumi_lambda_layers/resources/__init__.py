"""The Pulumi resources: thin glue from Pulumi's dynamic providers to the plain functions."""

from __future__ import annotations

from pulumi_lambda_layers.resources.arguments import LambdaLayerBuildArgs
from pulumi_lambda_layers.resources.attachment import (
                                                       LayerAttachment,
                                                       LayerAttachmentProvider,
                                                       check_attachment,
                                                       diff_attachment,
)
from pulumi_lambda_layers.resources.checks import check_props, diff_props
from pulumi_lambda_layers.resources.layer_build import (
                                                       LambdaLayerBuild,
                                                       LayerBuildProvider,
                                                       LayerProps,
                                                       keep_auto_name,
)
from pulumi_lambda_layers.resources.program_time import program_time_fingerprint
from pulumi_lambda_layers.resources.sharing import export_layer, layer_from_stack

__all__ = ["LambdaLayerBuild", "LambdaLayerBuildArgs", "LayerAttachment", "LayerAttachmentProvider",
           "LayerBuildProvider",
           "LayerProps", "check_attachment", "check_props", "diff_attachment", "diff_props",
           "export_layer", "keep_auto_name", "layer_from_stack", "program_time_fingerprint"]

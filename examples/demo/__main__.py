"""The `make demo` program: one arm64 layer with a native package, published to the AWS endpoint."""

import pulumi

from pulumi_lambda_layers import LambdaLayerBuild, export_layer

layer = LambdaLayerBuild(
    "demo-deps",
    runtime="python3.11",
    architecture="arm64",
    requirements="../python-layer/layer/requirements.txt",
    layer_name="demo-deps",
    description="make demo layer",
    share_with=["111122223333"],
)
export_layer("layer", layer)
pulumi.export("packages", layer.packages)
pulumi.export("builder_used", layer.builder_used)
pulumi.export("code_size", layer.code_size)

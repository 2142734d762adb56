"""A layer with a native package (numpy) and a function that uses it; a new version re-points it."""

import pulumi
import pulumi_aws as aws

from pulumi_lambda_layers import LambdaLayerBuild, export_layer

deps = LambdaLayerBuild(
    "deps",
    runtime="python3.12",
    architecture="arm64",
    requirements="layer/requirements.txt",  # the layer's; the program's own would be ./requirements.txt
    layer_name="python-layer-deps",
    description="numpy + requests",
)

role = aws.iam.Role(
    "fn-role",
    assume_role_policy="""{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}""",
)

fn = aws.lambda_.Function(
    "api",
    runtime="python3.12",
    architectures=["arm64"],
    handler="app.handler",
    role=role.arn,
    code=pulumi.AssetArchive({"app.py": pulumi.StringAsset(
        "import numpy\n\ndef handler(event, context):\n    return {'numpy': numpy.__version__}\n")}),
    # Every new layer version (a changed content hash) updates this function to the new ARN.
    layers=[deps.layer_version_arn],
)

export_layer("deps_layer", deps)
pulumi.export("packages", deps.packages)
pulumi.export("function", fn.name)

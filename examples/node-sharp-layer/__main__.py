"""One sharp layer for arm64, two ES module functions of a few KB each that import it."""

import pulumi
import pulumi_aws as aws

from pulumi_lambda_layers import LambdaLayerBuild
from pulumi_lambda_layers.function_zip import package_function

sharp = LambdaLayerBuild(
    "sharp",
    runtime="nodejs20.x",
    architecture="arm64",
    package_json="layer/package.json",  # package-lock.json beside it: npm ci, @img/sharp-linux-arm64
    layer_name="sharp-arm64",
    frozen=True,
)

role = aws.iam.Role(
    "fn-role",
    assume_role_policy="""{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}""",
)

functions: dict[str, aws.lambda_.Function] = {}
for name in ("thumbnail", "medium"):
    # The zip holds index.mjs and a node_modules symlink to /opt/nodejs/node_modules, because
    # ES modules ignore NODE_PATH and would not find the layer's packages otherwise.
    code = package_function(f"functions/{name}", f"build/{name}.zip", "nodejs20.x")
    fn = functions[name] = aws.lambda_.Function(
        name,
        runtime="nodejs20.x",
        architectures=["arm64"],
        handler="index.handler",
        role=role.arn,
        code=pulumi.FileArchive(str(code.path)),
        layers=[sharp.layer_version_arn],
        memory_size=1024,
    )
    pulumi.export(f"{name}_function", fn.name)
    pulumi.export(f"{name}_zip_bytes", code.zipped_size)

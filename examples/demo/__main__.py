"""The `make demo` program: one sharp layer shared by two functions, plus one Python layer with a
native package (numpy) built in the Docker builder, kept on a third function.

The three functions are not Pulumi resources: the pulumi-aws provider plugin cannot be had on this
machine, so scripts/demo.sh makes them in the local AWS endpoint (moto) with boto3 beforehand, and
LayerAttachment keeps them on each layer's current version (as it does for functions made by
another tool or team).
"""

import pulumi

from pulumi_lambda_layers import LambdaLayerBuild, LayerAttachment

# nodejs20.x, built on this machine (npm ci from the lock beside package.json).
sharp = LambdaLayerBuild(
    "sharp",
    runtime="nodejs20.x",
    architecture="x86_64",
    package_json="layers/sharp/package.json",  # + package-lock.json: @img/sharp-linux-x64
    layer_name="demo-sharp",
    description="make demo: sharp for the image functions",
    # sharp >= 0.33 ships its binary as @img/sharp-linux-x64, so npm ci --ignore-scripts is enough
    # (builder="auto" would go to Docker because sharp has an install script).
    builder="local",
    frozen=True,
)

# python3.11 with numpy, built in a container of the local stand-in for the Lambda build image.
numpy_layer = LambdaLayerBuild(
    "numpy",
    runtime="python3.11",
    architecture="x86_64",
    lock="layers/python/requirements.lock",  # fully pinned: preview never resolves
    layer_name="demo-numpy",
    description="make demo: numpy for the stats function",
    builder="docker",
    image="pulumi-lambda-layers-dev/python3.11:x86_64",
    network_mode="host",  # the build container reaches PyPI through the host's network
    ca_bundle="/etc/ssl/certs/ca-certificates.crt",
)

images = LayerAttachment("image-functions", layer=sharp,
                         functions=["demo-thumbnail", "demo-medium"])
stats = LayerAttachment("stats-function", layer=numpy_layer, functions=["demo-stats"])

pulumi.export("sharp_version_arn", sharp.layer_version_arn)
pulumi.export("numpy_version_arn", numpy_layer.layer_version_arn)
pulumi.export("sharp_packages", sharp.packages)
pulumi.export("numpy_packages", numpy_layer.packages)
pulumi.export("builders", {"sharp": sharp.builder_used, "numpy": numpy_layer.builder_used})
pulumi.export("attached", {"sharp": images.attached, "numpy": stats.attached})

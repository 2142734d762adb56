"""Consumer: takes the producer's current layer version, checked against this function's target."""

import pulumi

from pulumi_lambda_layers import layer_from_stack

cfg = pulumi.Config()
producer = pulumi.StackReference(cfg.require("producer_stack"))  # e.g. organization/shared-layer-producer/prod
layer_arn = layer_from_stack(producer, "shared_layer", runtime="python3.12",
                             architecture=cfg.get("architecture") or "x86_64")
# With pulumi_aws: aws.lambda_.Function(..., layers=[layer_arn]) follows each new version on `up`.
pulumi.export("layer_version_arn", layer_arn)

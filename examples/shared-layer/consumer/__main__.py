"""Consumer: takes the producer's current layer version, checked against this function's target,
and keeps functions this stack does not own on it."""

import pulumi

from pulumi_lambda_layers import LayerAttachment, layer_from_stack

cfg = pulumi.Config()
producer = pulumi.StackReference(cfg.require("producer_stack"))  # e.g. organization/shared-layer-producer/prod
layer_arn = layer_from_stack(producer, "shared_layer", runtime="python3.12",
                             architecture=cfg.get("architecture") or "x86_64")
# With pulumi_aws: aws.lambda_.Function(..., layers=[layer_arn]) follows each new version on `up`.
# Functions made elsewhere (by hand, by another tool) follow through a LayerAttachment: on each
# `up` they move to the producer's current version, other layers kept in place.
functions = cfg.get_object("functions")  # e.g. ["billing-worker"]
if functions:
    external = LayerAttachment("external", layer=layer_arn, functions=functions,
                               # the functions' account, when this stack deploys from another one
                               assume_role_arn=cfg.get("assume_role_arn"))
pulumi.export("layer_version_arn", layer_arn)

"""Producer: builds the layer once and lets the consumer account use every new version."""

import pulumi

from pulumi_lambda_layers import LambdaLayerBuild, export_layer

cfg = pulumi.Config()
layer = LambdaLayerBuild(
    "shared",
    runtime="python3.12",
    architecture="x86_64",
    lock="requirements.lock",
    layer_name=cfg.get("layer_name") or "shared-deps",
    share_with=cfg.get_object("consumer_accounts") or ["222233334444"],
    # Consumers move on their own next `up`: keep the previous version until then.
    retain_versions=1,
    builder=cfg.get("builder") or "auto",
)
export_layer("shared_layer", layer)

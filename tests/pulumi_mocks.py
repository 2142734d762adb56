"""Pulumi unit-test mocks that answer each resource with its inputs and record what was made."""

from __future__ import annotations

from typing import Any

import pulumi


class RecordingMocks(pulumi.runtime.Mocks):
    """Outputs = inputs, plus ARNs for layers and roles; `made` maps name -> (type, inputs)."""

    def __init__(self, layer_version: int = 1) -> None:
        self.layer_version = layer_version
        self.made: dict[str, tuple[str, dict[str, Any]]] = {}
        self.stack_outputs: dict[str, Any] = {}  # what a StackReference reads

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ.endswith("LambdaLayerBuild"):
            arn = f"arn:aws:lambda:us-east-1:123456789012:layer:{args.inputs['layer_name']}"
            outputs.update(layer_arn=arn, layer_version_arn=f"{arn}:{self.layer_version}",
                           version=self.layer_version)
        if args.typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::123456789012:role/{args.name}"
        if args.typ == "pulumi:pulumi:StackReference":
            outputs = {"name": args.name, "outputs": self.stack_outputs, "secretOutputNames": []}
        self.made[args.name] = (args.typ, dict(args.inputs))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def use_mocks(layer_version: int = 1) -> RecordingMocks:
    """Install fresh mocks for the next @pulumi.runtime.test and return them."""
    mocks = RecordingMocks(layer_version)
    pulumi.runtime.set_mocks(mocks, preview=False)
    return mocks

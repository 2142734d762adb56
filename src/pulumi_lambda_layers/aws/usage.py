"""Which functions use a layer, in which accounts and regions: drift and the scan before deletes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pulumi_lambda_layers.aws.client import (
    AwsTarget,
    ClientFactory,
    aws_errors,
    make_client,
    session,
)
from pulumi_lambda_layers.aws.functions import layer_arn, layer_base_arn, version_in
from pulumi_lambda_layers.errors import PublishError

log = logging.getLogger(__name__)

# What Lambda answers in an opt-in region the account has not enabled.
_DISABLED_REGION_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId"})


@dataclass(frozen=True)
class FunctionUse:
    """A function using some version of a layer: `current` when it is the version asked about."""

    function: str
    function_arn: str
    region: str
    layer_version_arn: str
    status: Literal["current", "stale"]

    @property
    def version(self) -> int:
        return int(self.layer_version_arn.rsplit(":", 1)[1])

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "function_arn": self.function_arn,
                "region": self.region, "layer_version_arn": self.layer_version_arn,
                "version": self.version, "status": self.status}


def drift(targets: Sequence[AwsTarget], layer_version_arn: str, *,
          skip_disabled_regions: bool = False,
          clients: ClientFactory = make_client) -> list[FunctionUse]:
    """Every function in the targets' regions that uses any version of the layer, `current` when
    it is layer_version_arn and `stale` otherwise. Lambda layers are regional, so only functions in
    the layer's own region can appear. skip_disabled_regions: an opt-in region the account has not
    enabled is skipped with a warning instead of failing."""
    layer_base_arn(layer_version_arn)
    return [replace(u, status="current" if u.layer_version_arn == layer_version_arn else "stale")
            for u in layer_users(targets, layer_version_arn,
                                 skip_disabled_regions=skip_disabled_regions, clients=clients)]


def layer_users(targets: Sequence[AwsTarget], layer: str, *, skip_disabled_regions: bool = False,
                clients: ClientFactory = make_client) -> list[FunctionUse]:
    """Every function ($LATEST, the configuration a next update starts from) in the targets'
    accounts and regions that uses any version of `layer` (a layer or layer version ARN), sorted
    by region and name; status "current" throughout (drift sets it against one version).

    Every target is scanned before anything is returned, so a role that cannot be assumed or a
    denied list fails the whole call: a caller deleting versions on this answer deletes nothing."""
    base = layer_arn(layer)
    uses: dict[str, FunctionUse] = {}
    for target in targets:
        lam = clients(target, "lambda")
        region = lam.meta.region_name or "?"
        try:
            with aws_errors("list_functions", f"functions in {region}"):
                for page in lam.get_paginator("list_functions").paginate():
                    for fn in page.get("Functions", []):
                        arn = version_in(fn, base)
                        if arn is not None and fn["FunctionArn"] not in uses:
                            uses[fn["FunctionArn"]] = FunctionUse(
                                fn["FunctionName"], fn["FunctionArn"], region, arn, "current")
        except PublishError as exc:
            if not (skip_disabled_regions and exc.code in _DISABLED_REGION_CODES):
                raise
            log.warning("skipped %s: %s", region, exc)
    return sorted(uses.values(), key=lambda u: (u.region, u.function))


def lambda_regions(target: AwsTarget, partition: str = "aws") -> list[str]:
    """Every region where Lambda is offered in the partition (from botocore's endpoint data)."""
    return sorted(session(target).get_available_regions("lambda", partition_name=partition))

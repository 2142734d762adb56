"""Which layer versions may go: ownership, retention windows, never one a function still uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi_lambda_layers.aws import layers
from pulumi_lambda_layers.aws.client import AwsTarget, ClientFactory, make_client
from pulumi_lambda_layers.aws.layers import LayerVersion
from pulumi_lambda_layers.aws.usage import FunctionUse, layer_users
from pulumi_lambda_layers.errors import PublishError

Log = Callable[[str], None]


@dataclass(frozen=True)
class Verdict:
    """What becomes of one version, and why (users: ARNs of the functions that use it)."""

    version: int
    action: Literal["keep", "delete"]
    reason: str
    users: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "action": self.action, "reason": self.reason,
                "functions": list(self.users)}


# --- pure planning ------------------------------------------------------------------------------

def owned_versions(versions: Sequence[LayerVersion], owner: str | None, current: int) -> list[int]:
    """The versions a resource owns, ascending: those its marker says `owner` published, and the
    version its state holds (an imported or pre-owner version carries no owner, but the state
    that points at it is its one keeper). No owner (a state from before owners): only that one."""
    mine = {v.version for v in versions if owner is not None and v.owner == owner}
    return sorted(mine | {current})


def versions_to_delete(owned: Sequence[int], version: int, retain: int) -> list[int]:
    """What deleting the resource at `version` removes, of the versions it owns.

    A newer owned version means this is the old side of a replace: keep the newest `retain`
    older ones and remove the ones that fell out of that window. No newer version means the
    resource itself goes (destroy): its version and the ones it retained go with it.
    """
    owned = sorted(owned)
    newer = [v for v in owned if v > version]
    older = [v for v in owned if v < version]
    if not newer:
        retained = older[-retain:] if retain else []
        return [version, *retained]
    if not retain:
        return [version]
    window = [v for v in owned if v < newer[0]][-retain:]
    return [v for v in (*older, version) if v not in window]


def users_by_version(uses: Sequence[FunctionUse]) -> dict[int, tuple[str, ...]]:
    """Version -> the ARNs of the functions that use it."""
    found: dict[int, list[str]] = {}
    for use in uses:
        found.setdefault(use.version, []).append(use.function_arn)
    return {v: tuple(sorted(arns)) for v, arns in found.items()}


def plan_prune(versions: Sequence[LayerVersion], keep: int, uses: Sequence[FunctionUse],
               include_owned: bool = False) -> list[Verdict]:
    """One verdict per version, newest first: the newest `keep` stay, a version a function uses
    stays, a version a Pulumi stack owns stays (its retention manages it) unless include_owned;
    every other one goes."""
    used = users_by_version(uses)
    verdicts = []
    for rank, v in enumerate(sorted(versions, key=lambda v: v.version, reverse=True)):
        users = used.get(v.version, ())
        if rank < keep:
            verdicts.append(Verdict(v.version, "keep", f"one of the newest {keep}", users))
        elif users:
            verdicts.append(Verdict(v.version, "keep", f"used by {len(users)} function(s)", users))
        elif v.owner and not include_owned:
            verdicts.append(Verdict(v.version, "keep", f"published by Pulumi stack resource "
                                    f"{v.owner} (its retention manages it; --include-owned "
                                    "to prune it anyway)"))
        else:
            verdicts.append(Verdict(v.version, "delete", f"unused and older than the newest "
                                    f"{keep}"))
    return verdicts


# --- acting on AWS ------------------------------------------------------------------------------

def consumer_targets(layer_arn: str, roles: Sequence[str], profile: str | None = None
                     ) -> list[AwsTarget]:
    """Where functions of other accounts may use a layer: its region, through each role."""
    region = layer_arn.split(":")[3]
    return [AwsTarget(region, profile, role) for role in roles]


def delete_unless_used(target: AwsTarget, layer_name: str, layer_arn: str,
                       candidates: Sequence[int], *, consumers: Sequence[AwsTarget] = (),
                       force: bool = False, log: Log = print,
                       clients: ClientFactory = make_client) -> list[Verdict]:
    """Delete each candidate version that no function uses, in the layer's account and region and
    in the consumers'; a version in use is kept with a warning naming its functions. force:
    delete without looking. Every account is scanned before the first delete, so a role that
    cannot be assumed deletes nothing."""
    if not candidates:
        return []
    if force:
        log(f"force_delete: deleting {_versions(layer_name, candidates)} without looking for "
            "functions that use them")
        used: dict[int, tuple[str, ...]] = {}
    else:
        used = users_by_version(scan_users(target, layer_arn, consumers, clients=clients))
    verdicts = []
    for v in candidates:
        users = used.get(v, ())
        if users:
            log(f"warning: kept {layer_name}:{v}: still used by {', '.join(users)}; move them to "
                "a newer version and run `lambda-layers prune`, or set force_delete=True")
            verdicts.append(Verdict(v, "keep", "in use", users))
            continue
        layers.delete_version(target, layer_name, v, clients=clients)
        log(f"deleted {layer_name}:{v}")
        verdicts.append(Verdict(v, "delete", "no function uses it" if not force else "forced"))
    return verdicts


def prune(target: AwsTarget, layer: str, keep: int, *, consumers: Sequence[AwsTarget] = (),
          dry_run: bool = False, include_owned: bool = False,
          clients: ClientFactory = make_client) -> list[Verdict]:
    """Plan (and unless dry_run, carry out) the pruning of a layer (name or ARN) down to its newest
    `keep` versions plus the ones in use."""
    versions = layers.list_versions(target, layer, clients=clients)
    if not versions:
        return []
    uses = scan_users(target, versions[0].layer_arn, consumers, clients=clients)
    plan = plan_prune(versions, keep, uses, include_owned)
    if not dry_run:
        for verdict in plan:
            if verdict.action == "delete":
                layers.delete_version(target, layer, verdict.version, clients=clients)
    return plan


def scan_users(target: AwsTarget, layer_arn: str, consumers: Sequence[AwsTarget], *,
               clients: ClientFactory = make_client) -> list[FunctionUse]:
    """Functions using any version of the layer, in its account and the consumers'; a failure
    (a role that cannot be assumed, a denied lambda:ListFunctions) says that nothing was deleted."""
    try:
        return layer_users([target, *consumers], layer_arn, clients=clients)
    except PublishError as exc:
        fix = ("let the deploying credentials assume it (its trust policy) or drop it from "
               "consumer_roles / --assume-role-arn" if exc.operation == "assume_role" else
               "allow lambda:ListFunctions, or set force_delete=True to delete without looking")
        raise PublishError(exc.operation, exc.resource,
                           f"{exc.problem}; could not look for functions that use {layer_arn}, "
                           "so no version was deleted", fix, code=exc.code) from exc


def _versions(layer_name: str, versions: Sequence[int]) -> str:
    return ", ".join(f"{layer_name}:{v}" for v in versions)

"""What preview checks in a LambdaLayerBuild's inputs, and which changes replace or update it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.dynamic import CheckFailure, DiffResult

from pulumi_lambda_layers.aws import layers
from pulumi_lambda_layers.errors import SpecError
from pulumi_lambda_layers.limits import LAYER_NAME, LAYER_VERSION_ARN, ROLE_ARN
from pulumi_lambda_layers.resources.common import norm, unknown
from pulumi_lambda_layers.runtimes import RUNTIMES, get_runtime

# Inputs whose change means new bytes or a different layer: a new immutable version (replace).
REPLACE_KEYS = ("content_hash", "layer_name", "runtime", "architecture", "compatible_runtimes",
                "license_info", "region", "profile", "assume_role_arn")
# Inputs applied in place: sharing and retention; description applies from the next version;
# owner and the deletion settings only need to reach the state (delete reads them from there).
UPDATE_KEYS = ("share_with", "retain_versions", "retain_on_delete", "description", "owner",
               "consumer_roles", "force_delete", "deny_licenses")

def check_props(news: Mapping[str, Any]) -> list[CheckFailure]:
    """Every problem with the inputs, as (property, reason) pairs that preview shows."""
    failures = [CheckFailure(e["property"], e["reason"]) for e in news.get("input_errors") or []]
    name = news.get("layer_name")
    if isinstance(name, str) and not unknown(name) and not LAYER_NAME.fullmatch(name):
        failures.append(CheckFailure("layer_name", f"{name!r} is not a valid layer name: use 1-140 "
                                     "letters, digits, '-' or '_' (or leave layer_name out for a "
                                     "name unique to this project, stack and resource)"))
    share = news.get("share_with")
    if not unknown(share):  # an Output unknown at preview: `up` checks it once it is known
        try:
            layers.check_principals([p for p in share if not unknown(p)]
                                    if isinstance(share, (list, tuple)) else share or [])
        except SpecError as exc:
            failures.append(CheckFailure("share_with", f"{exc.problem} ({exc.fix})"))
    retain = news.get("retain_versions")
    if retain is not None and not unknown(retain) and \
            (not isinstance(retain, (int, float)) or isinstance(retain, bool) or retain < 0):
        failures.append(CheckFailure("retain_versions", f"expected a whole number >= 0, got "
                                     f"{retain!r}"))
    failures += _check_compatible_runtimes(news)
    failures += _check_smoke_options(news)
    failures += _check_deletion_options(news)
    failures += _check_deny_licenses(news)
    return failures


def _check_deny_licenses(news: Mapping[str, Any]) -> list[CheckFailure]:
    # At preview: a policy that cannot be read would otherwise only fail after a build.
    from pulumi_lambda_layers.sbom import deny_policy

    deny = news.get("deny_licenses")
    if deny is None or unknown(deny):
        return []
    if not isinstance(deny, (list, tuple)):
        fix = f"write [{deny!r}]" if isinstance(deny, str) else 'e.g. ["GPL-3.0-only"]'
        return [CheckFailure("deny_licenses", f"expected a list of SPDX ids, got {deny!r} ({fix})")]
    try:
        deny_policy([d for d in deny if not unknown(d)])
    except SpecError as exc:
        return [CheckFailure("deny_licenses", f"{exc.problem} ({exc.fix})")]
    return []


def _check_deletion_options(news: Mapping[str, Any]) -> list[CheckFailure]:
    failures = []
    roles = news.get("consumer_roles")
    if unknown(roles):
        roles = None
    if isinstance(roles, str) or (roles is not None and not isinstance(roles, (list, tuple))):
        fix = f"write [{roles!r}]" if isinstance(roles, str) else "give a list of role ARNs"
        failures.append(CheckFailure("consumer_roles", f"expected a list of IAM role ARNs, got "
                                     f"{roles!r} ({fix})"))
    else:
        for role in roles or ():
            if not unknown(role) and not (isinstance(role, str) and ROLE_ARN.fullmatch(role)):
                failures.append(CheckFailure(
                    "consumer_roles", f"{role!r} is not an IAM role ARN (expected "
                    "arn:aws:iam::<12-digit account>:role/<name>): a role in each account whose "
                    "functions may use the layer, allowed lambda:ListFunctions"))
                break
    imported = news.get("import_version")
    if imported and not unknown(imported):
        match = isinstance(imported, str) and LAYER_VERSION_ARN.fullmatch(imported)
        if not match:
            failures.append(CheckFailure("import_version", f"{imported!r} is not a layer version "
                                         "ARN (arn:aws:lambda:<region>:<account>:layer:<name>:"
                                         "<version>)"))
        elif match["name"] != news.get("layer_name"):
            failures.append(CheckFailure("import_version", f"names layer {match['name']!r} but "
                                         f"layer_name is {news.get('layer_name')!r}: drop "
                                         "layer_name or make them the same"))
        elif news.get("region") and news["region"] != match["region"]:
            failures.append(CheckFailure("import_version", f"is in {match['region']} but region "
                                         f"is {news['region']!r}"))
    force = news.get("force_delete")
    if force is not None and not unknown(force) and not isinstance(force, bool):
        failures.append(CheckFailure("force_delete", f"expected True or False, got {force!r}"))
    return failures


def _check_compatible_runtimes(news: Mapping[str, Any]) -> list[CheckFailure]:
    # Checked here so a typo shows at preview against the argument, not as Lambda's
    # InvalidParameterValueException from publish_layer_version at apply.
    wanted = news.get("compatible_runtimes")
    if wanted is None or unknown(wanted) or (isinstance(wanted, (list, tuple)) and not wanted):
        return []  # not given: the layer's own runtime is used
    if not isinstance(wanted, (list, tuple)):
        fix = f"write [{wanted!r}]" if isinstance(wanted, str) else 'e.g. ["python3.12"]'
        return [CheckFailure("compatible_runtimes", f"expected a list of runtime ids, got "
                             f"{wanted!r} ({fix})")]
    built_for = news.get("runtime")
    language = RUNTIMES[built_for].language if isinstance(built_for, str) and \
        built_for in RUNTIMES else None
    for rt in wanted:
        if unknown(rt):
            continue
        if not isinstance(rt, str):
            return [CheckFailure("compatible_runtimes", f"expected runtime ids (strings), got "
                                 f"{rt!r}")]
        try:
            runtime = get_runtime(rt, "compatible_runtimes")
        except SpecError as exc:
            return [CheckFailure("compatible_runtimes", f"{exc.problem} ({exc.fix})")]
        if language and runtime.language != language:
            # A python layer listed for nodejs would attach fine and then import nothing.
            return [CheckFailure("compatible_runtimes", f"{rt!r} is a {runtime.language} runtime "
                                 f"but the layer is built for {built_for} ({language}): list "
                                 f"{language} runtimes only")]
    return []


def _check_smoke_options(news: Mapping[str, Any]) -> list[CheckFailure]:
    smoke, image = news.get("smoke_test"), news.get("smoke_image")
    if unknown(smoke) or unknown(image):
        return []  # unknown at preview: `up` checks it once it is known
    names_ok = isinstance(smoke, (list, tuple)) and bool(smoke) and \
        all(isinstance(n, str) and n.strip() for n in smoke)
    if smoke is not None and not isinstance(smoke, bool) and not names_ok:
        return [CheckFailure("smoke_test", f"expected True, False or a non-empty list of import "
                             f"names (e.g. [\"numpy\"]), got {smoke!r}")]
    if image is not None and (not isinstance(image, str) or not image.strip()):
        return [CheckFailure("smoke_image", f"expected an image name, got {image!r}")]
    if image and not smoke:
        return [CheckFailure("smoke_image", "is only used with smoke_test: set smoke_test=True "
                             "or drop smoke_image")]
    return []


def diff_props(olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResult:
    """Replace on new content or identity, update on sharing/retention/description, else nothing."""
    def differs(key: str) -> bool:
        return bool(norm(olds.get(key)) != norm(news.get(key)))

    replaces = [k for k in REPLACE_KEYS if differs(k)]
    updates = [k for k in UPDATE_KEYS if differs(k)]
    return DiffResult(changes=bool(replaces or updates), replaces=replaces,
                      stables=["layer_name"] if not replaces else [],
                      delete_before_replace=False)

"""Point Lambda functions at a layer version safely: limits, RevisionId, waiting, rollback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from pulumi_lambda_layers.aws.client import AwsTarget, ClientFactory, call, make_client, resent
from pulumi_lambda_layers.errors import AttachError, NotFound, PublishError, SpecError
from pulumi_lambda_layers.errors import Refused as _Refused
from pulumi_lambda_layers.limits import LAYER_ARN as _LAYER_ARN
from pulumi_lambda_layers.limits import LAYER_VERSION_ARN as _VERSION_ARN
from pulumi_lambda_layers.limits import MAX_LAYERS, UNZIPPED_LIMIT

DEFAULT_TIMEOUT = 300.0  # seconds to wait for one function's update to finish

_BUSY_CODES = frozenset({"ResourceConflictException"})  # another update still in progress
# botocore's standard mode retries these too, but only 6 attempts within seconds; a deploy that
# shares the account's request rate with others waits longer, within `timeout`.
_THROTTLED_CODES = frozenset({"TooManyRequestsException", "ThrottlingException"})

Sleep = Callable[[float], None]
FaultHook = Callable[[str], None]


def _no_fault(_name: str) -> None:
    """The default fault hook: carry on."""


# Called with a step's name where a test may stop a re-point half done ("between-functions").
# resources/faults.py installs its fault_point here on import, so aws/ stays free of Pulumi.
fault_hook: FaultHook = _no_fault
Size = tuple[int, bool]  # (bytes, True when it is the unzipped size; False: zipped, a lower bound)


@dataclass(frozen=True)
class Change:
    """One function's layer list before and after; new_revision is None while only planned."""

    function: str  # as given: a name or an ARN
    function_arn: str
    old_layers: tuple[str, ...]
    new_layers: tuple[str, ...]
    old_revision: str | None  # the RevisionId the change was planned against (None: not reported)
    new_revision: str | None = None


@dataclass(frozen=True)
class FunctionOutcome:
    """What happened to one function in a failed attach/detach."""

    function: str
    error: str | None = None  # why this function failed; None when it was not the problem
    rolled_back: bool | None = None  # None: nothing to undo; True: old layers back; False: not
    rollback_error: str | None = None
    layers_now: tuple[str, ...] = ()  # when the rollback failed: the layers it was left with
    old_layers: tuple[str, ...] = ()

    def describe(self) -> str:
        head = f"{self.function}: " + (f"FAILED: {self.error}" if self.error else "ok")
        if self.rolled_back is None:
            return head + "; left as it was"
        if self.rolled_back:
            return head + "; its previous layers were restored"
        return (head + f"; could NOT restore its previous layers ({self.rollback_error}); it now "
                f"has [{', '.join(self.layers_now)}], restore [{', '.join(self.old_layers)}] "
                "by hand")


# --- layer lists (pure) -------------------------------------------------------------------------

def layer_base_arn(version_arn: str) -> str:
    """The layer ARN without its `:<version>`; SpecError when version_arn is not a version ARN."""
    match = _VERSION_ARN.fullmatch(version_arn.strip()) if isinstance(version_arn, str) else None
    if not match:
        raise SpecError("layer_version_arn", f"{version_arn!r} is not a layer version ARN",
                        "expected arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION")
    return match.group(1)


def layer_arn(layer_arn_or_version_arn: str) -> str:
    """The layer ARN of either a layer ARN or a layer version ARN."""
    text = layer_arn_or_version_arn.strip() if isinstance(layer_arn_or_version_arn, str) else ""
    if _LAYER_ARN.fullmatch(text):
        return text
    if _VERSION_ARN.fullmatch(text):
        return layer_base_arn(text)
    raise SpecError("layer", f"{layer_arn_or_version_arn!r} is not a layer ARN",
                    "expected arn:aws:lambda:REGION:ACCOUNT:layer:NAME[:VERSION]")


def swap_layers(current: list[str], new_version_arn: str, position: int | None = None,
                replacing: str | None = None, move: bool = False) -> list[str]:
    """current with any version of new_version_arn's layer replaced by it, in the same place; when
    absent it is added at `position` (0 = first; None or past the end = last). Other layers keep
    their order, and the layer never appears twice. `replacing` (a layer or layer version ARN):
    a layer this one takes over from (e.g. renamed), whose versions are replaced the same way.
    move: put it at `position` even where a version of it already is (position changed)."""
    bases = {layer_base_arn(new_version_arn)}
    if replacing:
        bases.add(layer_arn(replacing))
    if position is not None and (not isinstance(position, int) or position < 0):
        raise SpecError("position", f"{position!r} is not a layer position",
                        "use 0 for first, 1 for second, ...; leave it out for last")
    result: list[str] = []
    placed = False
    for arn in current:
        if _base(arn) in bases:
            if not placed and not move:
                result.append(new_version_arn)
                placed = True
        else:
            result.append(arn)
    if not placed:
        result.insert(len(result) if position is None else min(position, len(result)),
                      new_version_arn)
    return result


def remove_layer(current: list[str], layer: str) -> list[str]:
    """current without any version of layer (a layer ARN or a layer version ARN)."""
    base = layer_arn(layer)
    return [arn for arn in current if _base(arn) != base]


def version_in(cfg: dict[str, Any], base: str) -> str | None:
    """The version ARN of layer `base` that a function configuration (get_function_configuration
    or a list_functions item) lists, or None."""
    return next((arn for arn in _layer_arns(cfg) if _base(arn) == base), None)


# --- attach / detach ----------------------------------------------------------------------------

def attach(target: AwsTarget, layer_version_arn: str, functions: Sequence[str],
           position: int | None = None, sleep: Sleep = time.sleep,
           timeout: float = DEFAULT_TIMEOUT,
           confirm: Callable[[list[Change]], bool] | None = None,
           replacing: str | None = None, move: bool = False,
           unzipped_size: int | None = None, clients: ClientFactory = make_client) -> list[Change]:
    """Point each function (name or ARN) at layer_version_arn, replacing any other version of the
    same layer (or of the layer `replacing` names) in its place, or adding it at `position` (with
    `move`, a version already there moves to `position` too). Returns the changes made (functions
    already on this version and place are skipped).

    All functions are read and checked first: at most 5 layers each, and code plus layers within
    250 MB (262,144,000 bytes) unzipped. For this layer the check uses `unzipped_size` when given
    (a LambdaLayerBuild's); Lambda reports only zipped sizes (CodeSize) of the function code and
    of every other layer, and a zipped size is a lower bound of the unzipped one. So a function is
    refused only when even that lower bound is over the limit: a certain failure, caught before
    anything changes; Lambda still checks the real figure on update. Nothing changes unless every
    function passes. `confirm`, if given, sees the planned changes and may cancel
    (return False: nothing changes, [] is returned).

    Each update carries the RevisionId that was read, so a function changed meanwhile by someone
    else is not overwritten; after each update we wait (with `sleep`, up to `timeout` seconds)
    until Lambda reports it Successful; a function busy with another update, or throttling, is
    waited out within the same `timeout`. If any update fails, the functions already changed
    (an update Lambda accepted counts, even when waiting for it then failed) get their old layers
    back and AttachError lists every function with what became of it.
    """
    layer_base_arn(layer_version_arn)  # bad input fails before any AWS call
    lam = clients(target, "lambda")
    zipped = _layer_size(target, lam, layer_version_arn, clients)
    new_size: Size = (unzipped_size, True) if unzipped_size is not None else (zipped, False)
    return _apply(lam, "attach", layer_version_arn, functions,
                  lambda old: swap_layers(old, layer_version_arn, position, replacing, move),
                  {layer_version_arn: new_size}, sleep, timeout, confirm)


def detach(target: AwsTarget, layer_arn_or_version_arn: str, functions: Sequence[str],
           sleep: Sleep = time.sleep, timeout: float = DEFAULT_TIMEOUT,
           confirm: Callable[[list[Change]], bool] | None = None,
           clients: ClientFactory = make_client) -> list[Change]:
    """Remove any version of the layer from each function; same safety as `attach`."""
    base = layer_arn(layer_arn_or_version_arn)
    return _apply(clients(target, "lambda"), "detach", base, functions,
                  lambda old: remove_layer(old, base), {}, sleep, timeout, confirm)


def rollback(target: AwsTarget, changes: Sequence[Change], sleep: Sleep = time.sleep,
             timeout: float = DEFAULT_TIMEOUT,
             clients: ClientFactory = make_client) -> list[FunctionOutcome]:
    """Give each changed function (from attach/detach) its old layers back, newest change first,
    each guarded by the revision our change produced: a later change by someone else wins over
    the rollback. Returns what became of each function, in the order of `changes`."""
    lam = clients(target, "lambda")
    return [_restore(lam, change, None, sleep, timeout) for change in reversed(changes)][::-1]


def attached_versions(target: AwsTarget, functions: Sequence[str], layer_base: str, *,
                      clients: ClientFactory = make_client) -> dict[str, str | None]:
    """Function -> the version ARN of layer_base it uses (None: no version of it). Functions that
    no longer exist are left out, so a refresh can tell "detached" from "gone"."""
    base = layer_arn(layer_base)
    lam = clients(target, "lambda")
    found: dict[str, str | None] = {}
    for fn in functions:
        try:
            cfg = call(lam.get_function_configuration, fn, FunctionName=fn)
        except NotFound:
            continue
        found[fn] = version_in(cfg, base)
    return found


def function_arns(target: AwsTarget, functions: Sequence[str], *,
                  clients: ClientFactory = make_client) -> dict[str, str]:
    """Function (name or ARN, as given) -> its ARN; functions that do not exist are left out."""
    lam = clients(target, "lambda")
    found: dict[str, str] = {}
    for fn in functions:
        try:
            found[fn] = call(lam.get_function_configuration, fn, FunctionName=fn)["FunctionArn"]
        except NotFound:
            continue
    return found


# --- internals ----------------------------------------------------------------------------------

def _apply(lam: Any, operation: str, layer: str, functions: Sequence[str],
           compute: Callable[[list[str]], list[str]], extra_sizes: dict[str, Size],
           sleep: Sleep, timeout: float,
           confirm: Callable[[list[Change]], bool] | None) -> list[Change]:
    plan: list[Change] = []
    refused: dict[str, str] = {}
    seen: set[str] = set()
    for fn in functions:
        try:
            cfg = _settled(lam, fn, sleep, timeout)
            if cfg["FunctionArn"] in seen:
                continue
            seen.add(cfg["FunctionArn"])
            change = _plan(fn, cfg, compute, extra_sizes)
        except (_Refused, PublishError) as exc:
            refused[fn] = str(exc)
            continue
        if change is not None:
            plan.append(change)
    if refused:
        raise AttachError(operation, layer, [FunctionOutcome(fn, refused.get(fn))
                                             for fn in dict.fromkeys(functions)])
    if not plan or (confirm is not None and not confirm(list(plan))):
        return []

    done: list[Change] = []
    for index, change in enumerate(plan):
        if index:
            fault_hook("between-functions")
        try:
            sent = _send(lam, change, f"{operation}ing", sleep, timeout)
        except (_Refused, PublishError) as exc:
            _undo(lam, operation, layer, plan, done, change.function, str(exc), sleep, timeout)
        # Changed from here on, settled or not: a wait that fails (timeout, Failed, an error)
        # must roll this function back too, not report it "left as it was".
        done.append(sent)
        try:
            done[-1] = _wait(lam, sent, sleep, timeout)
        except _UpdateFailed as exc:
            done[-1] = replace(sent, new_revision=exc.revision or sent.new_revision)
            _undo(lam, operation, layer, plan, done, change.function, str(exc), sleep, timeout)
        except (_Refused, PublishError) as exc:
            _undo(lam, operation, layer, plan, done, change.function, str(exc), sleep, timeout)
    return done


def _plan(fn: str, cfg: dict[str, Any], compute: Callable[[list[str]], list[str]],
          extra_sizes: dict[str, Size]) -> Change | None:
    if cfg.get("PackageType") == "Image":
        raise _Refused("a container-image function cannot use layers (put the files in the image)")
    old = _layer_arns(cfg)
    new = compute(old)
    if new == old:
        return None
    if len(new) > MAX_LAYERS:
        raise _Refused(f"would have {len(new)} layers, Lambda allows {MAX_LAYERS} per function: "
                       f"it has [{', '.join(old)}]; detach one first")
    # Lambda reports zipped sizes only, a lower bound of the unzipped ones it limits; the sum of
    # the best figures known is a lower bound too, so over the limit means Lambda will refuse.
    sizes: dict[str, Size] = {item["Arn"]: (int(item.get("CodeSize") or 0), False)
                              for item in cfg.get("Layers") or []}
    sizes.update(extra_sizes)
    code = int(cfg.get("CodeSize") or 0)
    parts = [(arn, *sizes.get(arn, (0, False))) for arn in new]
    total = code + sum(size for _, size, _ in parts)
    if total > UNZIPPED_LIMIT:
        listed = ", ".join(f"{arn} {_mb(size)} {'unzipped' if exact else 'zipped'}"
                           for arn, size, exact in parts)
        raise _Refused(f"function {fn} would need at least {_mb(total)} ({total:,} bytes): code "
                       f"{_mb(code)} zipped + layers ({listed}); Lambda allows "
                       f"{_mb(UNZIPPED_LIMIT)} ({UNZIPPED_LIMIT:,} bytes) for code plus layers "
                       "unzipped, and a zipped size is only a lower bound of the unzipped one: "
                       "slim the layer or the function, or detach a layer")
    return Change(fn, cfg["FunctionArn"], tuple(old), tuple(new), cfg.get("RevisionId"))


class _UpdateFailed(_Refused):
    """Lambda took the update but reported LastUpdateStatus Failed."""

    def __init__(self, message: str, revision: str | None) -> None:
        super().__init__(message)
        self.revision = revision


def _send(lam: Any, change: Change, activity: str, sleep: Sleep, timeout: float,
          layers: tuple[str, ...] | None = None, revision: str | None = None) -> Change:
    """Send change.new_layers (or `layers`) guarded by the revision read; returns the change with
    the revision Lambda reports for it. The update may still be in progress (see _wait)."""
    fn = change.function
    request: dict[str, Any] = {"FunctionName": fn,
                               "Layers": list(change.new_layers if layers is None else layers)}
    guard = change.old_revision if revision is None else revision
    if guard:  # an endpoint that reports no RevisionId (moto) cannot check one either
        request["RevisionId"] = guard
    try:
        answer = _patient(lam.update_function_configuration, fn, f"{activity} (update its layers)",
                          sleep, timeout, **request)
    except PublishError as exc:
        if exc.code != "PreconditionFailedException":
            raise
        if resent(exc):
            # An earlier attempt may have landed (its answer lost) and renewed the RevisionId that
            # guards the resend: ours, if the function now has exactly the layers we sent.
            cfg = call(lam.get_function_configuration, fn, FunctionName=fn)
            if _layer_arns(cfg) == request["Layers"]:
                return replace(change, new_revision=cfg.get("RevisionId") or guard)
        raise _Refused(f"function {fn} changed while {activity}; retry ({exc})") from exc
    return replace(change, new_revision=answer.get("RevisionId") or guard)


def _wait(lam: Any, change: Change, sleep: Sleep, timeout: float) -> Change:
    """change, with the revision Lambda reports once its update is done; _UpdateFailed when
    Lambda reports it Failed."""
    cfg = _settled(lam, change.function, sleep, timeout)
    if cfg.get("LastUpdateStatus") == "Failed":
        raise _UpdateFailed(f"Lambda reports the update Failed: "
                            f"{cfg.get('LastUpdateStatusReason') or 'no reason given'} "
                            f"({cfg.get('LastUpdateStatusReasonCode') or 'no code'})",
                            cfg.get("RevisionId"))
    return replace(change, new_revision=cfg.get("RevisionId"))


def _patient(method: Callable[..., Any], fn: str, activity: str, sleep: Sleep, timeout: float,
             **kwargs: Any) -> Any:
    """call(method), waiting out a function busy with another update (ResourceConflict) and
    throttling (beyond botocore's own retries): back off 1, 2, 4, 5, 5... s and retry until
    `timeout` seconds were waited, then _Refused naming the function, the call and the fix."""
    waited, delay, tries = 0.0, 1.0, 0
    while True:
        tries += 1
        try:
            return call(method, fn, **kwargs)
        except PublishError as exc:
            if exc.code not in _BUSY_CODES | _THROTTLED_CODES:
                raise
            if waited >= timeout:
                fix = ("another update of the function is still in progress: let it finish, "
                       "then deploy again" if exc.code in _BUSY_CODES else
                       "the account's Lambda request rate is used up: deploy fewer stacks at once "
                       "or ask AWS for a higher rate quota, then deploy again")
                raise _Refused(
                    f"function {fn}: {getattr(method, '__name__', 'the call')} while {activity} "
                    f"was refused {tries} times over {waited:.0f} s ({exc.code}: {exc.problem}); "
                    f"fix: {fix}, or raise the timeout ({timeout:.0f} s)") from exc
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)


def _undo(lam: Any, operation: str, layer: str, plan: list[Change], done: list[Change],
          failed_fn: str, reason: str, sleep: Sleep, timeout: float) -> NoReturn:
    """Give every changed function its old layers back (newest change first), then raise."""
    outcomes = {c.function: FunctionOutcome(c.function) for c in plan}
    outcomes[failed_fn] = FunctionOutcome(failed_fn, reason)
    for change in reversed(done):
        outcomes[change.function] = _restore(lam, change, outcomes[change.function].error, sleep,
                                             timeout)
    raise AttachError(operation, layer, list(outcomes.values()))


def _restore(lam: Any, change: Change, error: str | None, sleep: Sleep,
             timeout: float) -> FunctionOutcome:
    """Put change.old_layers back, guarded by the revision our own update produced (a later
    change by someone else wins over the rollback)."""
    try:
        undone = _send(lam, change, "rolling back", sleep, timeout, layers=change.old_layers,
                       revision=change.new_revision)
        _wait(lam, undone, sleep, timeout)
        return FunctionOutcome(change.function, error, rolled_back=True)
    except (_Refused, PublishError) as exc:
        return FunctionOutcome(change.function, error, rolled_back=False, rollback_error=str(exc),
                               layers_now=change.new_layers, old_layers=change.old_layers)


def _settled(lam: Any, fn: str, sleep: Sleep, timeout: float) -> dict[str, Any]:
    """The function's configuration once no update or creation is in progress."""
    waited, delay = 0.0, 1.0
    while True:
        cfg: dict[str, Any] = _patient(lam.get_function_configuration, fn,
                                       "reading its configuration", sleep, timeout, FunctionName=fn)
        busy = cfg.get("LastUpdateStatus") == "InProgress" or cfg.get("State") == "Pending"
        if not busy:
            return cfg
        if waited >= timeout:
            raise _Refused(f"function {fn} is still updating after {waited:.0f} s "
                           f"(State {cfg.get('State')}, LastUpdateStatus "
                           f"{cfg.get('LastUpdateStatus')}); retry later or raise the timeout")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, 5.0)


def _layer_size(target: AwsTarget, lam: Any, version_arn: str, clients: ClientFactory) -> int:
    base = layer_base_arn(version_arn)
    version = int(version_arn.rsplit(":", 1)[1])
    try:
        answer = call(lam.get_layer_version, version_arn, LayerName=base, VersionNumber=version)
    except PublishError as exc:
        if exc.code == "AccessDeniedException":
            raise _not_shared(target, version_arn, exc, clients) from exc
        raise
    return int((answer.get("Content") or {}).get("CodeSize") or 0)


def _not_shared(target: AwsTarget, version_arn: str, denied: PublishError,
                clients: ClientFactory) -> PublishError:
    """The AccessDenied of a layer version from another account, saying whose share_with to fix."""
    owner = version_arn.split(":")[4]
    try:
        caller = call(clients(target, "sts").get_caller_identity, "caller")["Account"]
        who, add = f"account {caller}", repr(caller)
    except PublishError:  # the fix still applies; only the number is missing
        who, add = "this account", "this account's id"
    return PublishError(
        "get_layer_version", version_arn,
        f"{who} may not use this layer version: its owner, account {owner}, has not shared it "
        f"with {who} ({denied.problem})",
        f"add {add} to share_with of the LambdaLayerBuild that publishes it (in account {owner}) "
        "and run `pulumi up` there, or grant it with `aws lambda add-layer-version-permission`",
        code=denied.code)


def _layer_arns(cfg: dict[str, Any]) -> list[str]:
    return [item["Arn"] for item in cfg.get("Layers") or []]


def _base(arn: str) -> str:
    match = _VERSION_ARN.fullmatch(arn)
    return match.group(1) if match else arn


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"

"""The only importer of boto3: sessions, clients (retries, user agent), errors as PublishError."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

from pulumi_lambda_layers.errors import NotFound, PublishError

USER_AGENT = "pulumi-lambda-layers"
# Retries are botocore's "standard" mode, not ours: it retries throttling (TooManyRequestsException:
# a program publishes and re-points many layers at once, and other stacks share the account's
# Lambda request rate) and transient 5xx and connection errors, with capped exponential backoff and
# jitter. 6 attempts: throttled calls back off 1, 2, 4, 8, 16 s at most (with jitter), long enough
# for a burst to pass, short enough that an endpoint that stays down fails the step in well under a
# minute. Set on the client's Config, which wins over AWS_RETRY_MODE, AWS_MAX_ATTEMPTS and the
# config file: how long a deploy waits out throttling must not depend on the deploying machine.
# total_max_attempts counts the first try; Config's "max_attempts" would count retries only.
RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 6}

# A boto3 client of one service for a target (the default: make_client). Every public AWS function
# takes one as `clients=`, so tests hand in Stubber-wrapped or wrapped moto clients.
ClientFactory = Callable[["AwsTarget", str], Any]

# boto3 is imported on the first AWS call, not with this module: it costs ~0.12 s, which every
# preview would pay twice (program and provider) although a preview never calls AWS.
_BOTO_LOCK = threading.Lock()
_LOADER: Any = None


@dataclass(frozen=True)
class AwsTarget:
    """Where layers live: region, profile, an optional role to assume (None: boto3's defaults)."""

    region: str | None = None
    profile: str | None = None
    assume_role_arn: str | None = None


def make_client(target: AwsTarget, service: str) -> Any:
    """The client of service for target, from a new session (the default ClientFactory).

    A new session per call: nothing long-lived to pickle into Pulumi state or to expire (assumed
    role credentials last an hour; a deploy can outlast them)."""
    return _client(session(target), service)


def session(target: AwsTarget) -> boto3.Session:
    """A boto3 session for target; assumes target.assume_role_arn through STS when set."""
    base = _boto3_session(region_name=target.region)
    if target.profile:
        if target.profile not in base.available_profiles:
            fail("session", f"profile {target.profile!r}", "no such profile in the AWS config",
                 f"one of {sorted(base.available_profiles)}, or fix AWS_CONFIG_FILE")
        base = _boto3_session(profile_name=target.profile, region_name=target.region)
    if not target.assume_role_arn:
        return base
    sts = _client(base, "sts")
    creds = call(sts.assume_role, target.assume_role_arn, RoleArn=target.assume_role_arn,
                 RoleSessionName="pulumi-lambda-layers")["Credentials"]
    return _boto3_session(aws_access_key_id=creds["AccessKeyId"],
                          aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token=creds["SessionToken"], region_name=base.region_name)


def client_config() -> Config:
    """The botocore Config of every client: RETRIES and this library's user agent."""
    from botocore.config import Config

    return Config(retries=dict(RETRIES), user_agent_extra=USER_AGENT)  # botocore edits the dict


def call(method: Callable[..., Any], resource: str, **kwargs: Any) -> Any:
    """Call a boto3 client method; AWS failures become PublishError (NotFound for 404s)."""
    with aws_errors(getattr(method, "__name__", "aws call"), resource):
        return method(**kwargs)


@contextmanager
def aws_errors(operation: str, resource: str) -> Iterator[None]:
    """AWS failures inside the block (paginators, streamed bodies) become PublishError/NotFound."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        problem = f"{err.get('Message') or exc} ({code})" if code else str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        missing = code in ("ResourceNotFoundException", "NoSuchKey") or status == 404
        raise (NotFound if missing else PublishError)(operation, resource, problem,
                                                      code=code) from exc
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, bad parameters
        raise PublishError(operation, resource, str(exc)) from exc


def resent(error: BaseException) -> bool:
    """Whether botocore sent the failed request more than once (RetryAttempts > 0): an earlier
    attempt may have landed although its answer was lost."""
    response = getattr(error.__cause__, "response", None) or {}
    return int((response.get("ResponseMetadata") or {}).get("RetryAttempts") or 0) > 0


def fail(operation: str, resource: str, problem: str, fix: str = "",
         size: int | None = None) -> NoReturn:
    """Raise the PublishError of a failure found here rather than answered by AWS."""
    raise PublishError(operation, resource, problem, fix, size=size)


def _loader() -> Any:
    """The one botocore model loader. Every call makes its own session (see make_client); parsing
    the service models anew costs ~0.2 s per session, so sessions share one loader (read-only
    model data), made once under a lock (provider creates run in threads)."""
    global _LOADER
    with _BOTO_LOCK:
        if _LOADER is None:
            import botocore.loaders

            _LOADER = botocore.loaders.create_loader()
        return _LOADER


def _boto3_session(**kwargs: Any) -> boto3.Session:
    import boto3
    import botocore.session

    loader = _loader()
    core = botocore.session.get_session()
    core.register_component("data_loader", loader)
    sess = boto3.Session(botocore_session=core, **kwargs)
    # boto3 appends its resource-model folder to the loader for each session: keep it once.
    loader.search_paths[:] = dict.fromkeys(loader.search_paths)
    return sess


def _client(sess: boto3.Session, service: str) -> Any:
    from botocore.exceptions import BotoCoreError

    try:
        return sess.client(service, config=client_config())
    except BotoCoreError as exc:  # e.g. NoRegionError
        fail("create_client", service, str(exc),
             "set region on the target, AWS_REGION or a profile region")

"""A moto server that, like Lambda, lets functions use layers shared from another account.

moto 5.2.5 looks every layer version ARN up in the *caller's* account (so account B cannot use a
version account A shared with it: ResourceNotFoundException) and ignores RevisionId on function
updates (functions report none). This server patches both, in its own process, as Lambda does:
- a layer version ARN resolves in its owner account (from the ARN); another account may use or
  read it only when the version's policy grants lambda:GetLayerVersion to its account id, to "*",
  or to "*" with an aws:PrincipalOrgID / OrganizationId its account belongs to (moto
  Organizations); otherwise AccessDeniedException (403);
- functions carry a RevisionId that every configuration or code update renews, and an update
  naming another RevisionId fails with PreconditionFailedException (412);
- STS refuses to assume a role whose name starts with `pll-untrusted` (AccessDenied, as for a
  role whose trust policy leaves the caller out; moto checks no trust policy).

Run `python tests/moto_cross_account.py -H 127.0.0.1 -p PORT`, or `start_cross_account_moto()`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


UNTRUSTED_ROLE_PREFIX = "pll-untrusted"  # roles this server's STS refuses to hand out


class CrossAccountMoto:
    """A running patched moto server; stop() ends it (also on leaving a `with` block)."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def __enter__(self) -> CrossAccountMoto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cross_account_moto(timeout: float = 30) -> CrossAccountMoto:
    """Start the patched moto server on a free 127.0.0.1 port and wait until it listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # The server logs every request on stderr: a file, not a pipe nobody drains, which would
    # fill up and stall the server after a few hundred requests.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError("cross-account moto exited at start: "
                               f"{log.read().decode(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return CrossAccountMoto(f"http://127.0.0.1:{port}", proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"cross-account moto did not listen on 127.0.0.1:{port} within {timeout} s")


# --- the patches (applied only inside the server process) ---------------------------------------

def _patch_moto() -> None:
    from urllib.parse import unquote

    from moto.awslambda import models, responses
    from moto.awslambda.exceptions import PreconditionFailedException, UnknownLayerVersionException
    from moto.core.exceptions import JsonRESTError

    class AccessDenied(JsonRESTError):
        code = 403

        def __init__(self, account: str, arn: str) -> None:
            super().__init__("AccessDeniedException",
                             f"User: arn:aws:iam::{account}:root is not authorized to perform: "
                             f"lambda:GetLayerVersion on resource: {arn} because no "
                             "resource-based policy allows the lambda:GetLayerVersion action")

    def shared_version(caller: str, region: str, arn: str) -> Any:
        """The layer version arn names, looked up in its owner account; None when absent."""
        parts = arn.split(":")  # arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION
        if len(parts) != 8 or parts[5] != "layer" or parts[3] != region:
            return None
        owner = parts[4]
        found = models.lambda_backends[owner][region]._layers.get_layer_version_by_arn(arn)
        if found is not None and owner != caller and not _grants(found.policy.statements, caller):
            raise AccessDenied(caller, arn)
        return found

    def layers_versions_by_arn(self: Any, layer_version_arn: str) -> Any:
        return shared_version(self.account_id, self.region_name, layer_version_arn)

    original_get_layer_version = responses.LambdaResponse.get_layer_version

    def get_layer_version(self: Any) -> str:
        name = unquote(self.path.split("/")[-3])
        if not name.startswith("arn:"):
            return original_get_layer_version(self)
        arn = f"{name}:{self.path.split('/')[-1]}"
        found = shared_version(self.backend.account_id, self.backend.region_name, arn)
        if found is None:
            raise UnknownLayerVersionException([arn])
        return json.dumps(found.get_layer_version())

    models.LambdaBackend.layers_versions_by_arn = layers_versions_by_arn
    responses.LambdaResponse.get_layer_version = get_layer_version

    # RevisionId: renewed by every update; an update naming an older one is refused.
    def revision(fn: Any) -> str:
        if not getattr(fn, "_revision_id", None):
            fn._revision_id = str(uuid.uuid4())
        return str(fn._revision_id)

    def renewing(method: Any) -> Any:
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._revision_id = str(uuid.uuid4())
            return method(self, *args, **kwargs)
        return wrapped

    original_configuration = models.LambdaFunction.get_configuration

    def get_configuration(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**original_configuration(self, *args, **kwargs), "RevisionId": revision(self)}

    def guarded(method: Any) -> Any:
        def wrapped(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
            wanted = body.get("RevisionId")
            if wanted and wanted != revision(self.get_function(function_name, qualifier)):
                raise PreconditionFailedException(
                    "The Revision Id provided does not match the latest Revision Id. Call the "
                    "GetFunction/GetAlias API to retrieve the latest Revision Id")
            return method(self, function_name, qualifier, body)
        return wrapped

    models.LambdaFunction.get_configuration = get_configuration

    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    original_assume_role = STSBackend.assume_role

    def assume_role(self: Any, region_name: str, role_session_name: str, role_arn: str,
                    *args: Any, **kwargs: Any) -> Any:
        if role_arn.split(":role/")[-1].startswith(UNTRUSTED_ROLE_PREFIX):
            raise STSClientError("AccessDenied", f"User: arn:aws:iam::{self.account_id}:user/"
                                 f"deployer is not authorized to perform: sts:AssumeRole on "
                                 f"resource: {role_arn}")
        return original_assume_role(self, region_name, role_session_name, role_arn, *args,
                                    **kwargs)

    STSBackend.assume_role = assume_role
    models.LambdaFunction.update_configuration = renewing(models.LambdaFunction.update_configuration)
    models.LambdaFunction.update_function_code = renewing(models.LambdaFunction.update_function_code)
    models.LambdaBackend.update_function_configuration = guarded(
        models.LambdaBackend.update_function_configuration)
    models.LambdaBackend.update_function_code = guarded(models.LambdaBackend.update_function_code)


def _grants(statements: list[dict[str, Any]], account: str) -> bool:
    """Whether a layer version policy lets `account` read the version."""
    for s in statements:
        actions = s.get("Action")
        actions = [actions] if isinstance(actions, str) else actions or []
        if s.get("Effect", "Allow") != "Allow" or not {"lambda:GetLayerVersion",
                                                         "lambda:*"} & set(actions):
            continue
        principal = s.get("Principal")
        if isinstance(principal, dict):
            principal = principal.get("AWS")
        if principal in (account, f"arn:aws:iam::{account}:root"):
            return True
        if principal == "*":
            org = (s.get("Condition", {}).get("StringEquals", {}).get("aws:PrincipalOrgID")
                   or s.get("OrganizationId"))
            if not org or org == _organization_of(account):
                return True
    return False


def _organization_of(account: str) -> str | None:
    from moto.organizations.models import organizations_backends

    master, partition = organizations_backends.master_accounts.get(account, (account, "aws"))
    org = organizations_backends[master][partition].org
    return org.id if org else None


if __name__ == "__main__":
    _patch_moto()
    from moto.server import main

    main(sys.argv[1:])

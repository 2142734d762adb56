"""Throwaway Lambda functions and layers in a moto server, for tests that re-point functions."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Sequence
from typing import Any

import boto3

_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def uid(prefix: str) -> str:
    """A name no other test uses (one moto server serves the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def handler_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


def make_function(lam: Any, layers: Sequence[str] = (), iam: Any = None) -> str:
    """A new function with these layers (moto wants an IAM role in the function's account)."""
    iam = iam or boto3.client("iam")
    role = iam.create_role(RoleName=uid("pll-fn"), AssumeRolePolicyDocument=_TRUST)["Role"]["Arn"]
    name = uid("fn")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler",
                        Code={"ZipFile": handler_zip()}, Layers=list(layers))
    return name


def layers_of(lam: Any, fn: str) -> list[str]:
    return [item["Arn"] for item in lam.get_function_configuration(FunctionName=fn).get("Layers", [])]

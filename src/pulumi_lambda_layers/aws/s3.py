"""Objects in S3: the shared build cache's zips and facts, and layer zips staged for publishing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.aws.client import AwsTarget, ClientFactory, aws_errors, call, make_client
from pulumi_lambda_layers.errors import NotFound, PublishError

log = logging.getLogger(__name__)


def download_object(target: AwsTarget, bucket: str, key: str, dest: Path, *,
                    clients: ClientFactory = make_client) -> bool:
    """Write s3://bucket/key to dest; False when there is no such object (a 404). Anything else
    (denied, which S3 also answers for a missing key without s3:ListBucket; 5xx; a timeout; an
    unreachable endpoint) raises PublishError: the shared cache treats it as a warned miss."""
    s3 = clients(target, "s3")
    try:
        body = call(s3.get_object, f"s3://{bucket}/{key}", Bucket=bucket, Key=key)["Body"]
    except NotFound:
        return False
    with aws_errors("get_object", f"s3://{bucket}/{key}"), body, open(dest, "wb") as out:
        for chunk in body.iter_chunks(1 << 20):
            out.write(chunk)
    return True


def upload_object(target: AwsTarget, bucket: str, key: str, path: Path, *,
                  clients: ClientFactory = make_client) -> None:
    """Write the file at path to s3://bucket/key."""
    put(clients(target, "s3"), bucket, key, path, f"check that bucket {bucket!r} exists and that "
        "these credentials may write to it")


def put(s3: Any, bucket: str, key: str, path: Path, fix: str) -> None:
    """Write the file at path to s3://bucket/key with an s3 client; a failure carries `fix`."""
    try:
        with path.open("rb") as body:
            call(s3.put_object, f"s3://{bucket}/{key}", Bucket=bucket, Key=key, Body=body)
    except PublishError as exc:
        raise PublishError(exc.operation, exc.resource, exc.problem, fix, code=exc.code) from exc


def delete_quietly(s3: Any, bucket: str, key: str) -> None:
    """Delete s3://bucket/key; a failure is only logged (the caller's work is done either way)."""
    try:
        call(s3.delete_object, f"s3://{bucket}/{key}", Bucket=bucket, Key=key)
    except PublishError as exc:
        log.warning("could not remove s3://%s/%s: %s", bucket, key, exc)

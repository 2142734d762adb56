"""Shared fixtures: moto servers on 127.0.0.1 (plain, and patched for cross-account layers) and small
dependency specs written to tmp dirs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.moto_cross_account import CrossAccountMoto, start_cross_account_moto

HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dead_url() -> str:
    """http://127.0.0.1:<a port nobody listens on>: an endpoint or proxy that refuses at once."""
    return f"http://127.0.0.1:{_free_port()}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server process on a free 127.0.0.1 port; yields its endpoint URL."""
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if moto is None:
        raise RuntimeError("moto_server is not installed in this venv: run `make venv` "
                           "(installs moto[server] from pyproject's dev extra)")
    port = _free_port()
    # It logs every request on stderr: into a file, since a pipe nobody drains fills up and then
    # stalls the server mid-suite.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"moto_server exited at start: "
                               f"{log.read().decode(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{port} within 30 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the moto server with dummy credentials; yields the endpoint URL."""
    for key, value in {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server



@pytest.fixture(scope="session")
def cross_moto() -> Iterator[CrossAccountMoto]:
    """The moto server patched for layers shared across accounts and RevisionId (one per session)."""
    with start_cross_account_moto() as server:
        yield server


@pytest.fixture()
def cross_env(cross_moto: CrossAccountMoto, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the patched moto server (account 123456789012 by default); yields its URL."""
    for key, value in {"AWS_ENDPOINT_URL": cross_moto.url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return cross_moto.url


def role_arn(account: str) -> str:
    """A role in `account` to assume; moto's STS hands out credentials for that account."""
    return f"arn:aws:iam::{account}:role/pll-deployer"


def client_in(account: str, service: str = "lambda") -> Any:
    """A boto3 client acting in `account` (through moto's STS assume-role)."""
    creds = boto3.client("sts").assume_role(RoleArn=role_arn(account),
                                            RoleSessionName="pll-test")["Credentials"]
    return boto3.client(service, aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])

def write(path: Path, text: str) -> Path:
    """Write text to path (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def npm_locked_project(root: Path, deps: dict[str, str], name: str = "layer") -> Path:
    """package.json with these dependencies and the package-lock.json npm writes for it (as a
    user commits it); returns the package.json path."""
    import json

    from pulumi_lambda_layers.tools import npm_command

    manifest = write(root / "package.json", json.dumps({"name": name, "version": "1.0.0",
                                                        "dependencies": deps}))
    subprocess.run([*npm_command(), "install", "--package-lock-only", "--ignore-scripts",
                    "--no-audit", "--no-fund"], cwd=root, check=True, capture_output=True)
    return manifest


def docker_build_options() -> dict[str, str]:
    """What a build container needs on these machines to reach PyPI/npm (and corporate users too)."""
    return {"network_mode": "host", "ca_bundle": HOST_CA_BUNDLE}


@pytest.fixture(autouse=True)
def _no_user_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # A developer's ~/.aws must never leak into a test (real credentials, another region).
    home = tmp_path_factory.getbasetemp() / "aws-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
    os.environ.pop("AWS_PROFILE", None)

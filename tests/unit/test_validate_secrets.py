"""Credential files in a layer zip are refused, naming the file and how to exclude it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pulumi_lambda_layers.runtimes import RUNTIMES
from pulumi_lambda_layers.validate import inspect_zip

PY311 = RUNTIMES["python3.11"]
SP = "python/lib/python3.11/site-packages"
KEY = (b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
       b"-----END OPENSSH PRIVATE KEY-----\n")
CERT = (b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZ3Jvb3QtdGVzdC1maXh0dXJl\n"
        b"-----END CERTIFICATE-----\n")

REFUSED = {
    "python/.netrc": b"machine pypi.example login ci password hunter2\n",
    "python/_netrc": b"machine pypi.example login ci password hunter2\n",
    "python/.pypirc": b"[pypi]\nusername = __token__\npassword = pypi-abc\n",
    "python/pip.conf": b"[global]\nindex-url = https://pypi.example/simple\npassword = hunter2\n",
    "python/pip.ini": b"[global]\nindex-url = https://ci-bot:TOKEN@pypi.example/simple\n",
    "python/.npmrc": b"//registry.npmjs.org/:_authToken=abc\n",
    "nodejs/.npmrc": b"registry=https://npm.example/\n_auth=Y2k6aHVudGVyMg==\n",
    "nodejs/node_modules/x/.npmrc": b"//npm.example/:_password=aHVudGVyMg==\n",
    "python/.aws/credentials": b"[default]\naws_access_key_id = AKIAEXAMPLE\n",
    "python/.aws/config": b"[profile ci]\naws_secret_access_key = abc123\n",
    "python/.ssh/id_rsa": b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
    "python/id_ed25519": KEY,
    f"{SP}/pkg/server.pem": b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    f"{SP}/pkg/tls.key": b"-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n",
    f"{SP}/pkg/bundle.pem": CERT + b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n",
    "python/.git-credentials": b"https://ci:ghp_abc@github.com\n",
    "python/.docker/config.json": b'{"auths": {"ghcr.io": {"auth": "Y2k6aHVudGVyMg=="}}}\n',
}

PASSED = {
    f"{SP}/certifi/cacert.pem": CERT,
    f"{SP}/pkg/tests/fixtures/server.crt.pem": CERT,
    f"{SP}/pkg/public.key": b"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
    "python/.npmrc": b"registry=https://npm.example/\n//npm.example/:_authToken=${NPM_TOKEN}\n",
    "nodejs/.npmrc": b"save-exact=true\n",
    "python/pip.conf": b"[global]\nindex-url = https://pypi.example/simple\ntimeout = 60\n",
    "python/.ssh/id_rsa.pub": b"ssh-ed25519 AAAAC3Nz ci@host\n",
    "python/.docker/config.json": b'{"auths": {"ghcr.io": {}}, "credsStore": "pass"}\n',
    "python/.aws/config": b"[default]\nregion = us-east-1\n",
    f"{SP}/pkg/credentials.py": b"password = 'not a file rule'\n",
}


def _zip(tmp_path: Path, entries: dict[str, bytes]) -> Path:
    out = tmp_path / "layer.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{SP}/pkg/__init__.py", b"")
        for name, data in entries.items():
            zf.writestr(name, data)
    return out


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_kind_of_credential_file_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    report = inspect_zip(_zip(tmp_path, {name: REFUSED[name]}), PY311, "x86_64")
    found = [f for f in report.errors if f.code == "credentials"]
    assert [f.path for f in found] == [name]
    assert not report.ok
    message = found[0].message
    assert f"exclude it with exclude=['{name}'] / --exclude '{name}'" in message
    assert "remove it" in message
    for secret in ("hunter2", "abc123", "ghp_abc", "TOKEN", "Y2k6"):
        assert secret not in str(report), "a finding never repeats the secret"


@pytest.mark.parametrize("name", sorted(PASSED))
def test_public_certs_and_configs_without_secrets_pass(tmp_path: Path, name: str) -> None:
    report = inspect_zip(_zip(tmp_path, {name: PASSED[name]}), PY311, "x86_64")
    assert [f for f in report.findings if f.code == "credentials"] == []


def test_only_candidate_files_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {f"{SP}/pkg/mod{i}.py": b"x = 1\n" * 100 for i in range(50)}
    entries["python/.npmrc"] = b"//registry.npmjs.org/:_authToken=abc\n" + b"#" * 100_000
    path = _zip(tmp_path, entries)
    from pulumi_lambda_layers.validate import secrets

    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: object, *args: object, **kw: object) -> object:
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else str(name))
        return real_open(self, name, *args, **kw)  # type: ignore[arg-type]

    with zipfile.ZipFile(path) as zf:
        monkeypatch.setattr(zipfile.ZipFile, "open", spy)
        found = secrets.check_credentials(zf, zf.infolist())
    assert [f.path for f in found] == ["python/.npmrc"]
    assert opened == ["python/.npmrc"]

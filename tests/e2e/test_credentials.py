"""An index token in a lock, through the real Pulumi engine and moto: the build gets it, the
state, the up output and the layer never hold it, and rotating it changes nothing."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiProject
from tests.local_index import make_wheel, serve_index

PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

layer = LambdaLayerBuild("deps", runtime="python3.11", lock="requirements.lock", builder="local",
                         layer_name="e2e-credentials",
                         cache_signing_key=pulumi.Output.secret("SIGNING_KEY"))
for key in ("layer_version_arn", "version", "content_hash", "packages"):
    pulumi.export(key, getattr(layer, key))
'''

USER, TOKEN1, TOKEN2 = "ci-bot", "tok1-s3cr3t-9f8e7d", "tok2-s3cr3t-1a2b3c"
KEY1, KEY2 = "sign-k3y-one-5d4c3b", "sign-k3y-two-0f9e8d"


@pytest.fixture
def pulumi_extra_env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(aws_env, tmp_path)


def _lock(index_url: str, token: str) -> str:
    authed = index_url.replace("http://", f"http://{USER}:{token}@", 1)
    return f"--index-url {authed}\npllprivate==1.0.0\n"


def _zip_text(path: Path) -> str:
    """The zip's bytes and every member's uncompressed bytes, as text to look a token up in."""
    with zipfile.ZipFile(path) as zf:
        members = [zf.read(name) for name in zf.namelist()]
    return b"\n".join([path.read_bytes(), *members, *(n.encode() for n in zf.namelist())]
                      ).decode("latin-1")


def test_index_token_never_in_state_output_or_layer(pulumi_project: PulumiProject,
                                                      tmp_path: Path) -> None:
    make_wheel(tmp_path / "wheels", "pllprivate", "1.0.0")
    with serve_index(tmp_path / "wheels", auth={(USER, TOKEN1), (USER, TOKEN2)}) as index:
        lock = pulumi_project.dir / "requirements.lock"
        lock.write_text(_lock(index.url, TOKEN1))
        pulumi_project.write("layer-credentials", PROGRAM.replace("SIGNING_KEY", KEY1))
        cli = pulumi_project.cli
        cli.stack_init("dev")

        up = cli.up()
        # The build really went through the private index, with the token from the lock.
        assert any(p.startswith("/files/pllprivate-1.0.0") for p in index.log.paths), \
            (index.log.paths, index.log.denied)
        outputs = cli.outputs(show_secrets=True)
        assert outputs["packages"] == {"pllprivate": "1.0.0"} and outputs["version"] == 1

        exported = cli.run("stack", "export").stdout
        exported_plain = cli.run("stack", "export", "--show-secrets").stdout
        for where, text in (("up output", up.stdout + up.stderr), ("stack export", exported),
                            ("stack export --show-secrets", exported_plain),
                            ("stack outputs", json.dumps(outputs))):
            assert TOKEN1 not in text, f"the token is in the {where}"
            if where != "stack export --show-secrets":
                assert KEY1 not in text, f"the cache signing key is in the {where}"
        # Masked in the state, and the build inputs a secret besides.
        assert f"http://{USER}:***@127.0.0.1" in exported_plain
        layer = next(r for r in json.loads(exported)["deployment"]["resources"]
                     if r["type"].endswith("LambdaLayerBuild"))
        assert "ciphertext" in json.dumps(layer["outputs"]["build"])
        assert "ciphertext" in json.dumps(layer["outputs"]["cache_signing_key"])
        assert "ciphertext" in json.dumps(layer["inputs"]["cache_signing_key"])

        zips = sorted(Path(cli.env["PLL_CACHE_DIR"]).rglob("*.zip"))
        assert zips, "no layer zip in the build cache"
        for path in zips:
            text = _zip_text(path)
            assert TOKEN1 not in text, f"the token is in {path}"
            assert "pllprivate" in text

        # The token is rotated in the file, and the signing key in the program: neither the
        # hash nor the diff changes.
        lock.write_text(_lock(index.url, TOKEN2))
        pulumi_project.write("layer-credentials", PROGRAM.replace("SIGNING_KEY", KEY2))
        cli.run("preview", "--expect-no-changes")
        assert cli.outputs()["content_hash"] == outputs["content_hash"]

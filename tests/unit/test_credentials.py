"""The one credential redaction: masked in what is stored, hashed or printed; restored at apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulumi_lambda_layers.errors import BuildError, SpecError
from pulumi_lambda_layers.log import emit, to
from pulumi_lambda_layers.sources.credentials import has_credentials, masked, redact, restore


@pytest.mark.parametrize(("text", "shown"), [
    ("--index-url http://ci-bot:TOKEN@host/simple", "--index-url http://ci-bot:***@host/simple"),
    ("-i https://TOKEN@host:8443/simple/", "-i https://***@host:8443/simple/"),
    ("pkg @ https://user:p%40ss@host/pkg-1.0-py3-none-any.whl --hash=sha256:ab",
     "pkg @ https://user:***@host/pkg-1.0-py3-none-any.whl --hash=sha256:ab"),
    ("git+ssh://git@github.com/o/r.git", "git+ssh://***@github.com/o/r.git"),
    ("a http://u:1@h/x and http://v:2@k/y", "a http://u:***@h/x and http://v:***@k/y"),
    ("six==1.16.0", "six==1.16.0"),
    ("--index-url https://host/simple", "--index-url https://host/simple"),
    ("mail me at a@b.c", "mail me at a@b.c"),
    ("http://ci-bot:***@host/simple", "http://ci-bot:***@host/simple"),  # idempotent
])
def test_redact_masks_userinfo_only(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact(shown) == shown
    assert has_credentials(text) == (text != shown)


def test_restore_takes_the_real_url_from_the_source_file(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("--index-url http://ci-bot:TOKEN2@127.0.0.1:9/simple\n"
                    "pkg @ https://u:SECRET@host/pkg.whl\n")
    stored = {"requirements.txt": "--index-url http://ci-bot:***@127.0.0.1:9/simple\n"
                                  "pkg @ https://u:***@host/pkg.whl\nsix==1.16.0\n"}
    assert masked(stored["requirements.txt"]) and not masked("six==1.16.0")
    assert restore(stored, [lock]) == {"requirements.txt":
                                       "--index-url http://ci-bot:TOKEN2@127.0.0.1:9/simple\n"
                                       "pkg @ https://u:SECRET@host/pkg.whl\nsix==1.16.0\n"}
    plain = {"requirements.txt": "six==1.16.0\n"}
    assert restore(plain, [tmp_path / "missing"]) == plain


def test_restore_fails_naming_the_file_when_the_line_is_gone(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("--index-url http://other-user:T@127.0.0.1:9/simple\n")
    with pytest.raises(SpecError) as exc:
        restore({"requirements.txt": "--index-url http://ci-bot:***@127.0.0.1:9/simple\n"}, [lock])
    assert str(lock) in str(exc.value) and "http://ci-bot:***@127.0.0.1:9" in str(exc.value)
    assert "T@" not in str(exc.value)


def test_errors_and_log_lines_are_masked() -> None:
    err = BuildError("uv pip install", "exited with 2",
                     "error: GET http://ci-bot:TOKEN@host/simple/six/ 401")
    assert "TOKEN" not in str(err) and "http://ci-bot:***@host" in str(err)
    assert "TOKEN" not in err.log_tail
    spec = SpecError("lock", "x.lock line 1: 'pkg @ https://u:TOKEN@h/p.whl' is bad")
    assert "TOKEN" not in str(spec) and "TOKEN" not in spec.one_line()
    lines: list[str] = []
    with to(lines.append):
        emit("fetching https://u:TOKEN@h/p.whl")
    assert lines == ["fetching https://u:***@h/p.whl"]


def test_rotating_a_direct_url_token_changes_neither_hash_nor_packages(tmp_path: Path) -> None:
    from pulumi_lambda_layers import make_spec
    from pulumi_lambda_layers.sources.fingerprint import fingerprint

    lock = tmp_path / "requirements.lock"

    def fp(token: str) -> tuple[str, dict[str, str], dict[str, str]]:
        lock.write_text(f"--index-url https://ci-bot:{token}@idx.example/simple\n"
                        f"pkg @ https://u:{token}@files.example/pkg-1.0-py3-none-any.whl\n")
        f = fingerprint(make_spec(runtime="python3.12", lock=str(lock), builder="local"))
        return f.content_hash, f.packages, f.install_files

    hash1, packages1, files1 = fp("TOKEN1")
    hash2, packages2, _ = fp("TOKEN2")
    assert hash1 == hash2 and packages1 == packages2
    assert packages1 == {"pkg": "@https://u:***@files.example/pkg-1.0-py3-none-any.whl"}
    # This process's builds still get the real URLs; the state gets them masked (program_time).
    assert "TOKEN1" in files1["requirements.txt"]

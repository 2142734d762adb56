"""Package-by-package packing: cached entries are copied, never recompressed, and the bytes match a
from-scratch build; a one-package bump compresses only that package."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build.archive import make_zip
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.build.local import LocalBuilder
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from pulumi_lambda_layers.runtimes import RUNTIMES
from pulumi_lambda_layers.validate import inspect_zip
from tests.conftest import write

# charset-normalizer ships compiled extensions: their ELF checks are recorded in its pack.
LOCK = ("certifi==2024.8.30\ncharset-normalizer==3.3.2\nidna==3.10\nrequests==2.32.3\n"
        "urllib3==2.2.2\n")
BUMPED = LOCK.replace("urllib3==2.2.2", "urllib3==2.2.3")


def _build(lock: Path, out: Path) -> BuildResult:
    spec = make_spec(runtime="python3.11", lock=str(lock), builder="local")
    return build_layer(spec, out, log=lambda _m: None)


def _from_scratch(lock: Path, work: Path) -> bytes:
    """Install every package at once and zip the whole tree: the reference bytes."""
    spec = make_spec(runtime="python3.11", lock=str(lock), builder="local")
    root = work / "root"
    root.mkdir(parents=True)
    LocalBuilder().build(spec, fingerprint(spec), root, lambda _m: None)
    return make_zip(root, work / "scratch.zip", spec.exclude, spec.slim).path.read_bytes()


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_assembled_layer_is_byte_identical_to_a_from_scratch_build(tmp_path: Path,
                                                                   cache: Path) -> None:
    lock = write(tmp_path / "requirements.lock", LOCK)
    first = _build(lock, tmp_path / "first.zip")
    assert first.packs is not None and len(first.packs.packed) == 5 and not first.packs.reused
    again = _build(lock, tmp_path / "again.zip")
    assert again.packs is not None and again.packs.files_compressed == 0
    assert len(again.packs.reused) == 5
    scratch = _from_scratch(lock, tmp_path / "scratch")
    assert first.zip.path.read_bytes() == scratch
    assert again.zip.path.read_bytes() == scratch
    # The ELF checks recorded in the packs say what checking the zip afresh says.
    fresh = inspect_zip(again.zip.path, RUNTIMES["python3.11"], "x86_64")
    assert any(n.endswith(".so") for n in _names(again))
    assert again.report.to_dict() == fresh.to_dict()


def test_one_package_bump_compresses_only_that_package(tmp_path: Path, cache: Path) -> None:
    base = write(tmp_path / "base/requirements.lock", LOCK)
    bumped = write(tmp_path / "bumped/requirements.lock", BUMPED)
    _build(base, tmp_path / "base.zip")
    result = _build(bumped, tmp_path / "bumped.zip")
    assert result.packs is not None
    assert result.packs.packed == ("urllib3",)
    assert set(result.packs.reused) == {"certifi", "charset-normalizer", "idna", "requests"}
    urllib3_files = [n for n in _names(result) if "/urllib3" in n]
    assert result.packs.files_compressed == len(urllib3_files)
    assert result.zip.path.read_bytes() == _from_scratch(bumped, tmp_path / "scratch")


def test_a_damaged_pack_is_never_used(tmp_path: Path, cache: Path) -> None:
    lock = write(tmp_path / "requirements.lock", LOCK)
    first = _build(lock, tmp_path / "first.zip")
    packs = sorted((cache / "packs").rglob("*.pack"))
    assert len(packs) == 5
    victim = max(packs, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF  # inside the compressed data, not the index
    victim.write_bytes(bytes(data))
    again = _build(lock, tmp_path / "again.zip")
    assert again.packs is not None and len(again.packs.packed) == 1
    assert again.zip.path.read_bytes() == first.zip.path.read_bytes()


def test_findings_recorded_in_a_pack_are_reported_without_rereading(tmp_path: Path,
                                                                    cache: Path) -> None:
    from pulumi_lambda_layers.build import packs
    from pulumi_lambda_layers.validate import Finding

    prefix = "python/lib/python3.11/site-packages"
    a = write(tmp_path / f"{prefix}/a/__init__.py", "x = 1\n")
    b = write(tmp_path / f"{prefix}/a/lib.so", "not really an ELF")
    seen: list[str] = []

    def check(rel: str, full: Path) -> list[Finding]:
        seen.append(rel)
        return [Finding("error", "elf-machine", rel, "recorded")] if rel.endswith(".so") else []

    key = "ab" * 32
    packs.create(key, [(f"{prefix}/a/__init__.py", a), (f"{prefix}/a/lib.so", b)], 6, check)
    assert len(seen) == 2
    pack = packs.load(key)
    assert pack is not None
    packs.assemble([pack], tmp_path / "layer.zip")
    report = inspect_zip(tmp_path / "layer.zip", RUNTIMES["python3.11"], "x86_64",
                         packs.checked([pack]))
    assert [(f.code, f.path) for f in report.findings] == [("elf-machine", f"{prefix}/a/lib.so")]
    assert inspect_zip(tmp_path / "layer.zip", RUNTIMES["python3.11"], "x86_64").ok


def _names(result: BuildResult) -> list[str]:
    import zipfile

    with zipfile.ZipFile(result.zip.path) as zf:
        return zf.namelist()

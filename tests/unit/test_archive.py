"""The layer zip is a pure function of the files: order, times, owners and bytecode never leak in."""

from __future__ import annotations

import os
import stat
import time
import zipfile
import zlib
from pathlib import Path

import deflate
import pytest

from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.build.archive import is_excluded, make_zip
from tests.conftest import write

PREFIX = "python/lib/python3.11/site-packages"


def _tree(root: Path, order: list[str]) -> None:
    files = {
        f"{PREFIX}/pkg/__init__.py": "x = 1\n",
        f"{PREFIX}/pkg/mod.py": "y = 2\n",
        f"{PREFIX}/pkg/bin/tool": "#!/bin/sh\n",
        f"{PREFIX}/pkg-1.0.dist-info/METADATA": "Name: pkg\nVersion: 1.0\n",
        f"{PREFIX}/pkg-1.0.dist-info/RECORD": f"pkg/__init__.py,sha256=,{root}\n",
        f"{PREFIX}/pkg-1.0.dist-info/INSTALLER": "uv\n",
        f"{PREFIX}/pkg/__pycache__/mod.cpython-311.pyc": "junk",
        f"{PREFIX}/pkg/tests/test_x.py": "assert True\n",
    }
    for rel in order:
        write(root / rel, files[rel])
    os.chmod(root / f"{PREFIX}/pkg/bin/tool", 0o775)


def test_same_files_give_same_bytes_whatever_order_and_mtime(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    names = [
        f"{PREFIX}/pkg/__init__.py", f"{PREFIX}/pkg/mod.py", f"{PREFIX}/pkg/bin/tool",
        f"{PREFIX}/pkg-1.0.dist-info/METADATA", f"{PREFIX}/pkg-1.0.dist-info/RECORD",
        f"{PREFIX}/pkg-1.0.dist-info/INSTALLER", f"{PREFIX}/pkg/__pycache__/mod.cpython-311.pyc",
        f"{PREFIX}/pkg/tests/test_x.py",
    ]
    _tree(a, names)
    _tree(b, list(reversed(names)))
    os.utime(b / f"{PREFIX}/pkg/mod.py", (time.time() - 86400 * 400,) * 2)
    za = make_zip(a, tmp_path / "a.zip")
    zb = make_zip(b, tmp_path / "b.zip")
    assert za.sha256 == zb.sha256
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_entries_sorted_fixed_time_modes_and_no_bytecode(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root, [f"{PREFIX}/pkg/__init__.py", f"{PREFIX}/pkg/bin/tool",
                 f"{PREFIX}/pkg/__pycache__/mod.cpython-311.pyc",
                 f"{PREFIX}/pkg-1.0.dist-info/RECORD", f"{PREFIX}/pkg-1.0.dist-info/METADATA"])
    result = make_zip(root, tmp_path / "l.zip")
    with zipfile.ZipFile(result.path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert not any("__pycache__" in n or n.endswith("RECORD") for n in names)
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    modes = {i.filename.rsplit("/", 1)[-1]: stat.S_IMODE(i.external_attr >> 16) for i in infos}
    assert modes["tool"] == 0o755 and modes["__init__.py"] == 0o644
    assert result.file_count == 3


def test_symlink_is_stored_as_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "nodejs/node_modules/a/index.js", "module.exports = 1\n")
    (root / "nodejs/node_modules/.bin").mkdir()
    os.symlink("../a/index.js", root / "nodejs/node_modules/.bin/a")
    result = make_zip(root, tmp_path / "l.zip")
    with zipfile.ZipFile(result.path) as zf:
        info = zf.getinfo("nodejs/node_modules/.bin/a")
        assert stat.S_ISLNK(info.external_attr >> 16)
        assert zf.read(info) == b"../a/index.js"


def test_exclude_and_slim_rules() -> None:
    assert is_excluded(f"{PREFIX}/pandas/tests/test_a.py", slim=["strip_tests"])
    assert not is_excluded(f"{PREFIX}/pandas/tests/test_a.py")
    assert not is_excluded(f"{PREFIX}/tests/__init__.py", slim=["strip_tests"])  # a package named tests
    assert is_excluded(f"{PREFIX}/boto3/x.pyi", slim=["strip_type_stubs"])
    assert is_excluded(f"{PREFIX}/boto3/data/big.json", exclude=["*/boto3/data/*"])
    assert is_excluded("nodejs/node_modules/x/test/a.js", slim=["strip_tests"])
    assert not is_excluded("nodejs/node_modules/test/index.js", slim=["strip_tests"])


def test_nothing_to_pack_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / f"{PREFIX}/pkg/__pycache__/a.pyc", "x")
    out = tmp_path / "out" / "l.zip"
    with pytest.raises(BuildError, match="no files to pack"):
        make_zip(root, out)
    with pytest.raises(BuildError, match="not a directory"):
        make_zip(tmp_path / "missing", out)
    assert not out.exists()


def test_installer_droppings_are_not_packed() -> None:
    assert is_excluded(f"{PREFIX}/.lock")
    assert is_excluded("nodejs/node_modules/.package-lock.json") is False  # npm's own, kept
    assert not is_excluded(f"{PREFIX}/pkg/.lock")


class _LibdeflateLikeZlib:
    """zipfile's compressor interface over libdeflate (whole buffer at flush), for the reference."""

    def __init__(self) -> None:
        self.data = bytearray()

    def compress(self, data: bytes) -> bytes:
        self.data += data
        return b""

    def flush(self) -> bytes:
        return deflate.deflate_compress(bytes(self.data), 6)


def _zipfile_reference(root: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The layer zip as the standard zipfile module writes it, with libdeflate as its compressor:
    zipfile decides every header byte, libdeflate the data (what make_zip must match)."""
    from pulumi_lambda_layers.build.archive import collect

    real = zipfile._get_compressor  # type: ignore[attr-defined]
    monkeypatch.setattr(zipfile, "_get_compressor", lambda kind, level=None:
                        _LibdeflateLikeZlib() if kind == zipfile.ZIP_DEFLATED else real(kind, level))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for rel, full in collect(root, (), ()):
            info = zipfile.ZipInfo(rel, (1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            if isinstance(full, str):
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, full)
                continue
            mode = 0o755 if os.access(full, os.X_OK) else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(full, "rb") as src, zf.open(info, "w") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    monkeypatch.setattr(zipfile, "_get_compressor", real)


def test_raw_writer_matches_zipfile_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # make_zip writes entries itself (so cached compressed entries can be copied); its framing must
    # stay that of the zipfile module, so any zip reader takes it exactly as it takes zipfile's.
    root = tmp_path / "root"
    _tree(root, [f"{PREFIX}/pkg/__init__.py", f"{PREFIX}/pkg/bin/tool",
                 f"{PREFIX}/pkg-1.0.dist-info/METADATA"])
    write(root / f"{PREFIX}/pkg/empty.py", "")
    write(root / f"{PREFIX}/pkg/données/é.txt", "non-ascii name\n")
    rng = __import__("random").Random(7)
    big = bytes(rng.getrandbits(8) for _ in range(300_000)) * 12  # over 1 MiB
    (root / f"{PREFIX}/pkg/big.bin").write_bytes(big)
    os.symlink("__init__.py", root / f"{PREFIX}/pkg/alias.py")
    _zipfile_reference(root, tmp_path / "reference.zip", monkeypatch)
    result = make_zip(root, tmp_path / "raw.zip")
    assert (tmp_path / "raw.zip").read_bytes() == (tmp_path / "reference.zip").read_bytes()
    assert result.unzipped_size == sum(i.file_size for i in
                                       zipfile.ZipFile(tmp_path / "raw.zip").infolist())
    with zipfile.ZipFile(tmp_path / "raw.zip") as zf:
        assert zf.testzip() is None
        assert zf.read(f"{PREFIX}/pkg/big.bin") == big


def test_libdeflate_output_is_smaller_than_zlibs_at_the_same_level(tmp_path: Path) -> None:
    # Why the compressor is libdeflate: faster (bench/) and never bigger on layer-like content.
    text = b"".join(b"def f%d(x):\n    return x * %d  # comment %d\n" % (i, i, i % 97)
                    for i in range(20_000))
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert len(deflate.deflate_compress(text, 6)) < len(z.compress(text) + z.flush())


def test_compression_runs_on_worker_threads_and_keeps_order(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from pulumi_lambda_layers.build import archive

    root = tmp_path / "root"
    for i in range(40):
        write(root / f"{PREFIX}/pkg/m{i:02}.py", f"x = {i}\n" * 5000)
    threads: set[str] = set()
    real = archive._compress_one

    def spy(*args: object) -> object:
        threads.add(threading.current_thread().name)
        return real(*args)  # type: ignore[arg-type]

    files = archive.collect(root, (), ())
    monkeypatch.setattr(archive, "_compress_one", spy)
    names = [e.name for e, _ in archive.compressed(files, 6, workers=2)]
    assert names == [rel for rel, _ in files]
    assert threads and all(t.startswith("pll-zip") for t in threads)


def test_console_scripts_of_a_target_install_are_not_packed() -> None:
    assert is_excluded(f"{PREFIX}/bin/f2py")
    assert not is_excluded(f"{PREFIX}/numpy/bin/tool")
    assert not is_excluded("bin/tool") and not is_excluded("python/bin/tool")


def test_the_compressor_named_in_every_hash_is_the_one_installed() -> None:
    from importlib.metadata import version

    from pulumi_lambda_layers.build.rawzip import DEFLATE

    assert DEFLATE == f"libdeflate (deflate {version('deflate')})"

"""Layer zip validation against real zips and real ELF files compiled by the host gcc."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from pulumi_lambda_layers.errors import ValidationError
from pulumi_lambda_layers.limits import DIRECT_UPLOAD_LIMIT, UNZIPPED_LIMIT
from pulumi_lambda_layers.runtimes import RUNTIMES, Architecture
from pulumi_lambda_layers.validate import Finding, Report, check_zip, inspect_zip

PY311 = RUNTIMES["python3.11"]
PY312 = RUNTIMES["python3.12"]
NODE20 = RUNTIMES["nodejs20.x"]
NODE22 = RUNTIMES["nodejs22.x"]
SP311 = "python/lib/python3.11/site-packages"
EM_AARCH64 = 183

Entry = tuple[str | zipfile.ZipInfo, bytes | Path]

# C sources whose one libc call pins a known symbol version on glibc >= 2.36 (the host is bookworm).
SOURCES = {
    "plain": ("#include <string.h>\nunsigned long go(const char *s) { return strlen(s); }\n",
              [], "(GLIBC_2.2.5) strlen"),
    "pthread": ("#include <pthread.h>\nstatic void *f(void *x) { return x; }\n"
                "int go(void) { pthread_t t; return pthread_create(&t, 0, f, 0); }\n",
                ["-pthread"], "(GLIBC_2.34) pthread_create"),
    "arc4random": ("#include <stdlib.h>\nunsigned int go(void) { return arc4random(); }\n",
                   [], "(GLIBC_2.36) arc4random"),
}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is needed to build the test ELF files: apt-get install gcc binutils")
    return found


def _compile(out: Path, source: str, flags: list[str]) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([_tool("gcc"), "-shared", "-fPIC", "-O1", *flags, "-o", str(out), str(src)],
                   check=True, capture_output=True)
    return out


def _dynamic_symbols(path: Path) -> str:
    return subprocess.run([_tool("objdump"), "-T", str(path)], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """x86-64 shared objects needing GLIBC_2.2.5 / 2.34 / 2.36, plus an AArch64-headed copy."""
    root = tmp_path_factory.mktemp("native")
    built: dict[str, Path] = {}
    for name, (source, flags, expected) in SOURCES.items():
        so = _compile(root / f"{name}.so", source, flags)
        symbols = _dynamic_symbols(so)
        # The glibc tests mean something only if the symbol really landed with that version.
        assert expected in symbols, f"{name}.so: objdump -T lacks {expected!r}:\n{symbols}"
        built[name] = so
    versions = {line.split("(")[1].split(")")[0] for line in _dynamic_symbols(built["plain"])
                .splitlines() if "(GLIBC_" in line}
    assert versions == {"GLIBC_2.2.5"}, versions
    # No cross compiler needed: the machine check reads e_machine (offset 18, 2 bytes LE) only.
    arm = bytearray(built["plain"].read_bytes())
    assert arm[18:20] == (62).to_bytes(2, "little")  # EM_X86_64
    arm[18:20] = EM_AARCH64.to_bytes(2, "little")
    built["plain-aarch64"] = root / "plain-aarch64.so"
    built["plain-aarch64"].write_bytes(bytes(arm))
    return built


def make_zip(path: Path, entries: list[Entry]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data.read_bytes() if isinstance(data, Path) else data)
    return path


def symlink(name: str, target: str) -> Entry:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so external_attr carries the mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def codes(report: Report, severity: str = "error") -> list[str]:
    return [f.code for f in report.findings if f.severity == severity]


def only(report: Report, code: str) -> Finding:
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, report
    return found[0]


def good_python_entries(native: dict[str, Path]) -> list[Entry]:
    return [
        (f"{SP311}/fastmath/__init__.py", b"from ._core import go\n"),
        (f"{SP311}/fastmath/_core.cpython-311-x86_64-linux-gnu.so", native["plain"]),
        (f"{SP311}/fastmath/_stable.abi3.so", native["plain"]),
        (f"{SP311}/fastmath-1.0.dist-info/WHEEL",
         b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
         b"Tag: cp311-cp311-manylinux_2_17_x86_64\nTag: cp311-cp311-manylinux2014_x86_64\n"),
        (f"{SP311}/fastmath-1.0.dist-info/RECORD", b""),
        (f"{SP311}/six.py", b"x = 1\n"),
        (f"{SP311}/six-1.16.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nTag: py2-none-any\n"
                                                 b"Tag: py3-none-any\n"),
        ("python/helper.py", b"y = 2\n"),
        ("lib/libextra.so.1", native["plain"]),
        symlink("lib/libextra.so", "libextra.so.1"),
    ]


# --- layout -----------------------------------------------------------------------------------


def test_good_python_layout_passes(tmp_path: Path, native: dict[str, Path]) -> None:
    report = inspect_zip(make_zip(tmp_path / "l.zip", good_python_entries(native)), PY311, "x86_64")
    assert report.findings == []
    assert report.ok
    assert report.file_count == 10
    assert check_zip(tmp_path / "l.zip", PY311, "x86_64") == report


def test_packages_at_zip_root_are_an_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [("numpy/__init__.py", b""), ("numpy/core.py", b""),
                                         ("numpy-2.0.dist-info/METADATA", b"")])
    report = inspect_zip(path, PY311, "x86_64")
    assert not report.ok
    messages = {f.path: f.message for f in report.findings if f.code == "layout"}
    assert set(messages) == {"numpy/", "numpy-2.0.dist-info/"}
    assert f"put it under {SP311}/" in messages["numpy/"]


def test_site_packages_without_python_prefix(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [("lib/python3.11/site-packages/requests/__init__.py", b"")])
    finding = only(inspect_zip(path, PY311, "x86_64"), "layout")
    assert finding.path == "lib/python3.11/site-packages/"
    assert SP311 in finding.message


def test_site_packages_for_another_python_version(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [("python/lib/python3.12/site-packages/x/__init__.py", b"")])
    finding = only(inspect_zip(path, PY311, "x86_64"), "layout")
    assert finding.severity == "error"
    assert "Python 3.12" in finding.message and "Python 3.11" in finding.message
    assert inspect_zip(path, PY312, "x86_64").ok


def test_zipped_folder_instead_of_contents(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"build/{SP311}/x/__init__.py", b"")])
    finding = only(inspect_zip(path, PY311, "x86_64"), "layout")
    assert finding.path == "build/" and "zip the contents of 'build/'" in finding.message


def test_no_python_content(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [("README.txt", b"hello")])
    assert "no files under python/" in only(inspect_zip(path, PY311, "x86_64"), "layout").message


@pytest.mark.parametrize("entries", [[], [("python/", b"")]], ids=["no entries", "only folders"])
def test_empty_layer(tmp_path: Path, entries: list[Entry]) -> None:
    report = inspect_zip(make_zip(tmp_path / "l.zip", entries), PY311, "x86_64")
    assert "empty" in only(report, "layout").message
    assert report.file_count == 0


def test_good_node_layouts(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [
        ("nodejs/package.json", b"{}"),
        ("nodejs/node_modules/lodash/index.js", b""),
        ("nodejs/node_modules/@aws-sdk/client-s3/index.js", b"x" * 100),
        ("nodejs/node20/node_modules/sharp/index.js", b""),
    ])
    report = inspect_zip(path, NODE20, "arm64")
    assert report.findings == []
    assert report.largest[0] == ("@aws-sdk/client-s3", 100)
    # node20/ is only searched by the Node.js 20 runtime.
    finding = only(inspect_zip(path, NODE22, "arm64"), "layout")
    assert "Node.js 20" in finding.message and "nodejs22.x" in finding.message


def test_node_modules_at_root(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [("node_modules/lodash/index.js", b"")])
    finding = only(inspect_zip(path, NODE20, "x86_64"), "layout")
    assert finding.path == "node_modules/" and "nodejs/node_modules/" in finding.message


# --- native binaries --------------------------------------------------------------------------


@pytest.mark.parametrize(("binary", "arch", "ok"), [
    ("plain", "x86_64", True),
    ("plain", "arm64", False),
    ("plain-aarch64", "arm64", True),
    ("plain-aarch64", "x86_64", False),
])
def test_elf_machine(tmp_path: Path, native: dict[str, Path], binary: str, arch: Architecture,
                     ok: bool) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/m/_m.abi3.so", native[binary])])
    report = inspect_zip(path, PY311, arch)
    assert report.ok is ok, report
    if not ok:
        finding = only(report, "elf-machine")
        found, expected = ("x86-64", "AArch64") if arch == "arm64" else ("AArch64", "x86-64")
        assert finding.path == f"{SP311}/m/_m.abi3.so"
        assert f"built for {found}" in finding.message and expected in finding.message


@pytest.mark.parametrize(("binary", "runtime_id", "needs"), [
    ("plain", "python3.11", None),
    ("plain", "nodejs18.x", None),
    ("pthread", "python3.11", "GLIBC_2.34 (pthread_create)"),  # AL2: glibc 2.26
    ("pthread", "nodejs18.x", "GLIBC_2.34 (pthread_create)"),
    ("pthread", "python3.12", None),  # AL2023: glibc 2.34 exactly
    ("arc4random", "python3.12", "GLIBC_2.36 (arc4random)"),
    ("arc4random", "nodejs22.x", "GLIBC_2.36 (arc4random)"),
])
def test_glibc_versions(tmp_path: Path, native: dict[str, Path], binary: str, runtime_id: str,
                        needs: str | None) -> None:
    runtime = RUNTIMES[runtime_id]
    inside = f"{runtime.layer_prefix}/pkg/native.node" if runtime.language == "nodejs" \
        else f"{runtime.layer_prefix}/pkg/_n.abi3.so"
    report = inspect_zip(make_zip(tmp_path / "l.zip", [(inside, native[binary])]), runtime, "x86_64")
    if needs is None:
        assert report.findings == []
        return
    finding = only(report, "glibc")
    have = ".".join(map(str, runtime.glibc))
    assert finding.path == inside
    assert f"needs {needs}" in finding.message
    assert f"glibc {have}" in finding.message
    assert runtime.default_image("x86_64") in finding.message


def test_glibc_message_names_the_symbol(tmp_path: Path, native: dict[str, Path]) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/t/_t.abi3.so", native["pthread"])])
    message = only(inspect_zip(path, PY311, "x86_64"), "glibc").message
    assert "needs GLIBC_2.34 (pthread_create)" in message
    assert "Amazon Linux 2 with glibc 2.26" in message
    assert "x86_64-manylinux_2_17" in message


def test_big_elf_is_streamed_not_loaded(tmp_path: Path) -> None:
    # 64 MiB of .data puts the section headers 64 MiB in: the glibc check must read past it.
    source = ("#include <pthread.h>\nchar big[64 << 20] = {1};\n"
              "static void *f(void *x) { return x; }\n"
              "int go(void) { pthread_t t; return pthread_create(&t, 0, f, (void *)big); }\n")
    so = _compile(tmp_path / "big.so", source, ["-pthread"])
    assert so.stat().st_size > 64 << 20
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/big/_big.abi3.so", so)])
    so.unlink()
    tracemalloc.start()
    try:
        report = inspect_zip(path, PY311, "arm64")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(codes(report)) == ["elf-machine", "glibc"]
    assert "pthread_create" in only(report, "glibc").message
    assert peak < 24 << 20, f"peak {peak} bytes: the member was loaded whole"


MACHO_HEADS = [b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
               b"\xca\xfe\xba\xbe\x00\x00\x00\x02"]


@pytest.mark.parametrize("head", MACHO_HEADS, ids=lambda h: h[:4].hex())
def test_macos_binaries(tmp_path: Path, head: bytes) -> None:
    name = f"{SP311}/m/_m.abi3.so"
    path = make_zip(tmp_path / "l.zip", [(name, head + b"\0" * 64)])
    finding = only(inspect_zip(path, PY311, "x86_64"), "foreign-binary")
    assert finding.path == name and "a macOS binary" in finding.message


@pytest.mark.parametrize("name", ["w/_w.pyd", "w/helper.dll", "w/tool.exe"])
def test_windows_binaries(tmp_path: Path, name: str) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/{name}", b"MZ\x90\x00" + b"\0" * 64)])
    assert "a Windows binary" in only(inspect_zip(path, PY311, "x86_64"), "foreign-binary").message


def test_lookalike_magic_is_not_a_binary(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [
        (f"{SP311}/j/Main.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\0" * 32),  # Java 8
        (f"{SP311}/j/notes.txt", b"MZ is a postcode"),
    ])
    assert inspect_zip(path, PY311, "x86_64").findings == []


# --- Python ABI -------------------------------------------------------------------------------


def test_extension_for_another_cpython(tmp_path: Path, native: dict[str, Path]) -> None:
    name = f"{SP311}/x/_x.cpython-312-x86_64-linux-gnu.so"
    path = make_zip(tmp_path / "l.zip", [(name, native["plain"]),
                                         (f"{SP311}/x/_y.abi3.so", native["plain"])])
    finding = only(inspect_zip(path, PY311, "x86_64"), "python-abi")
    assert finding.path == name and "CPython 3.12" in finding.message


def test_darwin_extension_name(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/x/_x.cpython-311-darwin.so", b"#")])
    assert "macOS" in only(inspect_zip(path, PY311, "x86_64"), "python-abi").message


@pytest.mark.parametrize(("tags", "problem"), [
    (["py3-none-any"], None),
    (["cp38-abi3-manylinux_2_17_x86_64", "cp38-abi3-manylinux2014_x86_64"], None),
    (["cp311-cp311-macosx_11_0_arm64", "cp311-cp311-manylinux_2_28_x86_64"], None),  # one fits
    (["cp312-cp312-manylinux_2_17_x86_64"], "built for CPython 3.12"),
    (["cp312-abi3-manylinux_2_17_x86_64"], "needs Python 3.12 or newer"),
    (["cp311-cp311-macosx_11_0_arm64"], "built for macOS"),
    (["cp311-cp311-win_amd64"], "built for Windows"),
    (["cp311-cp311-musllinux_1_2_x86_64"], "musl"),
    (["cp311-cp311-manylinux_2_17_aarch64"], "built for aarch64, not x86_64"),
])
def test_wheel_tags(tmp_path: Path, tags: list[str], problem: str | None) -> None:
    wheel = "Wheel-Version: 1.0\n" + "".join(f"Tag: {tag}\n" for tag in tags)
    name = f"{SP311}/w-1.0.dist-info/WHEEL"
    report = inspect_zip(make_zip(tmp_path / "l.zip", [(name, wheel.encode())]), PY311, "x86_64")
    if problem is None:
        assert report.findings == []
    else:
        finding = only(report, "python-abi")
        assert finding.path == name and problem in finding.message and tags[0] in finding.message


# --- zip safety -------------------------------------------------------------------------------


def test_dotdot_and_absolute_entries(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/ok.py", b""),
                                         ("python/../../etc/cron.d/x", b""),
                                         (zipfile.ZipInfo("/etc/passwd"), b"")])
    report = inspect_zip(path, PY311, "x86_64")
    unsafe = {f.path: f.message for f in report.findings if f.code == "unsafe-path"}
    assert set(unsafe) == {"python/../../etc/cron.d/x", "/etc/passwd"}
    assert "'..'" in unsafe["python/../../etc/cron.d/x"] and "absolute" in unsafe["/etc/passwd"]


@pytest.mark.parametrize(("target", "bad"), [
    ("/etc/passwd", "absolute"),
    ("../../../../../etc/passwd", "outside the layer"),
    ("../../lib/libfoo.so", None),  # python/x/ -> lib/ stays inside
])
def test_symlinks(tmp_path: Path, target: str, bad: str | None) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/ok.py", b""), ("lib/libfoo.so", b"x"),
                                         symlink("python/x/link", target)])
    report = inspect_zip(path, PY311, "x86_64")
    if bad is None:
        assert report.findings == []
    else:
        finding = only(report, "unsafe-symlink")
        assert finding.path == "python/x/link" and bad in finding.message


# --- sizes, bytecode, report ------------------------------------------------------------------


def test_unzipped_size_limit_names_largest_packages(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    started = time.monotonic()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        # Zeros deflate ~1000:1, so the real 250 MiB limit is tested with a small zip.
        with zf.open(f"{SP311}/torch/lib/libtorch.so.data", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(UNZIPPED_LIMIT // len(chunk) - 5):
                member.write(chunk)
        sizes = {"scipy": 4, "pandas": 3, "numpy": 2, "pyarrow": 1, "six": 0}
        for package, mib in sizes.items():
            zf.writestr(f"{SP311}/{package}/data.bin", bytes((mib << 20) + 10))
        zf.writestr(f"{SP311}/torch-2.3.0.dist-info/RECORD", b"r")
        zf.writestr(f"{SP311}/torch.libs/libgomp.so.1", bytes(1 << 20))
    report = inspect_zip(path, PY311, "x86_64")
    elapsed = time.monotonic() - started
    assert report.unzipped_size > UNZIPPED_LIMIT
    assert report.zipped_size < 2 << 20
    finding = only(report, "size-unzipped")
    assert finding.severity == "error"
    named = finding.message.split("largest packages: ")[1]
    order = [part.split(" (")[0] for part in named.split(", ")][:5]
    assert order == ["torch", "scipy", "pandas", "numpy", "pyarrow"]
    assert "six" not in named
    # torch/, torch.libs/ and the dist-info count as one package.
    assert dict(report.largest)["torch"] == 245 * (1 << 20) + (1 << 20) + 1
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_zipped_size_over_direct_upload_limit_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{SP311}/blob/data.bin", bytes(DIRECT_UPLOAD_LIMIT + 1024))
    report = inspect_zip(path, PY311, "x86_64")
    finding = only(report, "size-zipped")
    assert finding.severity == "warning" and "S3 bucket" in finding.message
    assert report.ok


def test_bytecode_is_a_warning(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/x/__init__.py", b""),
                                         (f"{SP311}/x/__pycache__/__init__.cpython-311.pyc", b"c"),
                                         (f"{SP311}/y.pyc", b"c")])
    report = inspect_zip(path, PY311, "x86_64")
    finding = only(report, "bytecode")
    assert finding.severity == "warning" and finding.message.startswith("2 bytecode files")
    assert report.ok


def test_report_text_and_dict(tmp_path: Path, native: dict[str, Path]) -> None:
    path = make_zip(tmp_path / "l.zip", [
        (f"{SP311}/numpy/core.py", b"n" * 5000),
        (f"{SP311}/numpy-2.0.0.dist-info/RECORD", b"r" * 100),
        (f"{SP311}/numpy.libs/libopenblas.so", b"o" * 3000),
        (f"{SP311}/requests/api.py", b"r" * 2000),
        (f"{SP311}/yaml/_y.cpython-311-x86_64-linux-gnu.so", native["plain"]),
        (f"{SP311}/x/__pycache__/a.cpython-311.pyc", b"c"),
    ])
    report = inspect_zip(path, PY311, "arm64")
    assert dict(report.largest)["numpy"] == 8100
    assert [name for name, _ in report.largest][:2] == ["yaml", "numpy"]
    text = str(report)
    assert text.startswith("FAILED: layer for python3.11 on arm64 (1 error, 1 warning)")
    assert "largest packages:" in text
    largest_block = text.split("largest packages:")[1]
    assert "numpy" in largest_block and "requests" in largest_block and "7.9 KiB" in largest_block
    assert "[elf-machine]" in text.split("warnings:")[0] and "[bytecode]" in text.split("warnings:")[1]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["runtime"] == "python3.11" and data["architecture"] == "arm64"
    assert data["file_count"] == 6 and data["unzipped_size"] == report.unzipped_size
    assert {"package": "numpy", "bytes": 8100} in data["largest"]
    assert {f["code"] for f in data["findings"]} == {"elf-machine", "bytecode"}


def test_check_zip_raises_with_the_report(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "l.zip", [("numpy/__init__.py", b"")])
    with pytest.raises(ValidationError) as caught:
        check_zip(path, PY311, "x86_64")
    assert isinstance(caught.value.report, Report) and not caught.value.report.ok
    assert "numpy/" in str(caught.value)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "l.zip"
    path.write_bytes(b"this is not a zip")
    assert "not a readable zip" in only(inspect_zip(path, PY311, "x86_64"), "zip-invalid").message


def test_dotfile_at_site_packages_root_is_its_own_package(tmp_path: Path) -> None:
    # uv leaves a .lock in --target folders; a layer zipped by another tool may carry it.
    path = make_zip(tmp_path / "l.zip", [(f"{SP311}/.lock", b""), (f"{SP311}/six.py", b"x = 1\n")])
    report = inspect_zip(path, PY311, "x86_64")
    assert report.ok, str(report)
    assert {name for name, _ in report.largest} == {"six", ".lock"}

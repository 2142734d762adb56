"""Docker builds are sandboxed: a package's setup.py runs as no root, writes nothing but its output
and its owner's cache, gains no privilege, and sees no other owner's package cache."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import tarfile
import threading
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build.docker import (
    CACHE_LABEL,
    CACHE_LABEL_VALUE,
    CACHE_OWNER_ENV,
    OWNER_LABEL,
    SANDBOX_UID,
    DockerBuilder,
    build_user,
    cache_volume,
    cache_volume_name,
)
from pulumi_lambda_layers.build.pipeline import build_layer
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from tests.conftest import docker_build_options, write
from tests.testbed_images import require_docker, require_image

SITE = "python/lib/python3.11/site-packages"
# What setup.py tries: each path is written to; the answer is "allowed" or the errno's name.
WRITES = ["/pll/in/probe", "/etc/pll-probe", "/pll-probe", "/var/tmp/pll-probe",
          "/usr/lib/pll-probe"]

SETUP_PY = '''
import errno, json, os, pathlib
from setuptools import setup

MARKER = {marker!r}  # planted by the test in another owner's cache volume
WRITES = {writes!r}
here = pathlib.Path(__file__).resolve().parent
findings = here / "pllprobe" / "findings.json"


def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def write(path):
    def action():
        with open(path, "w") as f:
            f.write("planted")
    return action


if not findings.exists():  # pip runs setup.py more than once (metadata, then the wheel)
    status = dict(line.split(":\\t", 1) for line in
                  pathlib.Path("/proc/self/status").read_text().splitlines() if ":\\t" in line)
    found = []
    for top, dirs, files in os.walk("/"):
        if top in ("/proc", "/sys", "/dev"):
            dirs[:] = []
        elif MARKER in files or MARKER in dirs:
            found.append(top)
    mine = pathlib.Path("/tmp/pll-probe-mine")
    mine.write_text("x")
    cache = os.stat("/pll/cache")
    findings.write_text(json.dumps({{
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
        "writes": {{path: attempt(write(path)) for path in WRITES}},
        "tmp": attempt(write("/tmp/pll-probe-ok")),
        "setuid0": attempt(lambda: os.setuid(0)),
        "chown0": attempt(lambda: os.chown(mine, 0, 0)),
        "no_new_privs": status.get("NoNewPrivs", "").strip(),
        "cap_bnd": status.get("CapBnd", "").strip(), "cap_eff": status.get("CapEff", "").strip(),
        "cache": sorted(os.listdir("/pll/cache")),
        "cache_owner": [cache.st_uid, cache.st_gid, oct(cache.st_mode & 0o7777)],
        "marker_found": found,
    }}))

setup(name="pllprobe", version="1.0", packages=["pllprobe"],
      package_data={{"pllprobe": ["findings.json"]}})
'''


def _sdist(folder: Path, marker: str) -> Path:
    """pllprobe-1.0.tar.gz: a setup.py-only sdist whose setup.py probes the sandbox."""
    files = {"setup.py": SETUP_PY.format(marker=marker, writes=WRITES),
             "pllprobe/__init__.py": "", "PKG-INFO": "Metadata-Version: 2.1\nName: pllprobe\n"
                                                     "Version: 1.0\n"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pllprobe-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"pllprobe-1.0/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """folder over HTTP on 127.0.0.1 (build containers use the host's network); its URL."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Quiet, directory=str(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _root_run(client: Any, volume: str, command: str) -> str:
    """command's output, run as root in a container with the volume at /pll/cache."""
    out = client.containers.run(require_image("python3.11", "x86_64"), ["sh", "-c", command],
                                user="0:0", network_mode="none", remove=True,
                                volumes={volume: {"bind": "/pll/cache", "mode": "rw"}})
    return str(out.decode().strip())


def _spec(lock: Path) -> Any:
    return make_spec(runtime="python3.11", architecture="x86_64", lock=str(lock), builder="docker",
                     image=require_image("python3.11", "x86_64"), **docker_build_options())


@pytest.fixture()
def volumes() -> Iterator[list[str]]:
    """Names of cache volumes a test makes; removed after it."""
    made: list[str] = []
    yield made
    client = require_docker()
    for name in made:
        for volume in client.volumes.list(filters={"name": name}):
            volume.remove(force=True)


def test_a_setup_py_in_a_docker_build_is_sandboxed(tmp_path: Path, volumes: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = require_docker()
    image = client.images.get(require_image("python3.11", "x86_64"))
    marker = f"pll-other-owner-{uuid.uuid4().hex[:8]}"
    owners = [f"pll-test-{uuid.uuid4().hex[:8]}-{n}" for n in ("a", "b")]
    names = [cache_volume_name(image, owner) for owner in owners]
    volumes.extend(names)
    _sdist(tmp_path / "dist", marker)
    uid, gid = build_user()
    results = []
    with _serve(tmp_path / "dist") as url:
        lock = write(tmp_path / "requirements.lock", f"pllprobe @ {url}/pllprobe-1.0.tar.gz\n")
        for n, owner in enumerate(owners):
            monkeypatch.setenv(CACHE_OWNER_ENV, owner)
            monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / f"cache-{n}"))
            log: list[str] = []
            results.append((build_layer(_spec(lock), tmp_path / f"{n}.zip", log=log.append), log))
            if n == 0:  # the first owner's cache now holds the wheel pip built; and the marker
                _root_run(client, names[0], f"mkdir /pll/cache/{marker}; "
                                            f"touch /pll/cache/{marker}/{marker}")
    (result, log) = results[1]
    assert result.builder == "docker"
    assert any(f"made package cache volume {names[1]}" in line for line in log), "\n".join(log)
    assert any(f"as uid {uid}" in line for line in log)
    with zipfile.ZipFile(result.zip.path) as zf:
        found = json.loads(zf.read(f"{SITE}/pllprobe/findings.json"))

    assert found["uid"] == found["euid"] == uid != 0 and found["gid"] == gid
    if os.getuid() == 0:
        assert uid == SANDBOX_UID
    # The root filesystem is read-only (EROFS), not merely closed to this uid (EACCES): even a
    # world-writable folder of the image (/var/tmp) takes nothing.
    assert found["writes"] == {path: "EROFS" for path in WRITES}, found["writes"]
    assert found["tmp"] == "allowed"
    assert found["setuid0"] == found["chown0"] == "EPERM"
    assert found["no_new_privs"] == "1"
    assert int(found["cap_bnd"], 16) == int(found["cap_eff"], 16) == 0, found
    # Its own cache only, the build uid's alone; the other owner's volume is nowhere to be seen.
    assert found["cache_owner"] == [uid, gid, "0o700"]
    assert marker not in found["cache"] and found["marker_found"] == [], found
    for name, owner in zip(names, owners, strict=True):
        assert _root_run(client, name, "stat -c '%u %g %a' /pll/cache") == f"{uid} {gid} 700"
        labels = client.volumes.get(name).attrs["Labels"]
        assert labels == {CACHE_LABEL: CACHE_LABEL_VALUE, OWNER_LABEL: owner}
    assert marker in _root_run(client, names[0], "ls /pll/cache")  # it was there all along
    assert "pip" in _root_run(client, names[1], "ls /pll/cache")  # the own cache was used


def test_a_normal_docker_build_leaves_output_the_host_can_delete(tmp_path: Path,
                                                                 volumes: list[str]) -> None:
    client = require_docker()
    owner = f"pll-test-{uuid.uuid4().hex[:8]}"
    volumes.append(cache_volume_name(client.images.get(require_image("python3.11", "x86_64")),
                                     owner))
    spec = _spec(write(tmp_path / "requirements.lock", "six==1.16.0\n"))
    root = tmp_path / "root"
    root.mkdir()
    DockerBuilder(cache_owner=owner).build(spec, fingerprint(spec), root, lambda _line: None)
    six = root / SITE / "six.py"
    assert "def add_metaclass" in six.read_text()
    uid, _gid = build_user()
    assert six.stat().st_uid == uid  # written by the build uid, not root
    shutil.rmtree(root)
    assert not root.exists()


def test_a_world_writable_cache_volume_is_emptied_and_given_to_the_build_uid(
        tmp_path: Path, volumes: list[str]) -> None:
    client = require_docker()
    image = client.images.get(require_image("python3.11", "x86_64"))
    owner = f"pll-test-{uuid.uuid4().hex[:8]}"
    name = cache_volume_name(image, owner)
    volumes.append(name)
    # As a cache volume of earlier versions was: open to every uid, with what anyone left there.
    client.volumes.create(name, labels={CACHE_LABEL: CACHE_LABEL_VALUE, OWNER_LABEL: owner})
    _root_run(client, name, "chmod 1777 /pll/cache; mkdir /pll/cache/pip; "
                            "touch /pll/cache/pip/planted.whl")
    log: list[str] = []
    uid, gid = build_user()
    assert cache_volume(client, image, owner, (uid, gid), log.append) == name
    assert any(f"was 0:0 1777 (owner uid:gid, mode): emptied it and gave it to {uid}:{gid}" in line
               for line in log), log
    assert _root_run(client, name, "stat -c '%u %g %a' /pll/cache; ls -A /pll/cache") == \
        f"{uid} {gid} 700"
    log.clear()  # checked once per process: a second build does not look again
    cache_volume(client, image, owner, (uid, gid), log.append)
    assert log == []


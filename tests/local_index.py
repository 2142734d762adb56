"""A real PEP 503 package index on 127.0.0.1, slow on purpose, that counts the requests uv makes
and, when asked, answers only requests with HTTP basic auth of a given user and token."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import sys
import tarfile
import threading
import time
import zipfile
from base64 import b64decode, urlsafe_b64encode
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (),
               metadata: tuple[str, ...] = (), code: str = "",
               extra: dict[str, str] | None = None, tag: str = "py3-none-any") -> Path:
    """A minimal wheel of name==version (Requires-Dist: requires, and more METADATA lines, e.g. a
    License-Expression) in folder; code is appended to its __init__.py; extra: more files by path
    (e.g. the dist-info's entry_points.txt); tag: pure Python, or a platform's (platlib, still
    Python code only: what pip and uv choose by is the tag)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n{code}",
        f"{dist}/METADATA": "".join(f"{line}\n" for line in (
            "Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}",
            *(f"Requires-Dist: {r}" for r in requires), *metadata)),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: pll-tests\nRoot-Is-Purelib: "
                         f"{str(tag.endswith('-none-any')).lower()}\nTag: {tag}\n",
        **(extra or {}),
    }

    def digest(text: str) -> str:
        return urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = [f"{path},sha256={digest(text)},{len(text.encode())}" for path, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


@dataclass
class IndexLog:
    """What the index saw: every request path, and the most requests it served at one time."""

    paths: list[str] = field(default_factory=list)
    agents: list[tuple[str, str]] = field(default_factory=list)  # (path, User-Agent) of each
    denied: list[str] = field(default_factory=list)  # paths answered 401 (no or wrong auth)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.paths)

    def asked_by(self, agent: str) -> list[str]:
        """The paths asked by clients whose User-Agent starts with agent (e.g. "pip/")."""
        with self.lock:
            return [path for path, ua in self.agents if ua.startswith(agent)]

    def downloads(self, filename: str) -> int:
        """How many times the file was fetched."""
        with self.lock:
            return sum(p.endswith("/files/" + filename) for p in self.paths)


@dataclass
class LocalIndex:
    """The index's simple URL (for --index-url) and its request log."""

    url: str
    log: IndexLog
    wheels: Path


@contextmanager
def serve_index(wheels: Path, delay: float = 0.0,
                auth: Collection[tuple[str, str]] | None = None,
                cacheable: bool = False) -> Iterator[LocalIndex]:
    """Serve the wheels and sdists (.tar.gz) in `wheels` as /simple/<name>/ pages; each page
    answer waits `delay` seconds, like a registry that is slow to answer metadata. auth: (user,
    token) pairs, one of which every request must send as HTTP basic auth (else 401), like a
    private registry. cacheable: answers may be kept for 10 minutes, as PyPI's may."""
    log = IndexLog()
    allowed = set(auth) if auth is not None else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            with log.lock:
                log.paths.append(self.path)
                log.agents.append((self.path, self.headers.get("User-Agent") or ""))
                log.in_flight += 1
                log.max_in_flight = max(log.max_in_flight, log.in_flight)
            try:
                if allowed is not None and self._credentials() not in allowed:
                    with log.lock:
                        log.denied.append(self.path)
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="pll-tests"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._answer()
            finally:
                with log.lock:
                    log.in_flight -= 1

        def do_HEAD(self) -> None:  # noqa: N802
            # uv asks first whether a wheel can be read in ranges; no Accept-Ranges: it downloads.
            self._head_only = True
            self.do_GET()

        _head_only = False

        def _credentials(self) -> tuple[str, str] | None:
            kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
            if kind.lower() != "basic":
                return None
            try:
                user, _, token = b64decode(value).decode().partition(":")
            except ValueError:
                return None
            return user, token

        def _answer(self) -> None:
            page = re.fullmatch(r"/simple/([^/]+)/?", self.path)
            if page:
                time.sleep(delay)
                wanted = _normal(page.group(1))
                links = [f'<a href="/files/{w.name}#sha256={sha256_hex(w)}">{w.name}</a>'
                         for w in sorted([*wheels.glob("*.whl"), *wheels.glob("*.tar.gz")])
                         if _normal(w.name.split("-")[0]) == wanted]
                if not links:
                    self._send(404, b"not found", "text/plain")
                    return
                self._send(200, ("<html><body>" + "".join(links) + "</body></html>").encode(),
                           "text/html")
                return
            file = re.fullmatch(r"/files/([^/]+\.(?:whl|tar\.gz))", self.path)
            if file and (wheels / file.group(1)).is_file():
                self._send(200, (wheels / file.group(1)).read_bytes(), "application/octet-stream")
                return
            self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            # Unless cacheable, every page is asked for again rather than served from uv's
            # cache, so a resolution that does not reach this index is one that did not run.
            self.send_header("Cache-Control", "max-age=600" if cacheable else "no-store")
            self.end_headers()
            if not self._head_only:
                self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalIndex(f"http://127.0.0.1:{server.server_address[1]}/simple", log, wheels)
    finally:
        server.shutdown()
        server.server_close()


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- sdists (built here by tests that need one) ---------------------------------------------
# setuptools (and `wheel`, which setuptools < 70.1 builds wheels with) for isolated builds of
# the sdists, served by the test index, taken from this machine's Python installations.
_BACKEND_WHEELS = ("setuptools-6[7-9]*-py3-none-any.whl", "wheel-0.4*-py3-none-any.whl")


def make_sdist(folder: Path, name: str, version: str, native: bool = False,
               platform_wheel: bool = False) -> Path:
    """A setuptools sdist of name==version: one module, pure Python or a C extension; or, with
    platform_wheel, pure Python that still builds into a platform wheel (no C source shipped)."""
    files = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
                          'build-backend = "setuptools.build_meta"\n',
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    if native:
        files["setup.py"] = ("from setuptools import Extension, setup\n"
                             f"setup(name={name!r}, version={version!r}, "
                             f"ext_modules=[Extension({name!r}, [{name + '.c'!r}])])\n")
        files[f"{name}.c"] = ("#include <Python.h>\n"
                              f'static struct PyModuleDef m = {{PyModuleDef_HEAD_INIT, "{name}"}};\n'
                              f"PyMODINIT_FUNC PyInit_{name}(void) {{ return PyModule_Create(&m); }}\n")
    elif platform_wheel:
        files["setup.py"] = ("from setuptools import setup\n"
                             "from setuptools.dist import Distribution\n"
                             "class Binary(Distribution):\n"
                             "    def has_ext_modules(self):\n"
                             "        return True\n"
                             f"setup(name={name!r}, version={version!r}, py_modules=[{name!r}], "
                             "distclass=Binary)\n")
        files[f"{name}.py"] = f"VERSION = {version!r}\n"
    else:
        files["setup.py"] = ("from setuptools import setup\n"
                             f"setup(name={name!r}, version={version!r}, py_modules=[{name!r}])\n")
        files[f"{name}.py"] = f"VERSION = {version!r}\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def backend_wheels(folder: Path) -> None:
    """Copy setuptools and wheel wheels from this machine's Python installations into folder."""
    roots = {Path(sys.base_prefix).parent, Path("/usr/lib"), Path("/usr/local/lib")}
    for pattern in _BACKEND_WHEELS:
        found = sorted(p for root in roots if root.is_dir()
                       for where in (f"*/lib/python3*/**/{pattern}", f"python3*/**/{pattern}")
                       for p in root.glob(where))
        if not found:
            raise RuntimeError(f"no {pattern} on this machine (looked under {sorted(map(str, roots))}):"
                               " the sdist tests serve it to uv's isolated builds; put one there, "
                               "e.g. `pip download setuptools==69.5.1 wheel==0.43.0`")
        shutil.copy(found[-1], folder)

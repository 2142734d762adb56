"""A proxy in front of the moto server that answers scripted AWS faults (429, 409, lost answers).

moto answers every request at once and never throttles, conflicts or drops an answer, and no
library scripts AWS faults per operation (botocore's Stubber replaces the server, so it cannot let
a request land and then lose its answer); so this is hand-written, small, on the standard library.
A test scripts answers per (method, path), e.g. ("PUT", "/2015-03-31/functions/NAME/configuration")
or ("POST", "/2018-10-31/layers/NAME/versions"): each request to it takes the next one; when none
is left, or the answer is PASS, the request goes to moto as it is.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Fault:
    """An AWS error answer. forward: send the request to moto first (it lands) and then answer
    this instead of moto's answer (the answer is lost on the way)."""

    status: int
    code: str
    message: str = "injected by tests/faulty_aws.py"
    forward: bool = False


PASS = None  # a scripted answer that lets the request through
THROTTLED = Fault(429, "TooManyRequestsException", "Rate exceeded")
BUSY = Fault(409, "ResourceConflictException",
             "The operation cannot be performed at this time. An update is in progress.")
UNAVAILABLE = Fault(503, "ServiceException", "Service unavailable")
LOST = Fault(503, "ServiceException", "Service unavailable", forward=True)  # landed, answer lost
DENIED = Fault(403, "AccessDeniedException", "not authorized (injected)")

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def function_configuration(name: str) -> str:
    """The REST path of GetFunctionConfiguration (GET) and UpdateFunctionConfiguration (PUT)."""
    return f"/2015-03-31/functions/{name}/configuration"


def layer_versions(name: str) -> str:
    """The REST path of PublishLayerVersion (POST) and ListLayerVersions (GET)."""
    return f"/2018-10-31/layers/{name}/versions"


def layer_policy(name: str, version: int) -> str:
    """The REST path of AddLayerVersionPermission (POST) and GetLayerVersionPolicy (GET)."""
    return f"/2018-10-31/layers/{name}/versions/{version}/policy"


class FaultyAws:
    """The proxy's script and its log: `seen` is every (method, path, status answered)."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.url = ""
        self.seen: list[tuple[str, str, int]] = []
        self._script: dict[tuple[str, str], list[Fault | None]] = {}
        self._lock = threading.Lock()

    def script(self, method: str, path: str, *answers: Fault | None) -> None:
        """Queue answers for requests to (method, path), in order, after any queued already."""
        with self._lock:
            self._script.setdefault((method, path), []).extend(answers)

    def left(self) -> dict[tuple[str, str], int]:
        """Scripted answers not used yet (a test asserts this is empty: every fault was hit)."""
        with self._lock:
            return {key: len(queue) for key, queue in self._script.items() if queue}

    def count(self, method: str, path: str) -> int:
        """How many requests to (method, path) arrived."""
        return sum(1 for m, p, _ in self.seen if (m, p) == (method, path))

    def _next(self, method: str, path: str) -> Fault | None:
        with self._lock:
            queue = self._script.get((method, path))
            return queue.pop(0) if queue else PASS

    def _forward(self, method: str, target: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, target, body=body or None, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            conn.close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        path = urllib.parse.unquote(urllib.parse.urlsplit(handler.path).path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        headers["Host"] = f"{self.upstream[0]}:{self.upstream[1]}"
        fault = self._next(method, path)
        if fault is None or fault.forward:
            status, answer_headers, answer = self._forward(method, handler.path, headers, body)
        if fault is not None:
            status, answer = fault.status, json.dumps({"Type": "User",
                                                        "message": fault.message}).encode()
            # botocore reads a REST-JSON error's code from this header (and __type in the body).
            answer_headers = [("Content-Type", "application/json"),
                              ("x-amzn-ErrorType", f"{fault.code}:"),
                              ("x-amzn-RequestId", "00000000-0000-0000-0000-faultyaws000")]
        with self._lock:
            self.seen.append((method, path, status))
        handler.send_response(status)
        for key, value in answer_headers:
            if key.lower() not in _HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)


@contextmanager
def faulty_aws(upstream: str) -> Iterator[FaultyAws]:
    """A FaultyAws in front of upstream (the moto server's URL), served on a free 127.0.0.1
    port (its `url`) for the block."""
    proxy = FaultyAws(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            proxy.handle(self)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: the test reads proxy.seen

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

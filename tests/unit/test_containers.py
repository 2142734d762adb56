"""The container runner with a fake docker client: lines, exit names, clean-up, the timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pulumi_lambda_layers import containers
from pulumi_lambda_layers.containers import Exit, Refusal


class FakeContainer:
    def __init__(self, chunks: list[bytes], code: int, hang: bool = False) -> None:
        self.chunks, self.code, self.hang = chunks, code, hang
        self.killed, self.removed = threading.Event(), False

    def logs(self, stream: bool, follow: bool) -> Iterator[bytes]:
        yield from self.chunks
        if self.hang:
            assert self.killed.wait(10)

    def wait(self) -> dict[str, int]:
        return {"StatusCode": 137 if self.killed.is_set() else self.code}

    def kill(self) -> None:
        self.killed.set()

    def remove(self, force: bool) -> None:
        self.removed = force


class FakeClient:
    def __init__(self, container: FakeContainer) -> None:
        self.container = container
        self.calls: list[tuple[str, list[str], dict[str, Any]]] = []
        self.containers = self

    def run(self, image: str, command: list[str], **options: Any) -> FakeContainer:
        self.calls.append((image, command, options))
        return self.container


class Image:
    id = "sha256:abc"


def test_lines_are_whole_even_when_chunks_split_them() -> None:
    assert list(containers.lines([b"a\r\nb", b"c\n", b"", b"d"])) == ["a", "bc", "d"]


def test_run_streams_lines_and_names_the_refusal() -> None:
    box = FakeContainer([b"pll: one\nother\npll: the image has Python 3.9 but", b" ...\n"], 86)
    client = FakeClient(box)
    seen: list[str] = []
    end = containers.run(client, Image(), ["sh", "-c", "x"], seen.append, user="1:1")
    assert seen == ["pll: one", "other", "pll: the image has Python 3.9 but ..."] == end.tail
    assert (end.code, end.refusal) == (86, Refusal.VERSION)
    assert end.said == "the image has Python 3.9 but ..."
    assert client.calls == [("sha256:abc", ["sh", "-c", "x"], {"detach": True, "user": "1:1"})]
    assert box.removed and not end.timed_out


def test_exit_codes_that_are_not_ours_name_nothing() -> None:
    assert Exit(1, ["pll: x"], 0.0, False).refusal is None
    assert Exit(139, [], 0.0, False).said is None
    assert containers.signal_name(139) == ", SIGSEGV" and containers.signal_name(1) == ""


def test_the_container_is_removed_when_reading_fails() -> None:
    box = FakeContainer([b"boom\n"], 0)

    def fail(_line: str) -> None:
        raise RuntimeError("reader broke")

    with pytest.raises(RuntimeError):
        containers.run(FakeClient(box), Image(), ["x"], fail)
    assert box.removed


def test_a_container_past_its_timeout_is_killed() -> None:
    box = FakeContainer([b"started\n"], 0, hang=True)
    end = containers.run(FakeClient(box), Image(), ["x"], lambda _l: None, timeout_s=0.1)
    assert end.timed_out and end.code == 137 and box.removed

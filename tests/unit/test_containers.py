"""The container runner with a fake docker client: lines, exit names, clean-up, the timeout."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
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


def test_locked_down_drops_every_privilege_and_the_writable_root() -> None:
    assert containers.locked_down("10001:10001", "rw,size=1g") == {
        "user": "10001:10001", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "read_only": True, "tmpfs": {"/tmp": "rw,size=1g"}}


class FakeVolume:
    def __init__(self, name: str, labels: dict[str, str] | None) -> None:
        self.name, self.attrs = name, {"Labels": labels, "CreatedAt": f"t-{name}"}


class FakeDocker(FakeClient):
    """containers.run (every call kept), images.get, volumes.get/create."""

    def __init__(self) -> None:
        super().__init__(FakeContainer([], 0))
        self.images = self.volumes = self
        self.made: dict[str, FakeVolume] = {}

    def get(self, name: str) -> Any:
        import docker.errors

        if name.startswith("pulumi-lambda-layers-cache-"):
            if name not in self.made:
                raise docker.errors.NotFound(name)
            return self.made[name]
        return Image()

    def create(self, name: str, labels: dict[str, str]) -> FakeVolume:
        self.made[name] = FakeVolume(name, labels)
        return self.made[name]


def _docker_build(tmp_path: Path, uid: int, monkeypatch: pytest.MonkeyPatch,
                  owner: str = "") -> tuple[FakeDocker, list[tuple[Path, int, int]]]:
    from pulumi_lambda_layers import make_spec
    from pulumi_lambda_layers.build import docker as build_docker
    from pulumi_lambda_layers.sources.fingerprint import Fingerprint

    chowned: list[tuple[Path, int, int]] = []
    monkeypatch.setattr(os, "getuid", lambda: uid)
    monkeypatch.setattr(os, "getgid", lambda: uid)
    monkeypatch.setattr(os, "chown", lambda p, u, g: chowned.append((Path(p), u, g)))
    monkeypatch.setattr(build_docker, "_prepared", set())
    lock = tmp_path / "requirements.lock"
    lock.write_text("six==1.16.0\n")
    spec = make_spec(runtime="python3.11", architecture="x86_64", lock=str(lock),
                     builder="docker", image="img")
    client = FakeDocker()
    fp = Fingerprint("h", {"six": "1.16.0"}, {"requirements.txt": "six==1.16.0\n"})
    (tmp_path / "out").mkdir()
    build_docker.DockerBuilder(client, cache_owner=owner).build(spec, fp, tmp_path / "out",
                                                                lambda _l: None)
    return client, chowned


def test_a_docker_build_as_root_runs_sandboxed_as_the_sandbox_uid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from pulumi_lambda_layers.build.docker import CACHE_VOLUME_PREFIX, OWNER_LABEL, SANDBOX_UID

    client, chowned = _docker_build(tmp_path, 0, monkeypatch, owner="shop")
    (name, volume), = client.made.items()
    assert name == CACHE_VOLUME_PREFIX + "abc-" + hashlib.sha256(b"shop").hexdigest()[:12]
    assert volume.attrs["Labels"] == {"pulumi-lambda-layers": "package-cache", OWNER_LABEL: "shop"}
    assert chowned == [(tmp_path / "out", SANDBOX_UID, SANDBOX_UID)]
    (_, prepare, given), (_, build, options) = client.calls
    # The volume is given to the build uid, mode 0700, by root with only the capabilities for it.
    assert prepare[-2:] == ["/pll/cache", f"{SANDBOX_UID}:{SANDBOX_UID}"] and "0700" in prepare[2]
    assert (given["user"], given["network_mode"], given["volumes"]) == (
        "0:0", "none", {name: {"bind": "/pll/cache", "mode": "rw"}})
    assert given["cap_drop"] == ["ALL"] and set(given["cap_add"]) == {"CHOWN", "DAC_OVERRIDE",
                                                                     "FOWNER"}
    assert build[:2] == ["sh", "-c"]
    assert options["user"] == f"{SANDBOX_UID}:{SANDBOX_UID}"
    assert (options["cap_drop"], options["security_opt"], options["read_only"]) == (
        ["ALL"], ["no-new-privileges"], True)
    assert "size=4g" in options["tmpfs"]["/tmp"] and ",exec," in options["tmpfs"]["/tmp"]
    mounts = {v["bind"]: (k, v["mode"]) for k, v in options["volumes"].items()}
    assert mounts["/pll/out"] == (str(tmp_path / "out"), "rw") and mounts["/pll/in"][1] == "ro"
    assert mounts["/pll/cache"] == (name, "rw") and len(mounts) == 3


def test_a_docker_build_by_a_user_runs_as_them_with_their_own_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    client, chowned = _docker_build(tmp_path, 1000, monkeypatch)
    assert chowned == []  # their own folder already
    (name, volume), = client.made.items()
    assert name.endswith("-" + hashlib.sha256(b"uid1000").hexdigest()[:12])
    assert client.calls[0][1][-1] == "1000:1000" and client.calls[1][2]["user"] == "1000:1000"


def test_the_cache_owner_is_the_specs_else_the_environments_else_the_uid(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import dataclasses

    from pulumi_lambda_layers import make_spec
    from pulumi_lambda_layers.build import select

    (tmp_path / "requirements.lock").write_text("six==1.16.0\n")
    spec = make_spec(runtime="python3.11", lock=str(tmp_path / "requirements.lock"))
    monkeypatch.setenv("PLL_CACHE_OWNER", "shop")
    assert select._docker(spec)._cache_owner == "shop"  # type: ignore[attr-defined]
    owned = dataclasses.replace(spec, cache_owner="billing-project")
    assert select._docker(owned)._cache_owner == "billing-project"  # type: ignore[attr-defined]
    monkeypatch.delenv("PLL_CACHE_OWNER")
    assert select._docker(spec)._cache_owner == f"uid{os.getuid()}"  # type: ignore[attr-defined]

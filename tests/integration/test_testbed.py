"""The local Docker testbed works: engine, images, arm64 emulation and registry access from containers."""

from __future__ import annotations

import pytest

from tests.conftest import HOST_CA_BUNDLE
from tests.testbed_images import LOCAL_IMAGES, require_docker, require_image

PYTHON_IMAGES = [key for key in LOCAL_IMAGES if key[0].startswith("python")]
UNAME = {"x86_64": "x86_64", "arm64": "aarch64"}


def run(image: str, command: str, **kwargs: object) -> str:
    """Output of `sh -c command` in a throwaway container; a non-zero exit fails with its output."""
    client = require_docker()
    # detach + wait rather than run(): stderr stays readable when the command fails.
    container = client.containers.run(image, ["sh", "-c", command], detach=True, **kwargs)
    try:
        status = container.wait(timeout=300)
        output = container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, f"{command!r} in {image} exited {status['StatusCode']}:\n{output}"
    return output.strip()


@pytest.mark.parametrize(("runtime_id", "arch"), PYTHON_IMAGES)
def test_python_image_version_and_machine(runtime_id: str, arch: str) -> None:
    image = require_image(runtime_id, arch)
    out = run(image, "python3 --version; uname -m").splitlines()
    # python3.11 -> "Python 3.11.x"; uname on the arm64 image says aarch64 only if qemu emulates it.
    assert out[0].startswith(f"Python {runtime_id.removeprefix('python')}."), out
    assert out[1] == UNAME[arch], out


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_node_image_runs_node_and_npm(arch: str) -> None:
    image = require_image("nodejs20.x", arch)
    node, npm, machine = run(image, "node --version; npm --version; uname -m", user="1000:1000",
                             environment={"HOME": "/tmp"}).splitlines()
    assert node.startswith("v20."), node
    assert npm.split(".")[0].isdigit(), npm
    assert machine == UNAME[arch], machine


def test_pip_reaches_registry_from_container_as_non_root() -> None:
    image = require_image("python3.11", "x86_64")
    # Host network and host CA bundle: what builds need on these machines (and behind proxies).
    out = run(image, "cd /tmp && pip download --no-deps --disable-pip-version-check six==1.16.0 && ls",
              user="1000:1000", environment={"HOME": "/tmp"}, network_mode="host",
              volumes={HOST_CA_BUNDLE: {"bind": "/etc/ssl/certs/ca-certificates.crt", "mode": "ro"}})
    assert "six-1.16.0-py2.py3-none-any.whl" in out, out

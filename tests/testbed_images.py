"""Local Docker images standing in for the AWS build images; checks that fail loudly if absent."""

from __future__ import annotations

import platform
from pathlib import Path

import docker
import docker.errors

# No image registry is reachable from the test machines, so tests use images built locally from
# Debian rootfs tarballs (scripts/build-images.sh); the Python minor / Node major match the runtime.
LOCAL_IMAGES: dict[tuple[str, str], str] = {
    ("python3.11", "x86_64"): "pulumi-lambda-layers-dev/python3.11:x86_64",
    ("python3.11", "arm64"): "pulumi-lambda-layers-dev/python3.11:arm64",
    ("python3.13", "x86_64"): "pulumi-lambda-layers-dev/python3.13:x86_64",
    ("nodejs20.x", "x86_64"): "pulumi-lambda-layers-dev/nodejs20.x:x86_64",
    ("nodejs20.x", "arm64"): "pulumi-lambda-layers-dev/nodejs20.x:arm64",
}

FIX_ENGINE = "bash scripts/ensure-docker.sh"
FIX_IMAGES = "make images (or: bash scripts/ensure-docker.sh && bash scripts/build-images.sh)"
QEMU_BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def require_docker() -> docker.DockerClient:
    """A client for a Docker engine that answers; RuntimeError naming the fix otherwise."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        # A missing engine is a broken testbed, not a reason to skip: skipped tests pass silently.
        raise RuntimeError(f"no Docker engine answers ({exc}); start one with `{FIX_ENGINE}`") from exc
    return client


def require_image(runtime_id: str, arch: str) -> str:
    """The local image tag for (runtime_id, arch), checked to be runnable; RuntimeError otherwise."""
    try:
        tag = LOCAL_IMAGES[(runtime_id, arch)]
    except KeyError:
        known = ", ".join(f"{r}/{a}" for r, a in LOCAL_IMAGES)
        raise RuntimeError(f"no local test image is defined for {runtime_id}/{arch} (defined: {known}); "
                           "add it to IMAGES in scripts/build-images.sh and to LOCAL_IMAGES in "
                           "tests/testbed_images.py") from None
    client = require_docker()
    # The arm64 image exists after a reboot too, but runs only once qemu is registered again.
    if arch == "arm64" and platform.machine() != "aarch64" and not _qemu_registered():
        raise RuntimeError(f"arm64 emulation is not set up ({QEMU_BINFMT} missing, disabled or "
                           f"without the F flag), so {tag} cannot run; fix with `{FIX_ENGINE}`")
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise RuntimeError(f"local Docker image {tag} is missing; build it with `{FIX_IMAGES}` "
                           f"(just this one: `bash scripts/build-images.sh {runtime_id}:{arch}`)"
                           ) from None
    return tag


def _qemu_registered() -> bool:
    try:
        lines = QEMU_BINFMT.read_text().splitlines()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags:")), "")
    return "enabled" in lines and "F" in flags


# A python3.11 x86_64 build image that can compile C extensions (the test images have no gcc):
# derived from the local one, kept by tag, made again when its base image changed.
COMPILER_IMAGE = "pulumi-lambda-layers-dev/python3.11-gcc:x86_64"
_BASE_LABEL = "pulumi-lambda-layers-dev.base-image"
_COMPILER_DOCKERFILE = """FROM {base}
LABEL {label}={base_id}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends gcc libc6-dev python3-dev \\
 && rm -rf /var/lib/apt/lists/*
"""


def require_compiler_image() -> str:
    """COMPILER_IMAGE (python3.11 x86_64 + gcc, libc6-dev, python3-dev), built here if missing
    or made from another base image; RuntimeError naming what failed otherwise."""
    import io

    base = require_image("python3.11", "x86_64")
    client = require_docker()
    base_id = client.images.get(base).id
    try:
        if client.images.get(COMPILER_IMAGE).labels.get(_BASE_LABEL) == base_id:
            return COMPILER_IMAGE
    except docker.errors.ImageNotFound:
        pass
    text = _COMPILER_DOCKERFILE.format(base=base, label=_BASE_LABEL, base_id=base_id)
    try:
        # The host's network: apt reaches the Debian mirrors as the host does (proxy, DNS).
        client.images.build(fileobj=io.BytesIO(text.encode()), tag=COMPILER_IMAGE,
                            network_mode="host", rm=True, forcerm=True)
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        tail = "\n".join(str(chunk.get("stream", chunk.get("error", ""))).rstrip()
                         for chunk in list(getattr(exc, "build_log", []))[-15:])
        raise RuntimeError(f"could not build the test image {COMPILER_IMAGE} (FROM {base}, "
                           f"apt-get install gcc libc6-dev python3-dev with --network host): "
                           f"{exc}\n{tail}\nit needs a Debian mirror reachable from this "
                           "machine (check the proxy / DNS, then run the test again)") from None
    return COMPILER_IMAGE

"""Docker builder: installs inside a Lambda-compatible build image for the target architecture."""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

from pulumi_lambda_layers import containers
from pulumi_lambda_layers.containers import Refusal, docker_client, ensure_image
from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.log import Sink as Log
from pulumi_lambda_layers.runtimes import DOCKER_PLATFORM, UNAME_MACHINE
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec

_IN, _OUT, _CA, _CACHE = "/pll/in", "/pll/out", "/pll/ca/extra.pem", "/pll/cache"
CACHE_VOLUME_PREFIX = "pulumi-lambda-layers-cache-"


class DockerBuilder:
    """One container per build: read-only inputs, output owned by the caller, log tail on failure."""

    name = "docker"

    def __init__(self, client: Any = None) -> None:
        self._client = client  # a docker SDK client; None: from the environment, on first build

    def build(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None:
        client = self._client if self._client is not None else docker_client()
        image = ensure_image(client, spec.build_image, DOCKER_PLATFORM[spec.architecture], log)
        with tempfile.TemporaryDirectory(prefix="pll-docker-in-") as inp:
            for name, text in fp.install_files.items():
                Path(inp, name).write_text(text)
            os.chmod(inp, 0o755)  # the container user may not be the directory's owner
            volumes = {inp: {"bind": _IN, "mode": "ro"}, str(root): {"bind": _OUT, "mode": "rw"},
                       cache_volume(client, image, log): {"bind": _CACHE, "mode": "rw"}}
            if spec.ca_bundle:
                volumes[str(spec.ca_bundle)] = {"bind": _CA, "mode": "ro"}
            log(f"docker: building in {spec.build_image} ({spec.architecture})")
            run_container(client, image, build_script(spec), volumes, spec, log)


def cache_volume(client: Any, image: Any, log: Log) -> str:
    """The named volume holding pip's and npm's download caches for builds in this image.

    One per image id: downloads are the same for every image, but wheels pip built from source
    are only right for the image (compiler, glibc) that built them. Build containers run as the
    caller's uid, so a new volume is made world-writable (sticky, like /tmp) once, as root.
    """
    import docker.errors

    name: str = CACHE_VOLUME_PREFIX + image.id.split(":")[-1][:16]
    try:
        client.volumes.get(name)
        return name
    except docker.errors.NotFound:
        pass
    client.volumes.create(name, labels={"pulumi-lambda-layers": "package-cache"})
    end = containers.run(client, image, ["chmod", "1777", _CACHE], lambda line: log("  " + line),
                         user="0:0", network_mode="none",
                         volumes={name: {"bind": _CACHE, "mode": "rw"}})
    if end.code != 0:  # left in place, the volume would stay unwritable for every later build
        client.volumes.get(name).remove(force=True)
        raise BuildError("docker", f"could not make the package cache volume {name} writable "
                         f"(chmod exited with {end.code})", "\n".join(end.tail),
                         "the build image needs /bin/chmod; pass image= with one")
    log(f"docker: made package cache volume {name} (pip and npm downloads kept between builds)")
    return name


def build_script(spec: LayerSpec) -> str:
    """The shell script a build container runs for this spec (its values: build_environment)."""
    body = "python.sh" if spec.runtime.language == "python" else "node.sh"
    return containers.script("pulumi_lambda_layers.build", "prelude.sh", body)


def build_environment(spec: LayerSpec) -> dict[str, str]:
    """The build container's environment: the script's inputs, the package caches, the proxy."""
    env = {"HOME": "/tmp", "PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_ROOT_USER_ACTION": "ignore",
           "npm_config_update_notifier": "false", "PIP_CACHE_DIR": f"{_CACHE}/pip",
           "npm_config_cache": f"{_CACHE}/npm",
           "PLL_MACHINE": UNAME_MACHINE[spec.architecture], "PLL_VERSION": spec.runtime.version,
           "PLL_PREFIX": spec.runtime.layer_prefix, "PLL_IN": _IN, "PLL_OUT": _OUT, "PLL_CA": _CA}
    for key, value in spec.proxy.items():
        env[key] = env[key.lower()] = value
    return env


def run_container(client: Any, image: Any, script: str, volumes: dict[str, dict[str, str]],
                  spec: LayerSpec, log: Log) -> None:
    """Run script in image, stream its log, raise BuildError with the tail when it fails."""

    # volumes mounts the package cache volume at _CACHE (DockerBuilder.build always does).
    end = containers.run(client, image, ["sh", "-c", script], lambda line: log("  " + line),
                         environment=build_environment(spec), volumes=volumes,
                         user=f"{os.getuid()}:{os.getgid()}", network_mode=spec.network_mode,
                         working_dir="/tmp")
    if end.code == 0:
        return
    if spec.runtime.language == "python":
        other_version = (f"pass image= with Python {spec.runtime.version}, or a runtime matching "
                         "the image")
    else:
        other_version = f"pass image= with Node.js {spec.runtime.version}"
    fixes = {
        Refusal.VERSION: other_version,
        Refusal.ARCHITECTURE: "use an image for the target architecture (multi-arch tags need "
                              "qemu/binfmt for foreign architectures)",
    }
    fix = fixes.get(end.refusal) if end.refusal is not None else None
    problem = end.said if fix is not None and end.said else f"the build exited with {end.code}"
    raise BuildError(f"docker build in {spec.build_image}", problem, "\n".join(end.tail),
                     fix or ("see the output above; " + shlex.quote(spec.build_image)
                             + " must be able to install the packages for the target"))

"""Docker builder: installs inside a Lambda-compatible build image for the target architecture."""

from __future__ import annotations

import collections
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.runtimes import DOCKER_PLATFORM, UNAME_MACHINE
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.build.select import Log

_IN, _OUT, _CA, _CACHE = "/pll/in", "/pll/out", "/pll/ca/extra.pem", "/pll/cache"
CACHE_VOLUME_PREFIX = "pulumi-lambda-layers-cache-"
_EXIT_PYTHON_MISMATCH, _EXIT_ARCH_MISMATCH, _EXIT_NODE_MISMATCH = 86, 87, 88
_TAIL_LINES = 40

# Runs first in every build container: refuse an image that cannot make the target's bytes, and
# add the extra CA bundle to the image's own trust store (replacing it would break public hosts).
_PRELUDE = """set -eu
m=$(uname -m)
if [ "$m" != "{machine}" ]; then
  echo "pll: the image runs $m code but the layer is for {machine}" >&2; exit {arch_exit}
fi
if [ -f {ca} ]; then
  : > /tmp/pll-ca.pem
  for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -f "$f" ]; then cat "$f" >> /tmp/pll-ca.pem; break; fi
  done
  cat {ca} >> /tmp/pll-ca.pem
  export PIP_CERT=/tmp/pll-ca.pem SSL_CERT_FILE=/tmp/pll-ca.pem REQUESTS_CA_BUNDLE=/tmp/pll-ca.pem
  export NODE_EXTRA_CA_CERTS={ca} npm_config_cafile=/tmp/pll-ca.pem
fi
"""

_PYTHON = """py=$(command -v python3 || command -v python)
v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$v" != "{version}" ]; then
  echo "pll: the image has Python $v but the runtime is Python {version}" >&2
  exit {py_exit}
fi
echo "pll: $("$py" -m pip --version)"
"$py" -m pip install --no-deps --no-compile --disable-pip-version-check --progress-bar off \\
  -r {inp}/requirements.txt --target {out}/{prefix}
"""

_NODE = """v=$(node -p 'process.versions.node.split(".")[0]')
if [ "$v" != "{version}" ]; then
  echo "pll: the image has Node.js $v but the runtime is Node.js {version}" >&2
  exit {node_exit}
fi
mkdir -p {out}/nodejs && cp {inp}/package.json {inp}/package-lock.json {out}/nodejs/
cd {out}/nodejs
echo "pll: npm $(npm --version)"
npm ci --omit=dev --no-audit --no-fund
rm -f package.json package-lock.json
"""


class DockerBuilder:
    """One container per build: read-only inputs, output owned by the caller, log tail on failure."""

    name = "docker"

    def build(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None:
        client = docker_client()
        image = ensure_image(client, spec.build_image, DOCKER_PLATFORM[spec.architecture], log)
        with tempfile.TemporaryDirectory(prefix="pll-docker-in-") as inp:
            for name, text in fp.install_files.items():
                Path(inp, name).write_text(text)
            os.chmod(inp, 0o755)  # the container user may not be the directory's owner
            volumes = {inp: {"bind": _IN, "mode": "ro"}, str(root): {"bind": _OUT, "mode": "rw"},
                       cache_volume(client, image, log): {"bind": _CACHE, "mode": "rw"}}
            if spec.ca_bundle:
                volumes[str(spec.ca_bundle)] = {"bind": _CA, "mode": "ro"}
            script = build_script(spec)
            log(f"docker: building in {spec.build_image} ({spec.architecture})")
            run_container(client, image, script, volumes, spec, log)


def cache_volume(client: Any, image: Any, log: Log) -> str:
    """The named volume holding pip's and npm's download caches for builds in this image.

    One per image id: downloads are the same for every image, but wheels pip built from source
    are only right for the image (compiler, glibc) that built them. Build containers run as the
    caller's uid, so a new volume is made world-writable (sticky, like /tmp) once, as root.
    """
    import docker.errors

    name = CACHE_VOLUME_PREFIX + image.id.split(":")[-1][:16]
    try:
        client.volumes.get(name)
        return name
    except docker.errors.NotFound:
        pass
    client.volumes.create(name, labels={"pulumi-lambda-layers": "package-cache"})
    client.containers.run(image.id, ["chmod", "1777", _CACHE], user="0:0", remove=True,
                          network_mode="none", volumes={name: {"bind": _CACHE, "mode": "rw"}})
    log(f"docker: made package cache volume {name} (pip and npm downloads kept between builds)")
    return name


def build_script(spec: LayerSpec) -> str:
    """The shell script a build container runs for this spec."""
    values = {
        "machine": UNAME_MACHINE[spec.architecture], "ca": _CA, "inp": _IN, "out": _OUT,
        "prefix": spec.runtime.layer_prefix, "version": spec.runtime.version,
        "arch_exit": _EXIT_ARCH_MISMATCH, "py_exit": _EXIT_PYTHON_MISMATCH,
        "node_exit": _EXIT_NODE_MISMATCH,
    }
    body = _PYTHON if spec.runtime.language == "python" else _NODE
    return (_PRELUDE + body).format(**values)


def docker_client() -> Any:
    """A docker SDK client that answers, or a BuildError saying how to start Docker."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # the SDK raises several types for "no daemon"; all mean the same
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise BuildError("docker", f"no Docker engine answers at {where} ({exc.__class__.__name__})",
                         fix="start Docker (`sudo systemctl start docker`, or `dockerd &`; in this "
                             "repo `make docker`), set DOCKER_HOST, or use builder='local'") from None


def ensure_image(client: Any, image: str, platform: str, log: Log) -> Any:
    """The image object, pulled for the platform when it is not present locally."""
    import docker.errors

    try:
        return client.images.get(image)
    except docker.errors.ImageNotFound:
        pass
    log(f"docker: pulling {image} for {platform}")
    try:
        return client.images.pull(image, platform=platform)
    except docker.errors.APIError as exc:
        raise BuildError("docker pull", f"could not get image {image} for {platform}: "
                         f"{exc.explanation or exc}",
                         fix="check the registry is reachable (docker login, proxy), or build/load "
                             "the image locally and pass image=") from None


def run_container(client: Any, image: Any, script: str, volumes: dict[str, dict[str, str]],
                  spec: LayerSpec, log: Log) -> None:
    """Run script in image, stream its log, raise BuildError with the tail when it fails."""
    # volumes mounts the package cache volume at _CACHE (DockerBuilder.build always does).
    env = {"HOME": "/tmp", "PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_ROOT_USER_ACTION": "ignore",
           "npm_config_update_notifier": "false", "PIP_CACHE_DIR": f"{_CACHE}/pip",
           "npm_config_cache": f"{_CACHE}/npm"}
    for key, value in spec.proxy.items():
        env[key] = env[key.lower()] = value
    container = client.containers.run(
        image.id, ["sh", "-c", script], detach=True, environment=env, volumes=volumes,
        user=f"{os.getuid()}:{os.getgid()}", network_mode=spec.network_mode, working_dir="/tmp")
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        for line in _lines(container.logs(stream=True, follow=True)):
            tail.append(line)
            log("  " + line)
        code = container.wait().get("StatusCode", 1)
    finally:
        container.remove(force=True)
    if code == 0:
        return
    tail_text = "\n".join(tail)
    fixes = {
        _EXIT_PYTHON_MISMATCH: f"pass image= with Python {spec.runtime.version}, or a runtime "
                               "matching the image",
        _EXIT_NODE_MISMATCH: f"pass image= with Node.js {spec.runtime.version}",
        _EXIT_ARCH_MISMATCH: "use an image for the target architecture (multi-arch tags need "
                             "qemu/binfmt for foreign architectures)",
    }
    problem = next((line.removeprefix("pll: ") for line in reversed(tail)
                    if line.startswith("pll: ") and code in fixes), f"the build exited with {code}")
    raise BuildError(f"docker build in {spec.build_image}", problem, tail_text,
                     fixes.get(code, "see the output above; " + shlex.quote(spec.build_image)
                               + " must be able to install the packages for the target"))


def _lines(stream: Any) -> Any:
    buf = b""
    for chunk in stream:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode(errors="replace").rstrip("\r")
    if buf:
        yield buf.decode(errors="replace")

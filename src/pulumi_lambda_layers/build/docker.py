"""Docker builder: installs inside a Lambda-compatible build image for the target architecture."""

from __future__ import annotations

import contextvars
import hashlib
import os
import shlex
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from pulumi_lambda_layers import containers
from pulumi_lambda_layers.atomic import write_atomic
from pulumi_lambda_layers.build import prefetch
from pulumi_lambda_layers.build.cache import cache_dir
from pulumi_lambda_layers.containers import Refusal, docker_client, ensure_image
from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.log import Sink as Log
from pulumi_lambda_layers.runtimes import DOCKER_PLATFORM, UNAME_MACHINE
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec

_IN, _OUT, _CA, _CACHE = "/pll/in", "/pll/out", "/pll/ca/extra.pem", "/pll/cache"
CACHE_VOLUME_PREFIX = "pulumi-lambda-layers-cache-"
# Every cache volume carries CACHE_LABEL (docs/sandbox.md: clean them up by it) and its owner.
CACHE_LABEL, CACHE_LABEL_VALUE = "pulumi-lambda-layers", "package-cache"
OWNER_LABEL = "pulumi-lambda-layers.cache-owner"
# Who the package cache belongs to when the caller does not say (select.py reads it): the
# Pulumi project name is the intended value, so a project's builds never read another's cache.
CACHE_OWNER_ENV = "PLL_CACHE_OWNER"
# uid and gid of build containers when the deployer is root: no image names it, so it owns
# nothing in the image, and a build is never root, whoever deploys.
SANDBOX_UID = 10001
# pip builds sdists in /tmp (numpy's compile needs gigabytes) and runs what it built there.
BUILD_TMPFS = "rw,exec,nosuid,nodev,mode=1777,size=4g"
# One-off root container over a cache volume: unless it is the build uid's alone (mode 0700),
# it is emptied and given to that uid. Emptied, not just re-owned: while others could write to
# it they could have left wheels that pip would install. A new volume goes the same way.
_PREPARE = ('set -eu; now=$(stat -c "%u:%g %a" "$1"); [ "$now" = "$2 700" ] && exit 0; '
            'echo "pll: was $now"; find "$1" -mindepth 1 -delete; chown "$2" "$1"; '
            'chmod 0700 "$1"')
# Exit code of prelude.sh when the cache volume is not the build uid's alone (mode 0700).
UNPREPARED = 88
_prepared: set[tuple[str, str, str]] = set()  # (volume, its CreatedAt, uid:gid) checked here
_prepare_lock = threading.Lock()
_made: set[str] = set()  # volumes this process made (volume_generation starts a new one)


class DockerBuilder:
    """One container per build, sandboxed: never root, no capabilities, read-only but for its
    output folder and its owner's package cache volume; log tail on failure."""

    name = "docker"

    def __init__(self, client: Any = None, cache_owner: str = "", fetch_here: bool = True) -> None:
        self._client = client  # a docker SDK client; None: from the environment, on first build
        # Whose package cache the builds use; "": the deployer's uid.
        self._cache_owner = cache_owner or f"uid{os.getuid()}"
        # Python: the lock's wheels fetched on this side (build/prefetch.py) when it allows; the
        # container's pip then installs them without an index. False: it always asks the index.
        self._fetch_here = fetch_here
        self._images: dict[tuple[str, str], Any] = {}

    def pack_scope(self, spec: LayerSpec, log: Log) -> str:
        """What, besides a package's pin, decides what its files from this builder's containers
        are: the build image's id (its pip picks the wheel; a wheel it compiled from an sdist is
        only right for its compiler and glibc) and the owner's package cache volume, as made
        (in one container a package's setup.py can change the files of the others, so what one
        owner's builds installed is never another's; and `docker volume rm` starts cold)."""
        image = self._image(spec, log)
        name = cache_volume(self._client, image, self._cache_owner, build_user(), log,
                            checked_by_build=True)
        with _prepare_lock:
            made = name in _made
            _made.discard(name)
        return f"{image.id} {name}#{volume_generation(name, made)}"

    def _image(self, spec: LayerSpec, log: Log) -> Any:
        # One look-up per builder: the pack keys and the build must name the same image.
        key = (spec.build_image, spec.architecture)
        if key not in self._images:
            if self._client is None:
                self._client = docker_client()
            self._images[key] = ensure_image(self._client, spec.build_image,
                                             DOCKER_PLATFORM[spec.architecture], log)
        return self._images[key]

    def build(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log,
              wheels: Path | None = None, fetch: bool = True) -> None:
        """Install fp's requirements (or package.json) into root in one container. Python: the
        container's pip installs the wheels the caller fetched into `wheels` (fetch_wheels), or
        those fetched here meanwhile; fetch=False: it asks the index itself (sdists to build)."""
        image = self._image(spec, log)
        client = self._client
        uid, gid = build_user()
        if os.getuid() == 0:
            # The one host folder the build may write; as root the host still reads and deletes
            # all it holds.
            os.chown(root, uid, gid)
        # An existing volume is checked by the build container itself (prelude.sh), not by a
        # container of its own first: that saved start is most of a small build's fixed cost.
        cache = cache_volume(client, image, self._cache_owner, (uid, gid), log,
                             checked_by_build=True)
        with tempfile.TemporaryDirectory(prefix="pll-docker-in-") as inp:
            # Readable by the build uid, which may not be the owner; mounted read-only.
            for name, text in fp.install_files.items():
                Path(inp, name).write_text(text)
                os.chmod(Path(inp, name), 0o644)
            os.chmod(inp, 0o755)
            # The caller's fetched wheels, or (a whole-lock build) the lock's, fetched here while
            # the container starts: python.sh waits for the verdict after importing pip, most
            # of its start-up under emulation.
            fetching = None
            if wheels is not None:
                _given(wheels, Path(inp))
            elif fetch:
                fetching = self._start_fetch(spec, fp, Path(inp), log)
            fetched = wheels is not None or fetching is not None
            volumes = {inp: {"bind": _IN, "mode": "ro"}, str(root): {"bind": _OUT, "mode": "rw"},
                       cache: {"bind": _CACHE, "mode": "rw"}}
            if spec.ca_bundle:
                volumes[copy_ca_bundle(spec.ca_bundle, Path(inp))] = {"bind": _CA, "mode": "ro"}
            log(f"docker: building in {spec.build_image} ({spec.architecture}) as uid {uid}")
            try:
                self._run(client, image, volumes, spec, (uid, gid), cache, log, fetched)
            finally:
                if fetching is not None:
                    fetching.join()  # nothing writes into the input folder once it is removed

    def _run(self, client: Any, image: Any, volumes: dict[str, dict[str, str]], spec: LayerSpec,
             user: tuple[int, int], cache: str, log: Log, wheels: bool) -> None:
        try:
            run_container(client, image, build_script(spec), volumes, spec, user, log, wheels)
        except _Unprepared:
            with _prepare_lock:
                _prepared.clear()  # whatever this process checked before, it is not so now
            cache_volume(client, image, self._cache_owner, user, log)
            try:
                run_container(client, image, build_script(spec), volumes, spec, user, log, wheels)
            except _Unprepared:
                raise BuildError("docker", f"the package cache volume {cache} is still not "
                                 "the build uid's after preparing it",
                                 fix=f"`docker volume rm {cache}`") from None

    def _start_fetch(self, spec: LayerSpec, fp: Fingerprint, inp: Path, log: Log
                     ) -> threading.Thread | None:
        """A thread fetching the lock's wheels into inp/wheels (through the spec's proxy, with
        its extra CA bundle), then writing inp/wheels.done: "ready", or "online" when the
        container's pip must ask the index. None: no fetch (Node.js, or fetch_here=False)."""
        text = fp.install_files.get("requirements.txt")
        if not self._fetch_here or text is None:
            return None

        def fetch() -> None:
            done = None
            try:
                done = self.fetch_wheels(spec, text, inp / "wheels", log)
            finally:  # whatever happened, the container is told (else it waits its limit out)
                _verdict(inp, done is not None)

        thread = threading.Thread(target=contextvars.copy_context().run, args=(fetch,),
                                  name="pll-fetch-wheels", daemon=True)
        thread.start()
        return thread

    def fetch_wheels(self, spec: LayerSpec, text: str, folder: Path, log: Log
                     ) -> prefetch.Fetched | None:
        """The wheels of the requirements text that this image's pip could pick, fetched into
        folder through the spec's proxy, with its extra CA bundle (build/prefetch.py); None when
        the container's pip is to ask the index (or fetch_here=False)."""
        if not self._fetch_here or spec.runtime.language != "python":
            return None
        from pulumi_lambda_layers.build.local import _proxy_env

        return prefetch.fetch_wheels(text, spec.runtime.version, UNAME_MACHINE[spec.architecture],
                                     folder, _proxy_env(spec),
                                     str(spec.ca_bundle) if spec.ca_bundle else None, log)


def _given(wheels: Path, inp: Path) -> None:
    """The caller's fetched wheels into the input folder (hard links where they can be), and
    the verdict that they are ready."""
    (inp / "wheels").mkdir(mode=0o755)
    os.chmod(inp / "wheels", 0o755)
    for path in sorted(wheels.glob("*.whl")):
        try:
            os.link(path, inp / "wheels" / path.name)
        except OSError:  # another filesystem
            shutil.copyfile(path, inp / "wheels" / path.name)
        os.chmod(inp / "wheels" / path.name, 0o644)
    _verdict(inp, True)


def _verdict(inp: Path, ready: bool) -> None:
    """inp/wheels.done for python.sh: "ready", or "online" (ask the index); readable by the
    build uid before it appears (renamed into place)."""
    (inp / ".wheels.done").write_bytes(b"ready" if ready else b"online")
    os.chmod(inp / ".wheels.done", 0o644)
    os.replace(inp / ".wheels.done", inp / "wheels.done")


class _Unprepared(Exception):
    """The build container found its cache volume not the build uid's alone (mode 0700)."""


def build_user() -> tuple[int, int]:
    """The uid and gid build containers run as: the deployer's, or SANDBOX_UID's for root."""
    uid = os.getuid()
    return (uid, os.getgid()) if uid != 0 else (SANDBOX_UID, SANDBOX_UID)


def copy_ca_bundle(bundle: Path, folder: Path) -> str:
    """A copy of the extra CA bundle the build uid can read (the file may be the deployer's
    alone), in folder; its path."""
    copy = folder / ".pll-extra-ca.pem"
    try:
        shutil.copyfile(bundle, copy)
    except OSError as exc:
        raise BuildError("docker", f"could not read the CA bundle {bundle} ({exc.strerror})",
                         fix="give a ca_bundle this process can read") from None
    os.chmod(copy, 0o644)
    return str(copy)


def cache_volume_name(image: Any, owner: str) -> str:
    """prefix + the image id's first 16 hex digits + "-" + 12 of the owner's sha256."""
    digest = hashlib.sha256(owner.encode()).hexdigest()[:12]
    return f"{CACHE_VOLUME_PREFIX}{image.id.split(':')[-1][:16]}-{digest}"


def cache_volume(client: Any, image: Any, owner: str, user: tuple[int, int], log: Log,
                 checked_by_build: bool = False) -> str:
    """The named volume holding pip's and npm's download caches for owner's builds in this image.

    One per image id: downloads are the same for every image, but wheels pip built from source
    are only right for the image (compiler, glibc) that built them. One per owner: a wheel in
    the cache is installed without a check, so no owner's builds may read or write another's.
    Made once (and checked once per process), owned by the build uid, mode 0700 (_PREPARE).
    Volumes of earlier versions (no owner in the name, mode 1777) are no longer used.
    checked_by_build: an existing volume is left for the build container to check (prelude.sh
    exits with UNPREPARED unless it is the build uid's, mode 0700; the caller then prepares it
    and runs again): a new or wrongly labelled one is prepared here all the same.
    """
    name = cache_volume_name(image, owner)
    with _prepare_lock:  # builds of one process at once: one prepares, the others wait
        # (Another process preparing it at the same moment could empty it under a build that
        # just started; only a new or wrongly owned volume is ever emptied, so it costs a
        # download at worst.)
        volume, made = _get_or_make(client, name, owner)
        if made:
            _made.add(name)
        key = (name, str(volume.attrs.get("CreatedAt", "")), f"{user[0]}:{user[1]}")
        if key in _prepared or (checked_by_build and not made):
            return name
        was = _prepare(client, image, name, user, log)
        _prepared.add(key)
    if made:
        log(f"docker: made package cache volume {name} for {owner!r} (pip and npm downloads "
            "kept between builds)")
    elif was is not None:
        log(f"docker: package cache volume {name} was {was} (owner uid:gid, mode): emptied it "
            f"and gave it to {user[0]}:{user[1]}, mode 0700")
    return name


def volume_generation(name: str, made: bool = False) -> str:
    """A token for the volume of this name as this cache saw it made (a new one each time it is
    made, so packs of what an earlier volume of the name installed are not used): Docker gives a
    volume no id, and its CreatedAt is the mtime of its folder, which pip's writes change."""
    path = cache_dir() / "docker-volumes" / name
    try:
        if not made:
            return path.read_text().strip()
    except FileNotFoundError:
        pass
    return _new_generation(name)


def _new_generation(name: str) -> str:
    token = uuid.uuid4().hex
    write_atomic(cache_dir() / "docker-volumes" / name, token.encode())
    return token


def _get_or_make(client: Any, name: str, owner: str) -> tuple[Any, bool]:
    """The volume and whether it was made now; one without our labels is made again."""
    import docker.errors

    labels = {CACHE_LABEL: CACHE_LABEL_VALUE, OWNER_LABEL: owner}
    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        return client.volumes.create(name, labels=labels), True
    if (volume.attrs.get("Labels") or {}) == labels:
        return volume, False
    # Not ours (`docker run -v` makes a missing volume, unlabelled): the label filter that cleans
    # cache volumes up would never find it.
    try:
        volume.remove(force=True)
    except docker.errors.APIError as exc:
        raise BuildError("docker", f"the package cache volume {name} is not labelled as ours and "
                         f"could not be removed ({exc.explanation or exc})",
                         fix=f"stop the containers using it, then `docker volume rm {name}`"
                         ) from None
    return client.volumes.create(name, labels=labels), True


def _prepare(client: Any, image: Any, name: str, user: tuple[int, int], log: Log) -> str | None:
    """Give the volume to the build uid alone (mode 0700), emptied unless it already was; what
    it was before ("0:0 1777") when it had to be changed."""
    want = f"{user[0]}:{user[1]}"
    end = containers.run(client, image, ["sh", "-c", _PREPARE, "pll-cache", _CACHE, want],
                         lambda line: log("  " + line), user="0:0", network_mode="none",
                         cap_drop=["ALL"], cap_add=["CHOWN", "DAC_OVERRIDE", "FOWNER"],
                         security_opt=["no-new-privileges"], read_only=True,
                         volumes={name: {"bind": _CACHE, "mode": "rw"}})
    if end.code != 0:  # left as it is, builds could not use it, or others could write to it
        raise BuildError("docker", f"could not give the package cache volume {name} to uid "
                         f"{want} (exited with {end.code})", "\n".join(end.tail),
                         "the build image needs sh, stat, find, chown and chmod; pass image= "
                         f"with them, or remove the volume: `docker volume rm {name}`")
    return end.said.removeprefix("was ") if end.said is not None else None


def build_script(spec: LayerSpec) -> str:
    """The shell script a build container runs for this spec (its values: build_environment)."""
    body = "python.sh" if spec.runtime.language == "python" else "node.sh"
    return containers.script("pulumi_lambda_layers.build", "prelude.sh", body)


def build_environment(spec: LayerSpec, user: tuple[int, int] | None = None,
                      wheels: bool = False) -> dict[str, str]:
    """The build container's environment: the script's inputs, the package caches, the proxy;
    with user, the owner and mode the cache volume must have (prelude.sh checks it); wheels:
    the input folder holds the lock's wheels (python.sh installs them without an index)."""
    env = {"HOME": "/tmp", "PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_ROOT_USER_ACTION": "ignore",
           "npm_config_update_notifier": "false", "PIP_CACHE_DIR": f"{_CACHE}/pip",
           "npm_config_cache": f"{_CACHE}/npm",
           "PLL_MACHINE": UNAME_MACHINE[spec.architecture], "PLL_VERSION": spec.runtime.version,
           "PLL_PREFIX": spec.runtime.layer_prefix, "PLL_IN": _IN, "PLL_OUT": _OUT, "PLL_CA": _CA}
    if user is not None:
        env["PLL_CACHE"], env["PLL_CACHE_WANT"] = _CACHE, f"{user[0]}:{user[1]} 700"
    if wheels:
        env["PLL_WHEELS"] = f"{_IN}/wheels"
    for key, value in spec.proxy.items():
        env[key] = env[key.lower()] = value
    return env


def run_container(client: Any, image: Any, script: str, volumes: dict[str, dict[str, str]],
                  spec: LayerSpec, user: tuple[int, int], log: Log, wheels: bool = False) -> None:
    """Run script in image as user, sandboxed, stream its log, raise BuildError with the tail
    when it fails. Only volumes' rw mounts can be written besides /tmp."""

    # volumes mounts the package cache volume at _CACHE (DockerBuilder.build always does).
    end = containers.run(client, image, ["sh", "-c", script], lambda line: log("  " + line),
                         environment=build_environment(spec, user, wheels), volumes=volumes,
                         network_mode=spec.network_mode, working_dir="/tmp",
                         **containers.locked_down(f"{user[0]}:{user[1]}", BUILD_TMPFS))
    if end.code == 0:
        return
    if end.code == UNPREPARED:
        raise _Unprepared()
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

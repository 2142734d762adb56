"""Wheels of a pinned lock fetched here, so the build container's pip installs them without an index."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_version,
    parse_wheel_filename,
)

from pulumi_lambda_layers.build.index import (
    Pin,
    get,
    links,
    option,
    pin,
    pip_index_urls,
    pure_wheel_name,
    with_credentials,
)
from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.log import Sink as Log
from pulumi_lambda_layers.sources.credentials import redact

T = TypeVar("T")
FETCH_JOBS = 8  # packages fetched at once: the index's latency, not this machine, is the limit
# Requirement options that keep pip's choice what it is online: the indexes it asks. Any other
# (--find-links, --no-binary, --pre, ...) leaves the whole install to the container's pip.
_INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--trusted-host")


class _Online(Exception):
    """Why the container's pip should ask the index itself."""


@dataclass(frozen=True)
class Fetched:
    """What fetch_wheels put in its folder."""

    packages: int
    files: int
    size: int
    wheels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file names by package

    def pure(self) -> list[str]:
        """The packages whose one fitting file is a pure-Python wheel (`*-none-any`): what pip
        makes of it is the wheel's files, whatever the image, as uv does here."""
        return sorted(name for name, files in self.wheels.items()
                      if len(files) == 1 and pure_wheel_name(files[0]))


@dataclass(frozen=True)
class _File:
    package: str
    filename: str
    url: str  # with the index's credentials
    sha256: str  # the index's, "" when it gives none
    lock_hashes: frozenset[str]  # the lock's for its release (empty: no hashes)


def fetch_wheels(text: str, python: str, machine: str, folder: Path, env: Mapping[str, str],
                 ca_bundle: str | None, log: Log) -> Fetched | None:
    """Download into folder every wheel of each pinned line of the requirements text that the
    build image's pip could pick (CPython `python` on Linux `machine`: a superset of its tags),
    checked against the index's and the lock's sha256.

    pip in the container then chooses among them (`--no-index --find-links`) as it would among
    the index's files, and checks the lock's hashes itself. None, with the reason logged, when
    the container's pip must ask the index: an option other than the indexes, a line that is not
    pinned to an index version, a release without such a wheel (an sdist to build), one file
    served with different bytes by two indexes, or an index that does not answer here.
    """
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    options = [line for line in lines if line.startswith("-")]
    try:
        others = [flag for flag, _ in map(option, options) if flag not in _INDEX_OPTIONS]
        if others:
            raise _Online(f"the requirements give {others[0]}")
        pins = [_pin(line) for line in lines if line and not line.startswith(("-", "#"))]
        indexes = pip_index_urls(options)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)  # the build uid reads it, mounted read-only

        pool = ThreadPoolExecutor(FETCH_JOBS, thread_name_prefix="pll-fetch")
        try:
            # Every release's page first: the first package without a wheel ends it (pages
            # still being read write nothing), before any download.
            files = [f for found in _all([pool.submit(_wheels, pin, indexes, python, machine,
                                                      env, ca_bundle) for pin in pins])
                     for f in found]
            sizes = _all([pool.submit(_download, file, folder, env, ca_bundle)
                          for file in files], settle=True)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    except (_Online, BuildError) as exc:
        reason = exc.problem if isinstance(exc, BuildError) else str(exc)
        log(f"docker: {redact(reason)}: the container's pip asks the index")
        return None
    kept = [(file, size) for file, size in zip(files, sizes, strict=True) if size is not None]
    wheels: dict[str, tuple[str, ...]] = {pin.name: () for pin in pins}
    for file, _ in kept:
        wheels[file.package] += (file.filename,)
    done = Fetched(len(pins), len(kept), sum(size for _, size in kept), wheels)
    log(f"docker: fetched {done.files} wheels ({done.size / 1e6:.1f} MB) of {done.packages} "
        "packages here (no index asked in the container)")
    return done


def _all(futures: list[Future[T]], settle: bool = False) -> list[T]:
    """The results in order, or the first failure at once (those not started are dropped;
    settle: after the running ones end, as they write files)."""
    wait(futures, return_when=FIRST_EXCEPTION)
    failure = next((exc for f in futures if f.done() and not f.cancelled()
                    and (exc := f.exception()) is not None), None)
    if failure is None:
        return [f.result() for f in futures]
    for f in futures:
        f.cancel()
    if settle:
        wait(futures)
    raise failure


def _pin(line: str) -> Pin:
    found = pin(line)
    if found is None or found.marker:
        raise _Online(f"{line.split(' --hash')[0].strip()!r} is not pinned to one version of an "
                      "index")
    return found


def _download(file: _File, folder: Path, env: Mapping[str, str], ca_bundle: str | None
              ) -> int | None:
    """The size of the wheel downloaded into folder; None when it is none of the lock's files
    (its index gave no sha256 to tell before: pip would refuse it)."""
    data = get(file.url, env, ca_bundle, stage="wheel fetch", use_netrc=False) or b""
    digest = hashlib.sha256(data).hexdigest()
    if file.sha256 and digest != file.sha256:
        raise _Online(f"{file.filename} has sha256 {digest} but its index lists {file.sha256}")
    if file.lock_hashes and digest not in file.lock_hashes:
        return None
    path = folder / file.filename
    path.write_bytes(data)
    os.chmod(path, 0o644)
    return len(data)


def _wheels(pin: Pin, indexes: list[str], python: str, machine: str, env: Mapping[str, str],
            ca_bundle: str | None) -> list[_File]:
    """The release's wheels on all the indexes (pip merges them) that pip could pick."""
    def fits(filename: str) -> bool:
        return wheel_fits(filename, pin.name, pin.version, python, machine)

    found: dict[str, _File] = {}
    unlocked = 0  # fitting wheels whose sha256 is none of the lock's
    for index in indexes:
        page = get(f"{index}/{pin.name}/", env, ca_bundle, missing_ok=True, stage="wheel fetch",
                   use_netrc=False)
        if page is None:
            continue
        for link in links(page.decode("utf-8", "replace"), f"{index}/{pin.name}/", keep=fits):
            if not _python_may_fit(link.requires_python, python):
                continue
            digest = link.fragment.get("sha256", "")
            if pin.hashes and digest and digest not in pin.hashes:
                unlocked += 1
                continue
            file = _File(pin.name, link.filename, with_credentials(link.url, index), digest,
                         pin.hashes)
            seen = found.setdefault(file.filename, file)
            if seen is not file and (not digest or seen.sha256 != digest):
                raise _Online(f"{file.filename} is on two indexes, not known to be the same "
                              "bytes (which one pip takes is its choice)")
    target = f"CPython {python} on Linux {machine}"
    if not found and unlocked:
        raise _Online(f"none of the {unlocked} wheels of {pin.name} {pin.version} for {target} "
                      "has one of the lock's sha256 hashes")
    if not found:
        raise _Online(f"{pin.name} {pin.version} has no wheel for {target} (its sdist is built "
                      "in the container)")
    return list(found.values())


def wheel_fits(filename: str, name: str, version: str, python: str, machine: str) -> bool:
    """Whether filename is a wheel of name==version that pip in a glibc Linux image of CPython
    python (X.Y) on machine might install: any tag with a fitting interpreter, ABI and platform
    (a superset of the image's tags: every manylinux glibc version, all older abi3)."""
    try:
        wheel_name, wheel_version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    if wheel_name != name or canonicalize_version(wheel_version) != canonicalize_version(version):
        return False
    return any(_tag_fits(tag, python, machine) for tag in tags)


def _tag_fits(tag: Tag, python: str, machine: str) -> bool:
    major, minor = (int(part) for part in python.split(".")[:2])
    platform_ok = tag.platform == "any" or re.fullmatch(
        rf"(?:manylinux\d*(?:_\d+_\d+)?|linux)_{re.escape(machine)}", tag.platform) is not None
    cp = re.fullmatch(rf"cp{major}(\d+)", tag.interpreter)
    py = re.fullmatch(rf"py{major}(\d*)", tag.interpreter)
    if cp and int(cp.group(1)) == minor:
        abi_ok = tag.abi in (f"cp{major}{minor}", "abi3", "none")
    elif cp and int(cp.group(1)) < minor:
        abi_ok = tag.abi == "abi3"
    elif py:
        abi_ok = tag.abi == "none" and (not py.group(1) or int(py.group(1)) <= minor)
    else:
        abi_ok = False
    return platform_ok and abi_ok


def _python_may_fit(requires_python: str, python: str) -> bool:
    """False only when no X.Y.z can satisfy the page's data-requires-python (pip checks the
    exact version itself)."""
    if not requires_python:
        return True
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True
    return any(spec.contains(f"{python}.{micro}") for micro in (0, 99))

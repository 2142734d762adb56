"""Local builder: target-platform wheels with uv (pure-Python sdists built here), npm; no container."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from pulumi_lambda_layers.errors import BuildError, NoCompatibleWheel
from pulumi_lambda_layers.log import Sink as Log
from pulumi_lambda_layers.runtimes import NPM_CPU
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.tools import npm_command, uv_command

# uv's wording when a pinned package has no wheel for the target (and sdists are refused).
_NO_WHEEL_MARKERS = ("no wheels with a matching", "has no usable wheels", "only-binary",
                     "no-binary", "no matching distribution", "wheels are available")


class LocalBuilder:
    """Installs on this machine for the Lambda target; never compiles native code (prebuilt
    wheels, and py3-none-any wheels built from pure-Python sdists)."""

    name = "local"

    def build(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None:
        if spec.runtime.language == "python":
            self._python(spec, fp, root, log)
        else:
            self._node(spec, fp, root, log)

    def _python(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None:
        target = root / spec.runtime.layer_prefix
        platform = spec.runtime.manylinux_platform(spec.architecture)
        text = fp.install_files["requirements.txt"]
        built: set[str] = set()
        while True:
            proc = self._install(spec, text, target, platform, log)
            if proc.returncode == 0:
                return
            lowered = proc.stderr.lower()
            if not any(marker in lowered for marker in _NO_WHEEL_MARKERS):
                raise BuildError("uv pip install", f"exited with {proc.returncode}",
                                 proc.stderr[-4000:])
            # uv names one package without a wheel per attempt: the pure-Python sdists among
            # them are built into wheels (sdist.py), which the next attempt installs.
            names = [n for n in _no_wheel_names(proc.stderr) if n not in built]
            if not names:
                raise NoCompatibleWheel(_no_wheel_reason(proc.stderr, platform,
                                                         spec.runtime.version))
            text = _with_built_wheels(spec, text, names, log)
            built.update(names)

    def wheel_less(self, spec: LayerSpec, text: str, log: Log) -> list[str]:
        """The packages of a requirements text this builder cannot install (no wheel for the
        target, and a native sdist), all at once. uv names one per failed run, so it runs again
        without it, as dry runs, offline while the index pages are in uv's cache (an install that
        failed just fetched them; this registry is slow to answer for them again): nothing is
        downloaded. Pure-Python sdists among them are built into wheels (cached by sdist.py, so
        the install that follows gets them again for free)."""
        platform = spec.runtime.manylinux_platform(spec.architecture)
        pins = _pin_lines(text)
        found: list[str] = []
        offline = True
        with tempfile.TemporaryDirectory(prefix="pll-dry-") as tmp:
            while pins:
                proc = self._install(spec, text, Path(tmp), platform, log, dry_run=True,
                                     offline=offline)
                names = [n for n in _no_wheel_names(proc.stderr) if n in pins]
                if proc.returncode == 0:
                    return found
                if not names:
                    if offline:  # a page not in the cache: ask the index
                        offline = False
                        continue
                    return found  # any other failure is for the install itself to report
                for name in names:
                    try:
                        text = _with_built_wheels(spec, text, [name], log)
                    except NoCompatibleWheel:
                        found.append(name)
                        text = "".join(line + "\n" for line in text.splitlines()
                                       if line.strip() != pins[name])
                    del pins[name]
        return found

    def _install(self, spec: LayerSpec, text: str, target: Path, platform: str,
                 log: Log, dry_run: bool = False, offline: bool = False
                 ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="pll-local-") as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text(text)
            cmd = [*uv_command(), "pip", "install", "--no-deps", "--only-binary", ":all:",
                   "--target", str(target), "--python-platform", platform,
                   "--python-version", spec.runtime.version, "--link-mode", "hardlink",
                   *(["--dry-run"] if dry_run else []), *(["--offline"] if offline else []),
                   "-r", str(reqs)]
            flags = "".join(f" --{f}" for f, on in (("dry-run", dry_run), ("offline", offline)) if on)
            log(f"local: uv pip install{flags} {len(_pin_lines(text))} packages for {platform} "
                f"py{spec.runtime.version}")
            return subprocess.run(cmd, capture_output=True, text=True, env=_proxy_env(spec))

    def _node(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None:
        check_install_scripts(spec, fp.install_files["package-lock.json"], log)
        project = root / "nodejs"
        project.mkdir(parents=True)
        for name, text in fp.install_files.items():
            (project / name).write_text(text)
        cmd = [*npm_command(), "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund",
               "--os=linux", f"--cpu={NPM_CPU[spec.architecture]}", "--libc=glibc"]
        log(f"local: npm ci for linux/{NPM_CPU[spec.architecture]}/glibc")
        proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True,
                              env=_proxy_env(spec))
        for name in fp.install_files:
            (project / name).unlink(missing_ok=True)
        if proc.returncode != 0:
            raise BuildError("npm ci", f"exited with {proc.returncode}",
                             (proc.stdout + proc.stderr)[-4000:])


def check_install_scripts(spec: LayerSpec, lock_text: str, log: Log) -> None:
    """Refuse (auto then builds in Docker) or, for builder='local', say we skip install scripts."""
    scripted = _packages_with_install_scripts(lock_text)
    if scripted and spec.builder != "local":
        raise NoCompatibleWheel(f"{', '.join(scripted)} run install scripts (native builds), "
                                "which only a Lambda-compatible container runs for the target")
    if scripted:
        log(f"local: not running the install scripts of {', '.join(scripted)} "
            "(they would build for this machine); packages that ship prebuilt binaries, such "
            "as sharp >= 0.33, work without them")


def _packages_with_install_scripts(lock_text: str) -> list[str]:
    import json

    packages = json.loads(lock_text).get("packages", {})
    return sorted(path.rsplit("node_modules/", 1)[-1] for path, meta in packages.items()
                  if path and meta.get("hasInstallScript") and not meta.get("dev"))


def _proxy_env(spec: LayerSpec) -> dict[str, str]:
    import os

    env = dict(os.environ)
    for key, value in spec.proxy.items():
        env[key] = env[key.lower()] = value
    if spec.ca_bundle:
        env["SSL_CERT_FILE"] = env["NODE_EXTRA_CA_CERTS"] = str(spec.ca_bundle)
    return env


def _pin_lines(text: str) -> dict[str, str]:
    """{package name: its line} of a requirements text (option lines left out)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return {canonicalize_name(Requirement(line.split(" --hash")[0]).name): line
            for line in (raw.strip() for raw in text.splitlines())
            if line and not line.startswith("-")}


def _with_built_wheels(spec: LayerSpec, text: str, names: list[str], log: Log) -> str:
    """text with the lines of names replaced by the py3-none-any wheels built from their sdists
    (NoCompatibleWheel, naming the package, for a native one)."""
    from pulumi_lambda_layers.build import sdist

    lines = text.splitlines()
    options = [line.strip() for line in lines if line.strip().startswith("-")]
    pins = _pin_lines(text)
    env = _proxy_env(spec)
    ca = str(spec.ca_bundle) if spec.ca_bundle else None
    for name in names:
        if name not in pins:
            raise NoCompatibleWheel(f"no prebuilt wheel of {name} for "
                                    f"{spec.runtime.manylinux_platform(spec.architecture)}")
        wheel = sdist.pure_wheel(pins[name], options, env, ca, log)
        # From a --find-links folder, not `name @ file://...`: uv marks a wheel installed by
        # path with a uv_cache.json holding the time, which would make every layer's bytes
        # differ. The lock's hashes are the sdist's (checked when it was fetched); the line
        # names the built wheel's instead.
        pinned = (f"{pins[name].split(' --hash')[0]} "
                  f"--hash=sha256:{sdist.file_sha256(wheel)}")
        lines = [f"--find-links {wheel.parent}",
                 *(pinned if line.strip() == pins[name] else line for line in lines)]
    return "\n".join(lines) + "\n"


def _no_wheel_names(stderr: str) -> list[str]:
    """The packages uv says have no usable wheel (canonical names, in its order)."""
    import re

    from packaging.utils import canonicalize_name

    names: list[str] = []
    for found in re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==\S+)? has no usable wheels", stderr):
        if canonicalize_name(found) not in names:
            names.append(canonicalize_name(found))
    return names


def _no_wheel_reason(stderr: str, platform: str, version: str) -> str:
    import re

    names = sorted(set(re.findall(r"(\S+) has no usable wheels", stderr)))
    what = ", ".join(names) if names else "some package"
    return f"no prebuilt wheel of {what} for {platform} / Python {version}"

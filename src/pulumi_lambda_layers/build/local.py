"""Local builder: target-platform binary wheels with uv, npm with --os/--cpu/--libc; no container."""

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
    """Installs on this machine for the Lambda target; never compiles (binary artifacts only)."""

    name = "local"

    def build(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None:
        if spec.runtime.language == "python":
            self._python(spec, fp, root, log)
        else:
            self._node(spec, fp, root, log)

    def _python(self, spec: LayerSpec, fp: Fingerprint, root: Path, log: Log) -> None:
        target = root / spec.runtime.layer_prefix
        platform = spec.runtime.manylinux_platform(spec.architecture)
        with tempfile.TemporaryDirectory(prefix="pll-local-") as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text(fp.install_files["requirements.txt"])
            cmd = [*uv_command(), "pip", "install", "--no-deps", "--only-binary", ":all:",
                   "--target", str(target), "--python-platform", platform,
                   "--python-version", spec.runtime.version, "--link-mode", "hardlink",
                   "-r", str(reqs)]
            log(f"local: uv pip install {len(fp.packages)} packages for {platform} "
                f"py{spec.runtime.version}")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=_proxy_env(spec))
        if proc.returncode != 0:
            lowered = proc.stderr.lower()
            if any(marker in lowered for marker in _NO_WHEEL_MARKERS):
                raise NoCompatibleWheel(_no_wheel_reason(proc.stderr, platform, spec.runtime.version))
            raise BuildError("uv pip install", f"exited with {proc.returncode}",
                             proc.stderr[-4000:])

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


def _no_wheel_reason(stderr: str, platform: str, version: str) -> str:
    import re

    names = sorted(set(re.findall(r"(\S+) has no usable wheels", stderr)))
    what = ", ".join(names) if names else "some package"
    return f"no prebuilt wheel of {what} for {platform} / Python {version}"

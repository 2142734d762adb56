"""Run the real Pulumi CLI (built by scripts/pulumi-cli.sh) against a project dir with an isolated local backend."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOLS = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python")
# Enough to see the engine's diagnostics without flooding the assertion message.
TAIL_CHARS = 4000


def pulumi_bin_dir() -> Path:
    """The cached bin dir for the installed pulumi SDK's version, or a RuntimeError saying how to build it."""
    version = importlib.metadata.version("pulumi")
    cache = Path(os.environ.get("PLL_DEV_CACHE", Path.home() / ".cache" / "pulumi-lambda-layers-dev"))
    bin_dir = cache / "pulumi" / f"v{version}" / "bin"
    missing = [t for t in TOOLS if not os.access(bin_dir / t, os.X_OK)]
    if missing:
        raise RuntimeError(
            f"Pulumi CLI not built: run `make pulumi` (scripts/pulumi-cli.sh) to build pulumi {version} "
            f"into {bin_dir}; missing there: {', '.join(missing)}"
        )
    return bin_dir


def _tail(text: str) -> str:
    return text if len(text) <= TAIL_CHARS else "...\n" + text[-TAIL_CHARS:]


class PulumiCLI:
    """The CLI bound to one project dir, with its own PULUMI_HOME and file:// state backend under `home`."""

    def __init__(self, project_dir: Path, home: Path, extra_env: Mapping[str, str] | None = None,
                 timeout: float = 600.0) -> None:
        self.project_dir = project_dir
        self.timeout = timeout
        self.bin_dir = pulumi_bin_dir()
        state = home / "state"
        state.mkdir(parents=True, exist_ok=True)
        venv_bin = Path(sys.executable).parent
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env.update({
            # Our bin dir first so no stray pulumi/plugin on the host PATH is picked up.
            "PATH": os.pathsep.join([str(self.bin_dir), str(venv_bin), env.get("PATH", "")]),
            "PULUMI_HOME": str(home / "pulumi-home"),
            "PULUMI_BACKEND_URL": state.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": "",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_PYTHON_CMD": sys.executable,
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "NO_COLOR": "1",
            "CI": "true",
        })
        env.update(extra_env or {})
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `pulumi ARGS` non-interactively; on failure raise AssertionError with the output tails."""
        # Global flags first so ARGS may end with `-- value`.
        cmd: list[str] = [str(self.bin_dir / "pulumi"), "--non-interactive", "--color", "never", *args]
        try:
            proc = subprocess.run(cmd, cwd=self.project_dir, env=self.env, text=True, capture_output=True,
                                  stdin=subprocess.DEVNULL, timeout=self.timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            raise AssertionError(f"`pulumi {' '.join(args)}` timed out after {self.timeout}s in "
                                 f"{self.project_dir}\n--- stdout ---\n{_tail(out)}") from e
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`pulumi {' '.join(args)}` exited {proc.returncode} in {self.project_dir}\n"
                f"--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}"
            )
        return proc

    def stack_init(self, name: str) -> subprocess.CompletedProcess[str]:
        return self.run("stack", "init", name)

    def config_set(self, key: str, value: str, secret: bool = False) -> subprocess.CompletedProcess[str]:
        # `--` so a value starting with '-' is not read as a flag.
        return self.run("config", "set", *(["--secret"] if secret else []), key, "--", value)

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", *args)

    def preview(self, diff: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run("preview", *(["--diff"] if diff else []))

    def preview_changes(self) -> dict[str, int]:
        """Step counts by op (e.g. {"same": 2}) from `preview --json`; asserting on ops beats parsing text."""
        out = self.run("preview", "--json").stdout
        summary: dict[str, int] = json.loads(out).get("changeSummary", {})
        return summary

    def destroy(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--yes", "--skip-preview", *args)

    def outputs(self, show_secrets: bool = False) -> dict[str, Any]:
        flags = ["--show-secrets"] if show_secrets else []
        result: dict[str, Any] = json.loads(self.run("stack", "output", "--json", *flags).stdout)
        return result

    def resources(self) -> list[dict[str, Any]]:
        """The stack's resources as recorded in state (via `stack export`)."""
        deployment = json.loads(self.run("stack", "export").stdout).get("deployment", {})
        found: list[dict[str, Any]] = deployment.get("resources") or []
        return found


def write_python_project(project_dir: Path, name: str, main_py: str, description: str = "e2e test program") -> Path:
    """Write Pulumi.yaml + __main__.py; the language host and dynamic providers use this test run's venv."""
    project_dir.mkdir(parents=True, exist_ok=True)
    # `virtualenv` makes the language host run the program with this venv's python and is handed to
    # providers as PULUMI_RUNTIME_VIRTUALENV (the dynamic-provider launcher honours it); `pip` avoids uv/poetry.
    (project_dir / "Pulumi.yaml").write_text(
        f"name: {name}\n"
        f"description: {json.dumps(description)}\n"
        "runtime:\n"
        "  name: python\n"
        "  options:\n"
        "    toolchain: pip\n"
        f"    virtualenv: {json.dumps(sys.prefix)}\n"
    )
    (project_dir / "__main__.py").write_text(main_py)
    return project_dir


@dataclass
class PulumiProject:
    """A project dir plus a CLI bound to it with its own PULUMI_HOME and file:// backend."""

    dir: Path
    cli: PulumiCLI

    def write(self, name: str, main_py: str) -> None:
        write_python_project(self.dir, name, main_py)

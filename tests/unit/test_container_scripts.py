"""The scripts the build and smoke containers run, run here: syntax, exit codes, records."""

from __future__ import annotations

import json
import os
import platform
import py_compile
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from pulumi_lambda_layers import containers
from pulumi_lambda_layers.containers import Refusal
from pulumi_lambda_layers.smoke.runner import MARK

FOLDERS = {"pulumi_lambda_layers.build": ["prelude.sh", "python.sh", "node.sh"],
           "pulumi_lambda_layers.smoke": ["prelude.sh", "pll_smoke_runner.py",
                                          "pll-smoke-runner.js"]}
SCRIPTS = [(package, name) for package, names in FOLDERS.items() for name in names]
MACHINE = platform.machine()


def _path(package: str, name: str) -> Path:
    return Path(str(resources.files(package).joinpath("scripts").joinpath(name)))


def test_every_script_in_the_folders_is_listed_here() -> None:
    for package, names in FOLDERS.items():
        shipped = sorted(p.name for p in _path(package, ".").iterdir() if p.is_file())
        assert shipped == sorted(names), package


@pytest.mark.parametrize(("package", "name"), SCRIPTS)
def test_script_parses(package: str, name: str, tmp_path: Path) -> None:
    path = _path(package, name)
    if name.endswith(".sh"):
        subprocess.run(["sh", "-n", str(path)], check=True)
    elif name.endswith(".js"):
        subprocess.run(["node", "--check", str(path)], check=True)
    else:  # compiled aside, so no __pycache__ lands in the package
        py_compile.compile(str(path), cfile=str(tmp_path / "x.pyc"), doraise=True)


def _sh(script: str, *args: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script, "pll-test", *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **(env or {})}, timeout=60)


def test_build_prelude_refuses_another_architecture() -> None:
    script = containers.script("pulumi_lambda_layers.build", "prelude.sh")
    wrong = _sh(script, env={"PLL_MACHINE": "pdp11", "PLL_CA": "/nonexistent"})
    assert wrong.returncode == Refusal.ARCHITECTURE
    assert wrong.stderr == f"pll: the image runs {MACHINE} code but the layer is for pdp11\n"
    assert _sh(script, env={"PLL_MACHINE": MACHINE, "PLL_CA": "/nonexistent"}).returncode == 0


def test_build_prelude_adds_the_extra_ca_to_the_trust_store(tmp_path: Path) -> None:
    extra = tmp_path / "extra.pem"
    extra.write_text("EXTRA\n")
    script = containers.script("pulumi_lambda_layers.build", "prelude.sh") + \
        'echo "$PIP_CERT $NODE_EXTRA_CA_CERTS"; tail -n 1 "$PIP_CERT"\n'
    done = _sh(script, env={"PLL_MACHINE": MACHINE, "PLL_CA": str(extra)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"/tmp/pll-ca.pem {extra}", "EXTRA"]


@pytest.mark.parametrize(("body", "language"), [("python.sh", "Python"), ("node.sh", "Node.js")])
def test_build_scripts_refuse_another_runtime_version(body: str, language: str) -> None:
    script = containers.script("pulumi_lambda_layers.build", "prelude.sh", body)
    done = _sh(script, env={"PLL_MACHINE": MACHINE, "PLL_CA": "/nonexistent", "PLL_VERSION": "0",
                            "PLL_IN": "/nonexistent", "PLL_OUT": "/nonexistent", "PLL_PREFIX": "x"})
    assert done.returncode == Refusal.VERSION, done.stderr
    assert done.stderr.startswith(f"pll: the image has {language} ")
    assert done.stderr.endswith(f" but the runtime is {language} 0\n")


def test_smoke_prelude_refuses_another_architecture_or_no_interpreter() -> None:
    script = containers.script("pulumi_lambda_layers.smoke", "prelude.sh")
    wrong = _sh(script, "pdp11", "sh", "/dev/null", "/dev/null")
    assert wrong.returncode == Refusal.ARCHITECTURE
    assert wrong.stderr.startswith(f"pll: the image runs {MACHINE} code")
    missing = _sh(script, MACHINE, "pll-no-such-interpreter", "/dev/null", "/dev/null")
    assert missing.returncode == Refusal.INTERPRETER
    assert missing.stderr.startswith("pll: the image has no pll-no-such-interpreter on PATH")


def _smoke(interpreter: str, runner: str, tmp_path: Path, version: str,
           imports: list[str]) -> tuple[int, list[dict[str, object]], str]:
    """Run a smoke runner through the smoke prelude, as the container does (minus Docker)."""
    config = tmp_path / "smoke.json"
    config.write_text(json.dumps({"version": version, "imports": imports, "handler": None,
                                  "event": {}, "timeout_s": 60, "request_id": "r",
                                  "function_arn": "arn"}))
    script = containers.script("pulumi_lambda_layers.smoke", "prelude.sh")
    done = _sh(script, MACHINE, interpreter, str(_path("pulumi_lambda_layers.smoke", runner)),
               str(config))
    records = [json.loads(line[len(MARK):]) for line in done.stdout.splitlines()
               if line.startswith(MARK)]
    return done.returncode, records, done.stderr


@pytest.mark.parametrize(("interpreter", "runner", "version", "imports"), [
    (sys.executable, "pll_smoke_runner.py", "{}.{}".format(*sys.version_info[:2]),
     ["json", "nope_x"]),
    ("node", "pll-smoke-runner.js", None, ["fs", "nope-x"]),
])
def test_smoke_runners_report_each_import(interpreter: str, runner: str, version: str | None,
                                          imports: list[str], tmp_path: Path) -> None:
    if version is None:
        version = subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    code, records, stderr = _smoke(interpreter, runner, tmp_path, version, imports)
    assert code == 0, stderr
    assert [(r["kind"], r.get("name"), r.get("ok")) for r in records] == [
        ("env", None, None), ("begin", imports[0], None), ("import", imports[0], True),
        ("begin", imports[1], None), ("import", imports[1], False), ("done", None, None)]
    assert "nope" in str(records[4]["error"])


@pytest.mark.parametrize(("interpreter", "runner", "language"), [
    (sys.executable, "pll_smoke_runner.py", "Python"), ("node", "pll-smoke-runner.js", "Node.js")])
def test_smoke_runners_refuse_another_runtime_version(interpreter: str, runner: str, language: str,
                                                      tmp_path: Path) -> None:
    code, records, stderr = _smoke(interpreter, runner, tmp_path, "0", [])
    assert (code, records) == (Refusal.VERSION, [])
    assert stderr.startswith(f"pll: the image has {language} ") and stderr.endswith(" 0\n")

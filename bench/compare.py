"""One report: this project (cold, warm, unchanged, one-package bump, no-change hash) against peers."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_speed import HOST_CA_BUNDLE, LOCAL_IMAGE, MB, zip_dir  # noqa: E402

# The workload, pinned so every method installs the same files.
WORKLOAD = ("annotated-types==0.7.0\ncertifi==2024.8.30\ncharset-normalizer==3.3.2\nidna==3.10\n"
            "numpy==1.26.4\npandas==2.2.3\npydantic==2.9.2\npydantic-core==2.23.4\n"
            "python-dateutil==2.9.0.post0\npytz==2024.2\nrequests==2.32.3\nsix==1.16.0\n"
            "typing-extensions==4.12.2\ntzdata==2024.2\nurllib3==2.2.2\n")
BUMP = ("urllib3==2.2.2", "urllib3==2.2.3")
BENCH_VENV = Path(os.environ.get("PLL_DEV_CACHE", Path.home() / ".cache/pulumi-lambda-layers-dev")) \
    / "bench-venv"
PROJECT = "this project (local builder)"
SCENARIOS = ("cold", "warm", "unchanged", "bump")
RUNTIME, PIP_PLATFORM, UV_PLATFORM = "python3.11", "manylinux2014_x86_64", "x86_64-manylinux_2_17"


@dataclass
class Run:
    """What one timed command gave: seconds, peak RSS of the process tree's biggest child, zip size."""

    seconds: float
    rss_mb: float
    zip_mb: float | None


@dataclass
class Result:
    """Samples per scenario for one method; a reason when a scenario cannot run here."""

    samples: dict[str, list[Run]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


class Peer:
    """A way to build the layer. Each scenario gets a fresh work dir; caches live in `state`."""

    name = ""
    note = ""

    def missing(self) -> str | None:
        return None

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        raise NotImplementedError


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """Run cmd; (seconds, peak RSS in MB of the largest process it waited for). Raises on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = out.decode(errors="replace").strip().splitlines()[-12:]
        raise RuntimeError(f"{Path(cmd[0]).name} exited with {proc.returncode}: "
                           + "\n  ".join(tail or ["(no output)"]))
    return seconds, usage.ru_maxrss / 1024


def requirements(spec_dir: Path, scenario: str) -> Path:
    return spec_dir / ("bumped.txt" if scenario == "bump" else "requirements.txt")


class ProjectPeer(Peer):
    """`lambda-layers build` as a user runs it (a new process each time: start-up is counted)."""

    name = PROJECT

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        env = {"UV_CACHE_DIR": str(state / "uv"), "PLL_CACHE_DIR": str(state / "pll")}
        if scenario == "warm":  # download and pack caches kept, the finished zip forgotten
            shutil.rmtree(state / "pll" / "zips", ignore_errors=True)
        out = work / "layer.zip"
        seconds, rss = timed([str(Path(sys.executable).parent / "lambda-layers"), "build",
                              "--runtime", RUNTIME, "--builder", "local", "--locked", "--quiet",
                              str(requirements(spec_dir, scenario)), "-o", str(out)], env)
        return Run(seconds, rss, out.stat().st_size / MB)

    def fingerprint_ms(self, spec_dir: Path, repeat: int) -> tuple[float, float]:
        """(in-process ms, `lambda-layers hash` end to end ms) of the locked spec, unchanged."""
        from pulumi_lambda_layers.fingerprint import fingerprint
        from pulumi_lambda_layers.spec import make_spec

        spec = make_spec(runtime=RUNTIME, lock=str(spec_dir / "requirements.txt"))
        inner, outer = [], []
        for _ in range(max(repeat, 5)):
            start = time.perf_counter()
            fingerprint(spec)
            inner.append((time.perf_counter() - start) * 1000)
            outer.append(timed([str(Path(sys.executable).parent / "lambda-layers"), "hash",
                                "--runtime", RUNTIME, "--locked",
                                str(spec_dir / "requirements.txt")])[0] * 1000)
        return statistics.median(inner), statistics.median(outer)


class PipZip(Peer):
    name = "pip install -t + zip"
    note = "pip byte-compiles by default; its .pyc files go into the zip"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "unchanged":
            raise Unavailable("has no cache of finished zips: the same as warm")
        site = work / "layer" / "python"
        seconds, rss = timed([sys.executable, "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", "-r",
                              str(requirements(spec_dir, scenario)), "-t", str(site),
                              "--platform", PIP_PLATFORM, "--only-binary=:all:",
                              "--python-version", "3.11"], {"PIP_CACHE_DIR": str(state / "pip")})
        start = time.perf_counter()
        size = zip_dir(work / "layer", work / "layer.zip")
        return Run(seconds + time.perf_counter() - start, rss, size / MB)


class UvZip(Peer):
    name = "uv pip install --target + zip"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "unchanged":
            raise Unavailable("has no cache of finished zips: the same as warm")
        from uv import find_uv_bin

        site = work / "layer" / "python"
        seconds, rss = timed([find_uv_bin(), "pip", "install", "-q", "-r",
                              str(requirements(spec_dir, scenario)), "--target", str(site),
                              "--python-platform", UV_PLATFORM, "--python-version", "3.11"],
                             {"UV_CACHE_DIR": str(state / "uv")})
        start = time.perf_counter()
        size = zip_dir(work / "layer", work / "layer.zip")
        return Run(seconds + time.perf_counter() - start, rss, size / MB)


class Unavailable(Exception):
    """This scenario does not exist for this method (reported, not timed)."""


class Sam(Peer):
    name = "sam build (+ zip)"
    note = "`sam build` (warm: again; unchanged/bump: `--cached`), then a zip of the layer folder"
    TEMPLATE = ("AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
                "Resources:\n  Deps:\n    Type: AWS::Serverless::LayerVersion\n    Properties:\n"
                "      ContentUri: deps/\n      CompatibleRuntimes: [python3.11]\n"
                "    Metadata:\n      BuildMethod: python3.11\n      BuildArchitecture: x86_64\n")

    def missing(self) -> str | None:
        return None if (BENCH_VENV / "bin/sam").exists() else \
            f"aws-sam-cli is not installed in {BENCH_VENV} (run with --setup)"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        project = state / "sam"
        (project / "deps").mkdir(parents=True, exist_ok=True)
        (project / "template.yaml").write_text(self.TEMPLATE)
        shutil.copyfile(requirements(spec_dir, scenario), project / "deps/requirements.txt")
        cmd = [str(BENCH_VENV / "bin/sam"), "build", "--template", "template.yaml"]
        if scenario in ("unchanged", "bump"):
            cmd.append("--cached")
        seconds, rss = timed(cmd, {"SAM_CLI_TELEMETRY": "0", "PIP_CACHE_DIR": str(state / "pip")},
                             cwd=project)
        start = time.perf_counter()
        size = zip_dir(project / ".aws-sam/build/Deps", work / "layer.zip")
        return Run(seconds + time.perf_counter() - start, rss, size / MB)


class Chalice(Peer):
    name = "chalice package"
    note = ("`chalice package` of an empty app with the requirements: a function zip, not a "
            "layer; it reuses its cached zip when the requirements did not change")

    def missing(self) -> str | None:
        return None if (BENCH_VENV / "bin/chalice").exists() else \
            f"chalice is not installed in {BENCH_VENV} (run with --setup)"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        project = state / "chalice"
        (project / ".chalice").mkdir(parents=True, exist_ok=True)
        (project / "app.py").write_text("from chalice import Chalice\napp = Chalice(app_name="
                                        "'bench')\n\n@app.lambda_function()\ndef handler(e, c):\n"
                                        "    return {}\n")
        (project / ".chalice/config.json").write_text(json.dumps(
            {"version": "2.0", "app_name": "bench", "stages": {"dev": {}}}))
        shutil.copyfile(requirements(spec_dir, scenario), project / "requirements.txt")
        if scenario == "warm":  # download cache kept, the finished zip forgotten
            shutil.rmtree(project / ".chalice/deployments", ignore_errors=True)
        out = work / "out"
        seconds, rss = timed([str(BENCH_VENV / "bin/chalice"), "package", str(out)],
                             {"PIP_CACHE_DIR": str(state / "pip"),
                              # it asks for a region even to package; nothing is deployed
                              "AWS_DEFAULT_REGION": "us-east-1"}, cwd=project)
        return Run(seconds, rss, (out / "deployment.zip").stat().st_size / MB)


class PipInContainer(Peer):
    name = "pip in a container (+ zip)"
    note = "pip in the local python3.11 build image, a new container each time (no pip cache)"

    def missing(self) -> str | None:
        image = LOCAL_IMAGE.format(runtime=RUNTIME, arch="x86_64")
        if shutil.which("docker") is None:
            return "docker is not on PATH"
        proc = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
        return None if proc.returncode == 0 else f"image {image} is missing (`make images`)"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "unchanged":
            raise Unavailable("has no cache of finished zips: the same as warm")
        image = LOCAL_IMAGE.format(runtime=RUNTIME, arch="x86_64")
        (work / "layer").mkdir()
        cmd = ["docker", "run", "--rm", "--network", "host",
               "-v", f"{requirements(spec_dir, scenario)}:/req.txt:ro",
               "-v", f"{work / 'layer'}:/out", "-v", f"{HOST_CA_BUNDLE}:/ca.pem:ro",
               "-e", "PIP_CERT=/ca.pem", "-e", "SSL_CERT_FILE=/ca.pem", image,
               "sh", "-c", "python3 -m pip install -q -r /req.txt -t /out/python "
               "&& chmod -R a+rwX /out"]
        seconds, rss = timed(cmd)
        start = time.perf_counter()
        size = zip_dir(work / "layer", work / "layer.zip")
        return Run(seconds + time.perf_counter() - start, float("nan"), size / MB)


PEERS: list[Callable[[], Peer]] = [ProjectPeer, UvZip, PipZip, Sam, Chalice, PipInContainer]


def run_all(peers: list[Peer], spec_dir: Path, scratch: Path, repeat: int,
            progress: Callable[[str], None]) -> dict[str, Result]:
    """Per repetition and method: cold (fresh caches), warm, unchanged, then bump."""
    results = {p.name: Result() for p in peers}
    for p in peers:
        reason = p.missing()
        if reason:
            results[p.name].unavailable = dict.fromkeys(SCENARIOS, reason)
            progress(f"{p.name}: not run: {reason}")
    for rep in range(1, repeat + 1):
        for p in peers:
            res = results[p.name]
            if len(res.unavailable) == len(SCENARIOS):
                continue
            state = Path(tempfile.mkdtemp(prefix="state-", dir=scratch))
            try:
                for scenario in SCENARIOS:
                    if scenario in res.unavailable:
                        continue
                    work = Path(tempfile.mkdtemp(prefix="work-", dir=scratch))
                    try:
                        run = p.run(scenario, spec_dir, state, work)
                    except Unavailable as exc:
                        res.unavailable[scenario] = str(exc)
                        continue
                    except (RuntimeError, OSError) as exc:
                        res.unavailable[scenario] = f"failed: {str(exc).splitlines()[0]}"
                        progress(f"[{rep}/{repeat}] {p.name} {scenario}: FAILED\n  {exc}")
                        continue
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    res.samples.setdefault(scenario, []).append(run)
                    progress(f"[{rep}/{repeat}] {p.name} {scenario}: {run.seconds:.2f} s, "
                             f"{run.zip_mb or 0:.1f} MB, peak RSS {run.rss_mb:.0f} MB")
            finally:
                shutil.rmtree(state, ignore_errors=True)
    return results


def med(runs: list[Run], attr: str) -> float | None:
    values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
    return statistics.median(values) if values else None


def table(results: dict[str, Result]) -> tuple[list[str], list[list[str]]]:
    base = results[PROJECT]
    headers = ["method", *(f"{s} s" for s in SCENARIOS), "zip MB", "peak RSS MB",
               *(f"{s} vs project" for s in SCENARIOS)]
    rows = []
    for name, res in results.items():
        times = [med(res.samples.get(s, []), "seconds") for s in SCENARIOS]
        base_times = [med(base.samples.get(s, []), "seconds") for s in SCENARIOS]
        cells = [name]
        cells += [f"{t:.2f}" if t is not None else "n/a" for t in times]
        zips = [r.zip_mb for runs in res.samples.values() for r in runs if r.zip_mb]
        cells.append(f"{statistics.median(zips):.1f}" if zips else "n/a")
        rss = med(res.samples.get("cold", []), "rss_mb")
        cells.append(f"{rss:.0f}" if rss is not None and rss == rss else "n/a")
        cells += [f"{t / b:.1f}x" if t is not None and b else "n/a"
                  for t, b in zip(times, base_times)]
        rows.append(cells)
    return headers, rows


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |",
                      "|" + "|".join([":---", *["---:"] * (len(headers) - 1)]) + "|",
                      *("| " + " | ".join(r) + " |" for r in rows)])


def text(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [headers, *rows])


CHART = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.load(open(sys.argv[1]))
scenarios = data["scenarios"]
methods = list(data["medians"])
fig, ax = plt.subplots(figsize=(11, 5))
width = 0.8 / len(methods)
for i, m in enumerate(methods):
    values = [data["medians"][m].get(s) or 0 for s in scenarios]
    bars = ax.bar([x + i * width for x in range(len(scenarios))], values, width, label=m)
    for b, v in zip(bars, values):
        if v:
            ax.annotate(f"{v:.1f}" if v >= 1 else f"{v:.2f}", (b.get_x() + b.get_width() / 2, v),
                        ha="center", va="bottom", fontsize=7)
ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(scenarios))], scenarios)
ax.set_yscale("log")
ax.set_ylabel("seconds (median, log scale)")
ax.set_title(data["title"])
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=1, help="runs of every scenario (1)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                   help="folder for compare.md, compare.json and compare.png (bench/results)")
    p.add_argument("--setup", action="store_true",
                   help=f"first install aws-sam-cli, chalice and matplotlib into {BENCH_VENV}")
    p.add_argument("--only", action="append", default=[], help="run only methods containing this")
    args = p.parse_args(argv)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.setup:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin/pip"), "install", "-q", "aws-sam-cli", "chalice",
                        "matplotlib"], check=True)
    peers = [make() for make in PEERS]
    if args.only:
        peers = [x for x in peers if x.name == PROJECT or any(o in x.name for o in args.only)]
    with tempfile.TemporaryDirectory(prefix="pll-compare-", ignore_cleanup_errors=True) as tmp:
        scratch = Path(tmp)
        spec_dir = scratch / "spec"
        spec_dir.mkdir()
        (spec_dir / "requirements.txt").write_text(WORKLOAD)
        (spec_dir / "bumped.txt").write_text(WORKLOAD.replace(*BUMP))
        results = run_all(peers, spec_dir, scratch, args.repeat, progress)
        project = next(x for x in peers if isinstance(x, ProjectPeer))
        fp_inner, fp_outer = project.fingerprint_ms(spec_dir, args.repeat)
    headers, rows = table(results)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    notes = [
        f"workload: {RUNTIME} x86_64, " + ", ".join(WORKLOAD.split()) + f"; bump: {BUMP[0]} -> "
        f"{BUMP[1]}",
        f"median of {args.repeat} run(s) per scenario; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load} at the end",
        "cold: empty download caches and no project cache; warm: download caches (and the "
        "project's package packs) kept, finished zip dropped; unchanged: everything kept, same "
        "spec; bump: after those, one package changed; times include writing the zip",
        "project times are `lambda-layers build` as a new process (Python start-up included); "
        "ratios are method time / project time in the same scenario (above 1 = slower than the "
        "project); peak RSS is of the cold build's largest process",
        f"no-change fingerprint of the locked spec: {fp_inner:.1f} ms in process, "
        f"{fp_outer:.0f} ms for `lambda-layers hash` as a new process",
    ]
    notes += [f"{x.name}: {x.note}" for x in peers if x.note]
    for name, res in results.items():
        for scenario, reason in res.unavailable.items():
            notes.append(f"{name}, {scenario}: {reason}")
    print(text(headers, rows))
    print("\n".join("* " + n for n in notes))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(
        "# Build speed: this project against its peers\n\n![chart](compare.png)\n\n"
        + markdown(headers, rows) + "\n\n" + "\n".join("- " + n for n in notes) + "\n")
    data = {"title": f"Lambda layer builds, {RUNTIME} x86_64 (requests+pydantic+numpy+pandas)",
            "scenarios": list(SCENARIOS), "fingerprint_ms": [fp_inner, fp_outer],
            "medians": {name: {s: med(res.samples.get(s, []), "seconds") for s in SCENARIOS}
                        for name, res in results.items()},
            "notes": notes}
    (args.out / "compare.json").write_text(json.dumps(data, indent=2) + "\n")
    python = BENCH_VENV / "bin/python"
    chart = subprocess.run([str(python), "-c", CHART, str(args.out / "compare.json"),
                            str(args.out / "compare.png")], capture_output=True, text=True) \
        if python.exists() else None
    if chart is None or chart.returncode != 0:
        progress("chart not drawn: " + ("no bench venv (run with --setup)" if chart is None
                                        else chart.stderr.strip().splitlines()[-1]))
    progress(f"report written to {args.out / 'compare.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

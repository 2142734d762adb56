"""Stack scale on the real Pulumi engine + moto: programs of N layers (locked, unpinned) against the
empty program; first and second preview, first up on a cold cache, no-change up."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from compare import BENCH_VENV, markdown, text  # noqa: E402

from tests.e2e.conftest import moto_env  # noqa: E402
from tests.e2e.pulumi_harness import PulumiCLI, write_python_project  # noqa: E402
from tests.moto_cross_account import start_cross_account_moto  # noqa: E402

# 50 small pure-Python packages without dependencies, so every layer resolves and builds to
# different content. Locked layers pin these versions; unpinned layers name the package only.
# Not distlib: it ships Windows launchers (.exe), which validation rightly refuses in a layer.
PINS = (
    "six==1.17.0", "idna==3.20", "certifi==2026.10.19.post1", "packaging==26.4",
    "pyparsing==3.3.3", "attrs==26.1.0", "toml==0.10.2", "tomli==2.5.0", "iniconfig==2.3.1",
    "pluggy==1.7.0", "zipp==4.1.2", "jmespath==1.1.0", "pytz==2026.6", "tzdata==2026.6",
    "typing-extensions==4.16.0", "itsdangerous==2.2.0", "blinker==1.9.0", "colorama==0.4.6",
    "decorator==5.3.1", "filelock==4.3.1", "platformdirs==4.14.9", "shellingham==1.5.4",
    "mccabe==0.7.0", "pycodestyle==2.15.0", "pyflakes==4.1.0", "tabulate==0.10.0",
    "termcolor==3.3.0", "wcwidth==0.9.4", "soupsieve==2.10", "webencodings==0.6.1",
    "pycparser==3.12", "cachetools==8.0.2", "pyasn1==0.6.5", "more-itertools==11.2.1",
    "tenacity==9.2.1", "backoff==2.2.1", "sniffio==1.3.1", "h11==0.16.0", "humanize==4.17.0",
    "python-dotenv==1.2.4", "sortedcontainers==2.4.0", "toolz==1.2.0", "cloudpickle==3.1.3",
    "appdirs==1.4.4", "pathspec==1.1.1", "mypy-extensions==1.2.0", "annotated-types==0.8.0",
    "jsonpointer==3.12", "text-unidecode==1.3", "tomlkit==0.15.2",
)
KINDS = ("locked", "unpinned")
SIZES = (1, 12, 50)
STEPS = ("first preview", "second preview", "first up (cold)", "no-change up")
EMPTY = "empty"

# The program under test: the same for every N (0 = the empty program), one line of data apart.
PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

# (resource name, layer name, argument, path)
LAYERS = [
{layers}]

out = {{}}
for resource, layer_name, argument, path in LAYERS:
    layer = LambdaLayerBuild(resource, runtime="python3.11", builder="local",
                             layer_name=layer_name, **{{argument: path}})
    out[resource] = {{"version": layer.version, "content_hash": layer.content_hash}}
pulumi.export("layers", out)
'''


@dataclass(frozen=True)
class Program:
    kind: str  # locked, unpinned, or empty
    n: int

    @property
    def label(self) -> str:
        return EMPTY if self.n == 0 else f"{self.n} {self.kind}"

    @property
    def slug(self) -> str:
        return EMPTY if self.n == 0 else f"{self.kind}{self.n}"

    def write(self, project: Path, run: int) -> None:
        layers = []
        for i, pin in enumerate(PINS[:self.n]):
            folder = project / f"layer{i}"
            folder.mkdir(parents=True)
            if self.kind == "locked":
                (folder / "requirements.lock").write_text(pin + "\n")
                source = ("lock", f"layer{i}/requirements.lock")
            else:
                (folder / "requirements.txt").write_text(pin.split("==")[0] + "\n")
                source = ("requirements", f"layer{i}/requirements.txt")
            # Layer names are unique per program and run: one moto server serves the whole bench.
            layers.append((f"layer{i}", f"bench-{self.slug}-r{run}-{i}", *source))
        main_py = PROGRAM.format(layers="".join(f"    {layer!r},\n" for layer in layers))
        write_python_project(project, f"bench-{self.slug}", main_py,
                             description="bench/stack.py program")


@dataclass
class Outcome:
    """Seconds per step of one program (over repeats), and what went wrong or was left out."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def median(self, step: str) -> float | None:
        values = self.seconds.get(step)
        return statistics.median(values) if values else None


def _summary(stdout: str) -> str:
    """The engine's "Resources:" block, on one line."""
    match = re.search(r"Resources:\n((?:\s+.+\n?)+)", stdout)
    return " ".join(match.group(1).split()) if match else "(no summary)"


def run_program(prog: Program, endpoint: str, scratch: Path, run: int, skip_up: bool,
                timeout: float, outcome: Outcome, progress: Callable[[str], None]) -> None:
    """One fresh project, state backend and caches; the four steps in order, each timed."""
    home = scratch / f"{prog.slug}-r{run}"
    project = home / "project"
    prog.write(project, run)
    env = moto_env(endpoint, home)
    aws_home = home / "aws-home"  # no developer ~/.aws leaks in (as tests/conftest.py does)
    env.update({"AWS_CONFIG_FILE": str(aws_home / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(aws_home / "credentials"),
                "PLL_CACHE_DIR": str(home / "cache-preview"),
                "UV_CACHE_DIR": str(home / "uv-preview")})
    cli = PulumiCLI(project, home=home / "pulumi", extra_env=env, timeout=timeout)
    cli.env.pop("AWS_PROFILE", None)
    cli.stack_init("bench")

    def step(name: str, *args: str) -> str | None:
        progress(f"  {prog.label}, run {run + 1}: {name} ...")
        start = time.perf_counter()
        try:
            proc = cli.run(*args)
        except AssertionError as e:
            outcome.failed[name] = str(e)
            progress(f"  {prog.label}: {name} FAILED")
            return None
        seconds = time.perf_counter() - start
        outcome.seconds.setdefault(name, []).append(seconds)
        progress(f"  {prog.label}: {name} {seconds:.1f} s ({_summary(proc.stdout)})")
        return proc.stdout

    step("first preview", "preview")
    cache = Path(cli.env["PLL_CACHE_DIR"])
    memo = len(list((cache / "resolutions").glob("*.json")))
    zips = len(list((cache / "zips").glob("*.zip")))
    if run == 0:
        outcome.checks.append(f"after the first preview: {memo} resolution memo entries, "
                              f"{zips} zips")
    step("second preview", "preview")
    if skip_up:
        for name in STEPS[2:]:
            outcome.skipped[name] = "left out (--skip-up)"
        return
    # The up is what CI runs on a fresh machine: an empty build cache, memo and uv cache.
    cli.env.update({"PLL_CACHE_DIR": str(home / "cache-up"), "UV_CACHE_DIR": str(home / "uv-up")})
    if step("first up (cold)", "up", "--yes", "--skip-preview") is None:
        outcome.skipped["no-change up"] = "the first up failed"
        return
    layers = cli.outputs().get("layers", {})
    hashes = {v["content_hash"] for v in layers.values()}
    built = len(list((Path(cli.env["PLL_CACHE_DIR"]) / "zips").glob("*.zip")))
    if len(layers) != prog.n or len(hashes) != prog.n or built != prog.n:
        outcome.failed["first up (cold)"] = (f"expected {prog.n} distinct layers built: "
                                             f"{len(layers)} outputs, {len(hashes)} hashes, "
                                             f"{built} zips built")
    before = {k: v["version"] for k, v in layers.items()}
    out = step("no-change up", "up", "--yes", "--skip-preview")
    if out is not None:
        after = {k: v["version"] for k, v in cli.outputs().get("layers", {}).items()}
        if after != before or re.search(r"\b(created|updated|replaced|deleted)\b", _summary(out)):
            outcome.failed["no-change up"] = f"changed something: {_summary(out)}"
    if run == 0 and prog.n:
        outcome.checks.append(f"first up: {len(hashes)} distinct content hashes, {built} zips "
                              f"built, versions {sorted(set(before.values()))}")


def locked_fingerprint_ms(n: int, scratch: Path) -> float:
    """In-process time of the program-time fingerprints of n locked layers: the program's share
    of a locked preview (the rest is the engine, the language host and the provider)."""
    from pulumi_lambda_layers.resources import program_time_fingerprint

    folder = scratch / f"fingerprint-{n}"
    Program("locked", n).write(folder, 0)
    start = time.perf_counter()
    for i in range(n):
        program_time_fingerprint({"runtime": "python3.11", "architecture": "x86_64",
                                  "lock": str(folder / f"layer{i}/requirements.lock"),
                                  "builder": "local"})
    return (time.perf_counter() - start) * 1000


def ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def targets(results: dict[Program, Outcome]) -> list[tuple[str, str, str, str]]:
    """(target, measured, bound, verdict) for the issue's targets."""
    def med(kind: str, n: int, step: str) -> float | None:
        outcome = results.get(Program(kind, n))
        return outcome.median(step) if outcome else None

    def row(what: str, value: float | None, bound: float) -> tuple[str, str, str, str]:
        if value is None:
            return (what, "not measured", f"<= {bound:g}x", "n/a")
        return (what, f"{value:.2f}x", f"<= {bound:g}x", "met" if value <= bound else "MISSED")

    rows = [
        row("12 unpinned, first preview / 1 unpinned, first preview",
            ratio(med("unpinned", 12, "first preview"), med("unpinned", 1, "first preview")), 2),
        row("12 unpinned, second preview / empty program, second preview",
            ratio(med("unpinned", 12, "second preview"), med(EMPTY, 0, "second preview")), 1.5),
        row("50 locked, first preview / empty program, first preview",
            ratio(med("locked", 50, "first preview"), med(EMPTY, 0, "first preview")), 1.5),
    ]
    for kind in KINDS:
        outcome = results.get(Program(kind, 12))
        if outcome is None or "first up (cold)" in outcome.skipped:
            rows.append((f"first up of 12 {kind} layers on a cold cache", "not run", "succeeds",
                         "n/a"))
            continue
        runs = len(outcome.seconds.get("first up (cold)", []))
        ok = "first up (cold)" not in outcome.failed
        rows.append((f"first up of 12 {kind} layers on a cold cache",
                     f"{runs} of {runs} succeeded" if ok else "FAILED", "succeeds",
                     "met" if ok else "MISSED"))
    return rows


def tables(results: dict[Program, Outcome]) -> tuple[list[str], list[list[str]]]:
    headers = ["program", *(f"{s} s" for s in STEPS), "first preview vs empty",
               "second preview vs empty"]
    empty = results.get(Program(EMPTY, 0))
    rows = []
    for prog, outcome in results.items():
        cells = [prog.label]
        for s in STEPS:
            m = outcome.median(s)
            cells.append("FAILED" if s in outcome.failed else "-" if m is None else f"{m:.1f}")
        for s in STEPS[:2]:
            r = ratio(outcome.median(s), empty.median(s) if empty else None)
            cells.append("-" if r is None else f"{r:.2f}x")
        rows.append(cells)
    return headers, rows


CHART = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
data = json.load(open(sys.argv[1]))
steps, kinds = data["steps"], data["kinds"]
fig, axes = plt.subplots(1, len(kinds), figsize=(13, 5), squeeze=False, sharey=True)
for ax, kind in zip(axes[0], kinds):
    progs = [p for p in data["programs"] if p["kind"] in (kind, "empty")]
    width = 0.8 / len(progs)
    for i, p in enumerate(progs):
        values = [p["median"].get(s) or 0 for s in steps]
        bars = ax.bar([x + i * width for x in range(len(steps))], values, width,
                      label=p["label"], color=plt.cm.viridis(i / max(1, len(progs) - 1)))
        for b, v, s in zip(bars, values, steps):
            x = b.get_x() + b.get_width() / 2
            if s in p["failed"] or s in p["skipped"]:  # no bar: say why at the foot of the axis
                ax.annotate("FAILED" if s in p["failed"] else "left out", (x, 0.02),
                            xycoords=ax.get_xaxis_transform(), ha="center", va="bottom",
                            fontsize=7, rotation=90, color="red" if s in p["failed"] else "grey")
            elif v:
                ax.annotate(f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks([x + width * (len(progs) - 1) / 2 for x in range(len(steps))], steps,
                  fontsize=8)
    ax.set_yscale("log")
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(matplotlib.ticker.FormatStrFormatter("%g"))  # 2, 3, 10 rather than 2x10^0
    ax.set_title(f"{kind} layers (python3.11, builder=local)")
    ax.legend(fontsize=8, loc="upper left")
axes[0][0].set_ylabel("seconds (median, log scale)")
fig.suptitle(data["title"])
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
"""


def chart_python() -> Path | None:
    """A python with matplotlib: the bench venv (as compare.py), else this one."""
    for python in (BENCH_VENV / "bin/python", Path(sys.executable)):
        if python.exists() and subprocess.run([str(python), "-c", "import matplotlib"],
                                              capture_output=True).returncode == 0:
            return python
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)),
                   help="layer counts, comma-separated (1,12,50); the empty program always runs")
    p.add_argument("--kinds", default=",".join(KINDS), help="locked,unpinned (both)")
    p.add_argument("--repeat", type=int, default=1, help="fresh runs of every program (1)")
    p.add_argument("--skip-up", type=int, action="append", default=[], metavar="N",
                   help="previews only for programs of N layers (e.g. --skip-up 50); repeatable")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per pulumi command (1800)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                   help="folder for stack.md, stack.json and stack.png (bench/results)")
    p.add_argument("--setup", action="store_true",
                   help=f"first install matplotlib into {BENCH_VENV}")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS] + [str(n) for n in sizes if not 0 < n <= len(PINS)]
    if bad:
        p.error(f"unknown kind or size: {', '.join(bad)} (kinds: {', '.join(KINDS)}; "
                f"sizes 1..{len(PINS)})")

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.setup:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin/pip"), "install", "-q", "matplotlib"], check=True)
    programs = [Program(EMPTY, 0), *(Program(k, n) for k in kinds for n in sizes)]
    results: dict[Program, Outcome] = {prog: Outcome() for prog in programs}
    started = time.perf_counter()
    with start_cross_account_moto() as moto, \
            tempfile.TemporaryDirectory(prefix="pll-stack-", ignore_cleanup_errors=True) as tmp:
        progress(f"moto at {moto.url}; scratch in {tmp}")
        for run in range(args.repeat):
            for prog in programs:  # one after another: the machine's cores are shared
                run_program(prog, moto.url, Path(tmp), run, prog.n in args.skip_up, args.timeout,
                            results[prog], progress)
        locked = max((n for n in sizes if "locked" in kinds), default=0)
        fingerprint_ms = locked_fingerprint_ms(locked, Path(tmp)) if locked else None
    minutes = (time.perf_counter() - started) / 60

    headers, rows = tables(results)
    goal_headers = ["target", "measured", "bound", "verdict"]
    goals = [list(r) for r in targets(results)]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                           capture_output=True, text=True).stdout.strip()
    notes = [
        f"median of {args.repeat} fresh run(s) per program; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load} at the end; whole run {minutes:.1f} min; "
        f"code: {head}{' + uncommitted changes in src/' if dirty else ''}; pulumi "
        f"{importlib.metadata.version('pulumi')} (CLI built from Go modules), moto "
        f"{importlib.metadata.version('moto')} (tests/moto_cross_account.py server)",
        "every program is the same `__main__.py` with N LambdaLayerBuild(runtime=\"python3.11\", "
        "builder=\"local\", layer_name=...) of distinct content; the empty program has N = 0. "
        "locked: `lock=` a requirements.lock pinning one package (e.g. six==1.17.0); unpinned: "
        "`requirements=` naming it only (e.g. six), resolved with uv; the packages are 50 "
        "different small pure-Python ones without dependencies: " + ", ".join(PINS[:max(sizes)]),
        "each program runs in a new project with its own file:// state, PULUMI_HOME and caches: "
        "first preview on an empty build cache (PLL_CACHE_DIR), resolution memo and uv cache "
        "(UV_CACHE_DIR); second preview of the unchanged program right after (caches kept, "
        "default memo freshness of 1 h); first up (`up --skip-preview`) with a new empty "
        "PLL_CACHE_DIR and UV_CACHE_DIR, as CI on a fresh machine; no-change up right after it",
        "seconds are the wall time of the `pulumi` command (engine, language host, program, "
        "dynamic provider, moto calls); ratios are a program's time / the empty program's in "
        "the same step; the first up is checked to build N distinct zips and publish N versions, "
        "the no-change up to publish and replace nothing",
    ]
    if fingerprint_ms is not None:
        notes.append(f"program-time fingerprints of the {locked} locked layers, in this process: "
                     f"{fingerprint_ms:.0f} ms in all (the rest of a locked preview is the "
                     "engine, the language host and the dynamic provider)")
    for prog, outcome in results.items():
        notes += [f"{prog.label}: {c}" for c in outcome.checks]
        notes += [f"{prog.label}, {s}: {why}" for s, why in outcome.skipped.items()]
        notes += [f"{prog.label}, {s} FAILED: " + " ".join(why.split())[:600]
                  for s, why in outcome.failed.items()]
    print(text(headers, rows) + "\n\n" + text(goal_headers, goals) + "\n"
          + "\n".join("* " + n for n in notes))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stack.md").write_text(
        "# Stack scale: N layers in one program on the real engine + moto\n\n"
        "![chart](stack.png)\n\n" + markdown(headers, rows) + "\n\n## Targets (issue 12)\n\n"
        + markdown(goal_headers, goals) + "\n\n## Notes\n\n" + "\n".join("- " + n for n in notes)
        + "\n")
    data = {"title": "Stack scale: seconds per pulumi command, by program (real engine + moto)",
            "steps": list(STEPS), "kinds": kinds,
            "programs": [{"label": prog.label, "kind": prog.kind, "n": prog.n,
                          "median": {s: o.median(s) for s in STEPS}, "seconds": o.seconds,
                          "failed": o.failed, "skipped": o.skipped}
                         for prog, o in results.items()],
            "targets": [dict(zip(goal_headers, g)) for g in goals], "notes": notes}
    (args.out / "stack.json").write_text(json.dumps(data, indent=2) + "\n")
    python = chart_python()
    chart = subprocess.run([str(python), "-c", CHART, str(args.out / "stack.json"),
                            str(args.out / "stack.png")], capture_output=True, text=True) \
        if python else None
    if chart is None or chart.returncode != 0:
        progress("chart not drawn: " + ("no matplotlib (run with --setup)" if chart is None
                                        else chart.stderr.strip().splitlines()[-1]))
    progress(f"report written to {args.out / 'stack.md'}")
    return 1 if any(o.failed for o in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

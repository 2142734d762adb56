"""Docker builds against pip/npm in a container: cold, unchanged, bump, per workload; and auto with
one native sdist among wheels against a full Docker build. Writes bench/results/docker.{md,json}.

    .venv/bin/python bench/docker_speed.py                       # every workload (~7 min, 2 CPUs)
    .venv/bin/python bench/docker_speed.py --workload x86_64 --no-peers arm64 --out /tmp/d
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from build_speed import HOST_CA_BUNDLE, LOCAL_IMAGE  # noqa: E402
from compare import (  # noqa: E402
    NODE_BUMP,
    PY_BUMP,
    PY_WORKLOAD,
    NpmInContainer,
    Peer,
    PipInContainer,
    Run,
    Unavailable,
    Workload,
    check_zip,
    lambda_layers,
    markdown,
    text,
    timed,
)

from pulumi_lambda_layers.build.docker import OWNER_LABEL  # noqa: E402
from pulumi_lambda_layers.runtimes import UNAME_MACHINE  # noqa: E402

SCENARIOS = ("cold", "unchanged", "bump")
DOCKER = "this project, builder=docker"
AUTO = "this project, builder=auto"
NATIVE = "nativepkg==1.0"  # a C extension published as an sdist only (served here)


class ProjectBuild(Peer):
    """`lambda-layers build --builder <builder>` as a new process; its caches (packs, uv, and a
    pip/npm cache volume of its own: a fresh cache owner per state) live as long as the state."""

    builder = "docker"

    def __init__(self, wl: Workload, image: str | None = None, extra: str = "") -> None:
        super().__init__(wl)
        self.image = image or LOCAL_IMAGE.format(runtime=wl.runtime, arch=wl.arch)
        self.owner = ""
        self.name = f"this project, builder={self.builder}{extra}"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "cold":
            self.owner = f"pll-bench-{uuid.uuid4().hex[:8]}"
        env = {"UV_CACHE_DIR": str(state / "uv"), "PLL_CACHE_DIR": str(state / "pll"),
               "npm_config_cache": str(state / "npm"), "PLL_CACHE_OWNER": self.owner}
        out = work / "layer.zip"
        source = self.wl.source(scenario, spec_dir)
        seconds, rss = timed([lambda_layers(), "build", "--builder", self.builder, "--quiet",
                              "--runtime", self.wl.runtime, "--arch", self.wl.arch,
                              "--frozen" if self.wl.node else "--locked", "--image", self.image,
                              "--network", "host", "--ca-bundle", HOST_CA_BUNDLE, str(source),
                              "-o", str(out)], env)
        size, largest = check_zip(out, self.wl.arch)
        return Run(seconds, rss, size, largest)

    def done(self) -> None:
        """Remove the cache volumes this state made."""
        if self.owner:
            names = subprocess.run(["docker", "volume", "ls", "-q", "--filter",
                                    f"label={OWNER_LABEL}={self.owner}"],
                                   capture_output=True, text=True).stdout.split()
            if names:
                subprocess.run(["docker", "volume", "rm", "-f", *names], capture_output=True)


class AutoBuild(ProjectBuild):
    builder = "auto"


@dataclass
class Section:
    title: str
    wl: Workload
    peers: list[Peer]
    medians: dict[str, dict[str, float | None]]
    notes: list[str]


def run(peers: list[Peer], spec_dir: Path, scratch: Path, scenarios: tuple[str, ...],
        progress: Callable[[str], None], label: str) -> tuple[dict[str, dict[str, float | None]],
                                                              list[str]]:
    """Each method in a fresh state: its scenarios in order (cold first); one run each."""
    medians: dict[str, dict[str, float | None]] = {}
    notes: list[str] = []
    for p in peers:
        medians[p.name] = dict.fromkeys(SCENARIOS)
        reason = p.missing()
        if reason:
            notes.append(f"{p.name}: not run: {reason}")
            continue
        state = Path(tempfile.mkdtemp(prefix="state-", dir=scratch))
        try:
            for scenario in scenarios:
                work = Path(tempfile.mkdtemp(prefix="work-", dir=scratch))
                try:
                    result = p.run(scenario, spec_dir, state, work)
                except Unavailable as exc:
                    notes.append(f"{p.name}, {scenario}: {exc}")
                    continue
                except (RuntimeError, OSError) as exc:
                    notes.append(f"{p.name}, {scenario}: failed: {str(exc).splitlines()[0]}")
                    progress(f"{label} {p.name} {scenario}: FAILED\n  {exc}")
                    continue
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                medians[p.name][scenario] = result.seconds
                progress(f"{label} {p.name} {scenario}: {result.seconds:.2f} s, "
                         f"{result.zip_mb or 0:.1f} MB")
        finally:
            if isinstance(p, ProjectBuild):
                p.done()
            shutil.rmtree(state, ignore_errors=True)
    return medians, notes


def ratio(medians: dict[str, dict[str, float | None]], a: tuple[str, str], b: tuple[str, str]
          ) -> float | None:
    x, y = medians.get(a[0], {}).get(a[1]), medians.get(b[0], {}).get(b[1])
    return x / y if x is not None and y else None


def checks(name: str, medians: dict[str, dict[str, float | None]], pip: str) -> list[str]:
    """The issue's targets for this workload, each with its figure and whether it holds."""
    out = []

    def target(what: str, value: float | None, limit: float, unit: str = "x") -> None:
        if value is None:
            out.append(f"target {what} <= {limit}{unit}: not measured")
        else:
            out.append(f"target {what} <= {limit}{unit}: {value:.2f}{unit} "
                       + ("holds" if value <= limit else "MISSED"))

    if name.startswith("auto"):
        target("auto cold / docker cold", ratio(medians, (AUTO, "cold"), (DOCKER, "cold")), 0.5)
        return out
    if name.startswith("nodejs"):
        # The targets are against pip in a container; a Node.js Docker build is `npm ci`
        # of the whole lock (docs/pipeline.md says why it cannot go package by package).
        pairs = {"docker bump / docker cold": ((DOCKER, "bump"), (DOCKER, "cold")),
                 f"docker bump / {pip} bump": ((DOCKER, "bump"), (pip, "bump")),
                 f"docker cold / {pip} cold": ((DOCKER, "cold"), (pip, "cold"))}
        figures = [(what, ratio(medians, *pair)) for what, pair in pairs.items()]
        out.append("for reference, not targets (issue 17's are against pip; a Node.js Docker "
                   "build runs `npm ci` of the whole lock): " + ", ".join(
                       f"{what} {value:.2f}x" for what, value in figures if value is not None))
        return out
    target("docker bump / docker cold", ratio(medians, (DOCKER, "bump"), (DOCKER, "cold")), 0.2)
    target(f"docker bump / {pip} bump", ratio(medians, (DOCKER, "bump"), (pip, "bump")), 0.15)
    target(f"docker cold / {pip} cold", ratio(medians, (DOCKER, "cold"), (pip, "cold")), 0.9)
    if "arm64" in name:
        target("arm64 docker bump", medians.get(DOCKER, {}).get("bump"), 10, " s")
    return out


@contextmanager
def native_index(folder: Path) -> Iterator[str]:
    """nativepkg's sdist (and setuptools for its isolated build) on a local index; its URL."""
    from tests.local_index import backend_wheels, make_sdist, serve_index

    folder.mkdir(parents=True)
    backend_wheels(folder)
    make_sdist(folder, "nativepkg", "1.0", native=True)
    with serve_index(folder) as index:
        yield index.url


class AutoWorkload(Workload):
    """The Python workload plus one sdist-only C extension, from a second (local) index."""

    index_url = ""

    def write_specs(self, spec_dir: Path, progress: Callable[[str], None]) -> str:
        head = f"--index-url https://pypi.org/simple\n--extra-index-url {self.index_url}\n"
        for sub, body in (("base", PY_WORKLOAD), ("bumped", PY_WORKLOAD.replace(*self.bump))):
            (spec_dir / sub).mkdir(parents=True)
            (spec_dir / sub / "requirements.txt").write_text(head + body + NATIVE + "\n")
        return (f"the python3.11 x86_64 workload plus {NATIVE} (a C extension published as an "
                "sdist only, on a local index) in the python3.11 x86_64 image with gcc "
                "(tests/testbed_images.py); the full Docker build compiles it too")


WORKLOADS: dict[str, Callable[[], tuple[Workload, type[Peer] | None]]] = {
    "python3.11-x86_64": lambda: (Workload("python3.11-x86_64", "python3.11", "x86_64",
                                           "python3.11 x86_64: requests+pydantic+numpy+pandas",
                                           PY_BUMP, ()), PipInContainer),
    "python3.11-arm64": lambda: (Workload("python3.11-arm64", "python3.11", "arm64",
                                          "python3.11 arm64 (under qemu): the same 15 pins",
                                          PY_BUMP, ()), PipInContainer),
    "nodejs20.x-x86_64": lambda: (Workload("nodejs20.x-x86_64", "nodejs20.x", "x86_64",
                                           "nodejs20.x x86_64: sharp", NODE_BUMP, ()),
                                  NpmInContainer),
    "auto-python3.11-x86_64": lambda: (AutoWorkload("auto-python3.11-x86_64", "python3.11",
                                                    "x86_64", "auto: the Python workload + one "
                                                    "native sdist", PY_BUMP, ()), None),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workload", action="append", default=[],
                   help="run only workloads whose name contains this: " + ", ".join(WORKLOADS))
    p.add_argument("--no-peers", action="append", default=[],
                   help="skip pip/npm in a container for workloads containing this (e.g. arm64)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    chosen = [n for n in WORKLOADS if not args.workload or any(w in n for w in args.workload)]
    started = time.perf_counter()
    sections: list[Section] = []
    for name in chosen:
        wl, peer_type = WORKLOADS[name]()
        with tempfile.TemporaryDirectory(prefix="pll-docker-bench-",
                                         ignore_cleanup_errors=True) as tmp:
            scratch = Path(tmp)
            with contextmanager_for(wl, scratch) as image:
                spec_note = wl.write_specs(scratch / "spec", progress)
                if isinstance(wl, AutoWorkload):
                    peers: list[Peer] = [AutoBuild(wl, image), ProjectBuild(wl, image)]
                else:
                    peers = [ProjectBuild(wl)]
                    if peer_type is not None and not any(x in name for x in args.no_peers):
                        peers.append(peer_type(wl))
                medians, notes = run(peers, scratch / "spec", scratch, SCENARIOS, progress, name)
        pip = next((x.name for x in peers if isinstance(x, PipInContainer | NpmInContainer)),
                   "pip in a container (+ zip)")
        notes = [*([spec_note] if spec_note else []), *checks(name, medians, pip), *notes,
                 *(f"{x.name}: {x.note}" for x in peers if x.note)]
        emulated = UNAME_MACHINE[wl.arch] != platform.machine()
        if emulated:
            notes.append("the build container runs under qemu user emulation: every row of this "
                         "table pays for it (pip, the compile, npm), the host-side packing not")
        sections.append(Section(wl.title, wl, peers, medians, notes))
        headers, rows = _table(medians)
        print(f"== {wl.title}\n{text(headers, rows)}\n" + "\n".join("* " + n for n in notes),
              flush=True)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    common = [f"one run per scenario; machine: {platform.machine()}, {os.cpu_count()} CPUs, load "
              f"average {load} at the end; whole run {(time.perf_counter() - started) / 60:.1f} "
              "min",
              "cold: empty caches (packs, uv, a new pip/npm cache volume); unchanged: the same "
              "spec again (the finished zip is reused); bump: then one package changed; every "
              "project build is `lambda-layers build` as a new process; pip/npm in a container "
              "is `docker run` of the installer plus a zip, no cache",
              "ratios in the targets are of these medians, in this run"]
    if args.workload or args.no_peers:
        common.append("partial run: " + " ".join([*(f"--workload {w}" for w in args.workload),
                                                  *(f"--no-peers {w}" for w in args.no_peers)]))
    args.out.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"## {s.title}\n\n{markdown(*_table(s.medians))}\n\n"
                     + "\n".join("- " + n for n in s.notes) + "\n" for s in sections)
    (args.out / "docker.md").write_text("# Docker builds: this project against pip/npm in a "
                                        "container\n\n" + "\n".join("- " + n for n in common)
                                        + "\n\n" + body)
    (args.out / "docker.json").write_text(json.dumps(
        {"scenarios": list(SCENARIOS), "notes": common,
         "workloads": [{"title": s.title, "medians": s.medians, "notes": s.notes}
                       for s in sections]}, indent=2) + "\n")
    progress(f"report written to {args.out / 'docker.md'}")
    return 0


@contextmanager
def contextmanager_for(wl: Workload, scratch: Path) -> Iterator[str | None]:
    """The auto workload's local index and compiler image; nothing for the others."""
    if not isinstance(wl, AutoWorkload):
        yield None
        return
    from tests.testbed_images import require_compiler_image

    image = require_compiler_image()
    with native_index(scratch / "index") as url:
        AutoWorkload.index_url = url
        yield image


def _table(medians: dict[str, dict[str, float | None]]) -> tuple[list[str], list[list[str]]]:
    headers = ["method", *(f"{s} s" for s in SCENARIOS)]
    rows = [[name, *(f"{v:.2f}" if v is not None else "n/a" for v in values.values())]
            for name, values in medians.items()]
    return headers, rows


if __name__ == "__main__":
    sys.exit(main())

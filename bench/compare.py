"""One report: this project (cold, warm, unchanged, one-package bump, no-change hash) against peers,
on three workloads: python3.11 x86_64, python3.11 arm64 and nodejs20.x x86_64 (sharp)."""

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
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_speed import HOST_CA_BUNDLE, LOCAL_IMAGE, MB, zip_dir  # noqa: E402

from pulumi_lambda_layers.runtimes import NPM_CPU, UNAME_MACHINE  # noqa: E402

# The workload, pinned so every method installs the same files.
PY_WORKLOAD = ("annotated-types==0.7.0\ncertifi==2024.8.30\ncharset-normalizer==3.3.2\nidna==3.10\n"
               "numpy==1.26.4\npandas==2.2.3\npydantic==2.9.2\npydantic-core==2.23.4\n"
               "python-dateutil==2.9.0.post0\npytz==2024.2\nrequests==2.32.3\nsix==1.16.0\n"
               "typing-extensions==4.12.2\ntzdata==2024.2\nurllib3==2.2.2\n")
PY_BUMP = ("urllib3==2.2.2", "urllib3==2.2.3")
# sharp ships its native code as prebuilt optional packages (@img/sharp-linux-x64 and libvips), so
# npm's --os/--cpu/--libc pick the Lambda ones; uuid is the small package the bump changes.
NODE_PACKAGE = {"name": "bench-layer", "version": "1.0.0", "private": True,
                "dependencies": {"sharp": "0.33.5", "uuid": "9.0.0"}}
NODE_BUMP = ("uuid@9.0.0", "uuid@9.0.1")
BENCH_VENV = Path(os.environ.get("PLL_DEV_CACHE", Path.home() / ".cache/pulumi-lambda-layers-dev")) \
    / "bench-venv"
PROJECT = "this project (local builder)"
SCENARIOS = ("cold", "warm", "unchanged", "bump")
ELF_MACHINE = {"x86_64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64


@dataclass(frozen=True)
class Workload:
    """One layer to build: its spec files (base and bumped) and who builds it."""

    name: str
    runtime: str
    arch: str
    title: str
    bump: tuple[str, str]
    peers: tuple[type[Peer], ...]
    # methods that are left out here, and why (named in the report, never faked)
    left_out: tuple[tuple[str, str], ...] = ()

    @property
    def node(self) -> bool:
        return self.runtime.startswith("nodejs")

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")

    def write_specs(self, spec_dir: Path, progress: Callable[[str], None]) -> str:
        """spec_dir/base and spec_dir/bumped hold the spec files; returns a note on how."""
        for sub in ("base", "bumped"):
            (spec_dir / sub).mkdir(parents=True)
        if not self.node:
            (spec_dir / "base/requirements.txt").write_text(PY_WORKLOAD)
            (spec_dir / "bumped/requirements.txt").write_text(PY_WORKLOAD.replace(*self.bump))
            return ""
        old, new = (b.split("@")[1] for b in self.bump)
        name = self.bump[0].split("@")[0]
        bumped = json.loads(json.dumps(NODE_PACKAGE))
        bumped["dependencies"][name] = new
        assert NODE_PACKAGE["dependencies"][name] == old
        start = time.perf_counter()
        for sub, manifest in (("base", NODE_PACKAGE), ("bumped", bumped)):
            (spec_dir / sub / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
            proc = subprocess.run(["npm", "install", "--package-lock-only", "--ignore-scripts",
                                   "--no-audit", "--no-fund"], cwd=spec_dir / sub,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"npm could not write the lock for {self.name}:\n{proc.stderr}")
        seconds = time.perf_counter() - start
        packages = len(json.loads((spec_dir / "base/package-lock.json").read_text())["packages"]) - 1
        progress(f"{self.name}: package-lock.json written with npm {npm_version()} in {seconds:.1f} s")
        return (f"package-lock.json ({packages} packages) written once per run with host npm "
                f"{npm_version()} (`npm install --package-lock-only`, untimed); every method "
                "installs from it")

    def spec(self, scenario: str, spec_dir: Path) -> Path:
        """The folder with this scenario's spec files."""
        return spec_dir / ("bumped" if scenario == "bump" else "base")

    def source(self, scenario: str, spec_dir: Path) -> Path:
        return self.spec(scenario, spec_dir) / ("package.json" if self.node else "requirements.txt")


def npm_version() -> str:
    return subprocess.run(["npm", "--version"], capture_output=True, text=True).stdout.strip()


@dataclass
class Run:
    """What one timed command gave: seconds, peak RSS of the process tree's biggest child, zip size."""

    seconds: float
    rss_mb: float
    zip_mb: float | None
    largest_mb: float | None = None  # the biggest file in the zip (uncompressed)


@dataclass
class Result:
    """Samples per scenario for one method; a reason when a scenario cannot run here."""

    samples: dict[str, list[Run]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


class Unavailable(Exception):
    """This scenario does not exist for this method (reported, not timed)."""


class Peer:
    """A way to build the layer. Each scenario gets a fresh work dir; caches live in `state`."""

    name = ""
    note = ""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.findings: set[str] = set()  # things seen in its output, added to the notes

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
    return seconds, usage.ru_maxrss * 1024 / MB  # ru_maxrss is in KiB


def check_zip(path: Path, arch: str) -> tuple[float, float]:
    """(zip MB, largest file MB); raises when a native file in it is for another architecture."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for info in infos:
            base = info.filename.rsplit("/", 1)[-1]
            if not (base.endswith((".so", ".node")) or ".so." in base) or info.file_size < 20:
                continue
            head = zf.open(info).read(20)
            if head[:4] == b"\x7fELF":
                machine = int.from_bytes(head[18:20], "little")
                if machine != ELF_MACHINE[arch]:
                    raise RuntimeError(f"{info.filename} is ELF machine {machine}, not {arch}")
    largest = max((i.file_size for i in infos), default=0)
    return path.stat().st_size / MB, largest / MB


def zipped(seconds: float, rss: float, root: Path, work: Path, arch: str) -> Run:
    """Zip root as a hand-rolled script does; the zip's time counts."""
    start = time.perf_counter()
    zip_dir(root, work / "layer.zip")
    seconds += time.perf_counter() - start
    size, largest = check_zip(work / "layer.zip", arch)
    return Run(seconds, rss, size, largest)


def lambda_layers() -> str:
    return str(Path(sys.executable).parent / "lambda-layers")


class ProjectPeer(Peer):
    """`lambda-layers build` as a user runs it (a new process each time: start-up is counted)."""

    name = PROJECT

    def args(self, source: Path) -> list[str]:
        return ["--runtime", self.wl.runtime, "--arch", self.wl.arch,
                "--frozen" if self.wl.node else "--locked", str(source)]

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        env = {"UV_CACHE_DIR": str(state / "uv"), "PLL_CACHE_DIR": str(state / "pll"),
               "npm_config_cache": str(state / "npm")}
        if scenario == "warm":  # download and pack caches kept, the finished zip forgotten
            shutil.rmtree(state / "pll" / "zips", ignore_errors=True)
        out = work / "layer.zip"
        seconds, rss = timed([lambda_layers(), "build", "--builder", "local", "--quiet",
                              *self.args(self.wl.source(scenario, spec_dir)), "-o", str(out)], env)
        size, largest = check_zip(out, self.wl.arch)
        return Run(seconds, rss, size, largest)

    def fingerprint_ms(self, spec_dir: Path, repeat: int) -> tuple[float, float]:
        """(in-process ms, `lambda-layers hash` end to end ms) of the locked spec, unchanged."""
        from pulumi_lambda_layers.sources.fingerprint import fingerprint
        from pulumi_lambda_layers.spec import make_spec

        source = self.wl.source("cold", spec_dir)
        spec = make_spec(runtime=self.wl.runtime, architecture=self.wl.arch,
                         **({"package_json": str(source), "frozen": True} if self.wl.node
                            else {"lock": str(source)}))
        inner, outer = [], []
        for _ in range(max(repeat, 5)):
            start = time.perf_counter()
            fingerprint(spec)
            inner.append((time.perf_counter() - start) * 1000)
            outer.append(timed([lambda_layers(), "hash", *self.args(source)])[0] * 1000)
        return statistics.median(inner), statistics.median(outer)


class PipZip(Peer):
    name = "pip install -t + zip"
    note = "pip byte-compiles by default; its .pyc files go into the zip"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "unchanged":
            raise Unavailable("has no cache of finished zips: the same as warm")
        seconds, rss = timed([sys.executable, "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", "-r",
                              str(self.wl.source(scenario, spec_dir)), "-t",
                              str(work / "layer/python"),
                              "--platform", f"manylinux2014_{UNAME_MACHINE[self.wl.arch]}",
                              "--only-binary=:all:", "--python-version", self.wl.python_version],
                             {"PIP_CACHE_DIR": str(state / "pip")})
        return zipped(seconds, rss, work / "layer", work, self.wl.arch)


class UvZip(Peer):
    name = "uv pip install --target + zip"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "unchanged":
            raise Unavailable("has no cache of finished zips: the same as warm")
        from uv import find_uv_bin

        seconds, rss = timed([find_uv_bin(), "pip", "install", "-q", "-r",
                              str(self.wl.source(scenario, spec_dir)), "--target",
                              str(work / "layer/python"),
                              "--python-platform", f"{UNAME_MACHINE[self.wl.arch]}-manylinux_2_17",
                              "--python-version", self.wl.python_version],
                             {"UV_CACHE_DIR": str(state / "uv")})
        return zipped(seconds, rss, work / "layer", work, self.wl.arch)


class NpmZip(Peer):
    name = "npm ci + zip"

    @property
    def note(self) -> str:  # type: ignore[override]
        return (f"host npm {npm_version()}: `npm ci --omit=dev --os=linux "
                f"--cpu={NPM_CPU[self.wl.arch]} --libc=glibc --no-audit --no-fund` in "
                "layer/nodejs (npm cache in the state folder; sharp's install script runs and "
                "finds its prebuilt binary), package*.json removed, then a zip of layer/")

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "unchanged":
            raise Unavailable("has no cache of finished zips: the same as warm")
        project = work / "layer/nodejs"
        project.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(self.wl.spec(scenario, spec_dir) / name, project / name)
        seconds, rss = timed(["npm", "ci", "--omit=dev", "--os=linux",
                              f"--cpu={NPM_CPU[self.wl.arch]}", "--libc=glibc", "--no-audit",
                              "--no-fund"], {"npm_config_cache": str(state / "npm"),
                                             "npm_config_update_notifier": "false"}, cwd=project)
        for name in ("package.json", "package-lock.json"):
            (project / name).unlink()
        return zipped(seconds, rss, work / "layer", work, self.wl.arch)


class Sam(Peer):
    name = "sam build (+ zip)"
    note = ("`sam build` without a container (warm: again; unchanged/bump: `--cached`), then a zip "
            "of the layer folder")

    def template(self) -> str:
        return ("AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
                "Resources:\n  Deps:\n    Type: AWS::Serverless::LayerVersion\n    Properties:\n"
                f"      ContentUri: deps/\n      CompatibleRuntimes: [{self.wl.runtime}]\n"
                f"    Metadata:\n      BuildMethod: {self.wl.runtime}\n"
                f"      BuildArchitecture: {self.wl.arch}\n")

    def missing(self) -> str | None:
        return None if (BENCH_VENV / "bin/sam").exists() else \
            f"aws-sam-cli is not installed in {BENCH_VENV} (run with --setup)"

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        project = state / "sam"
        (project / "deps").mkdir(parents=True, exist_ok=True)
        (project / "template.yaml").write_text(self.template())
        for name in (("package.json", "package-lock.json") if self.wl.node
                     else ("requirements.txt",)):
            shutil.copyfile(self.wl.spec(scenario, spec_dir) / name, project / "deps" / name)
        cmd = [str(BENCH_VENV / "bin/sam"), "build", "--template", "template.yaml"]
        if scenario in ("unchanged", "bump"):
            cmd.append("--cached")
        seconds, rss = timed(cmd, {"SAM_CLI_TELEMETRY": "0", "PIP_CACHE_DIR": str(state / "pip"),
                                   "npm_config_cache": str(state / "npm")}, cwd=project)
        return zipped(seconds, rss, project / ".aws-sam/build/Deps", work, self.wl.arch)


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
        shutil.copyfile(self.wl.source(scenario, spec_dir), project / "requirements.txt")
        if scenario == "warm":  # download cache kept, the finished zip forgotten
            shutil.rmtree(project / ".chalice/deployments", ignore_errors=True)
        out = work / "out"
        seconds, rss = timed([str(BENCH_VENV / "bin/chalice"), "package", str(out)],
                             {"PIP_CACHE_DIR": str(state / "pip"),
                              # it asks for a region even to package; nothing is deployed
                              "AWS_DEFAULT_REGION": "us-east-1"}, cwd=project)
        size, largest = check_zip(out / "deployment.zip", self.wl.arch)
        return Run(seconds, rss, size, largest)


class InContainer(Peer):
    """The installer in the local build image, a new container each time (no download cache)."""

    tool = ""

    @property
    def image(self) -> str:
        return LOCAL_IMAGE.format(runtime=self.wl.runtime, arch=self.wl.arch)

    @property
    def note(self) -> str:  # type: ignore[override]
        emulated = " under qemu" if UNAME_MACHINE[self.wl.arch] != platform.machine() else ""
        return (f"{self.tool} in the local {self.wl.runtime} {self.wl.arch} build image{emulated}, "
                f"a new container each time (no {self.tool} cache)")

    def missing(self) -> str | None:
        if shutil.which("docker") is None:
            return "docker is not on PATH"
        proc = subprocess.run(["docker", "image", "inspect", self.image], capture_output=True)
        return None if proc.returncode == 0 else f"image {self.image} is missing (`make images`)"

    def script(self) -> str:
        raise NotImplementedError

    def run(self, scenario: str, spec_dir: Path, state: Path, work: Path) -> Run:
        if scenario == "unchanged":
            raise Unavailable("has no cache of finished zips: the same as warm")
        (work / "layer").mkdir()
        cmd = ["docker", "run", "--rm", "--network", "host",
               "--platform", f"linux/{'arm64' if self.wl.arch == 'arm64' else 'amd64'}",
               "-v", f"{self.wl.spec(scenario, spec_dir)}:/src:ro",
               "-v", f"{work / 'layer'}:/out", "-v", f"{HOST_CA_BUNDLE}:/ca.pem:ro",
               "-e", "PIP_CERT=/ca.pem", "-e", "SSL_CERT_FILE=/ca.pem",
               "-e", "NODE_EXTRA_CA_CERTS=/ca.pem", "-e", "npm_config_cafile=/ca.pem",
               "-e", "npm_config_update_notifier=false", self.image,
               "sh", "-c", f"set -e; uname -m | grep -qx {UNAME_MACHINE[self.wl.arch]}; {self.script()}; "
               "chmod -R a+rwX /out"]
        seconds, _ = timed(cmd)  # the docker CLI's RSS says nothing about the build's
        run = zipped(seconds, float("nan"), work / "layer", work, self.wl.arch)
        with zipfile.ZipFile(work / "layer.zip") as zf:
            musl = sorted({n.split("/")[3] for n in zf.namelist()
                           if n.startswith("nodejs/node_modules/@img/") and "musl" in n})
        if musl:
            self.findings.add(f"the image's npm also installed {', '.join(musl)} (it does not "
                              "filter optional packages by libc), hence the bigger zip")
        return run


class PipInContainer(InContainer):
    name = "pip in a container (+ zip)"
    tool = "pip"

    def script(self) -> str:
        return "python3 -m pip install -q -r /src/requirements.txt -t /out/python"


class NpmInContainer(InContainer):
    name = "npm in a container (+ zip)"
    tool = "npm"

    def script(self) -> str:
        return ("mkdir -p /out/nodejs && cp /src/package.json /src/package-lock.json /out/nodejs/ "
                "&& cd /out/nodejs && npm ci --omit=dev --no-audit --no-fund "
                "&& rm package.json package-lock.json")


WORKLOADS = (
    Workload("python3.11-x86_64", "python3.11", "x86_64",
             "python3.11 x86_64: requests+pydantic+numpy+pandas", PY_BUMP,
             (ProjectPeer, UvZip, PipZip, Sam, Chalice, PipInContainer)),
    Workload("python3.11-arm64", "python3.11", "arm64",
             "python3.11 arm64: requests+pydantic+numpy+pandas", PY_BUMP,
             (ProjectPeer, UvZip, PipZip, Sam, PipInContainer),
             (("chalice package", "Chalice packages manylinux x86_64 wheels only; it has no "
               "architecture setting, so it cannot build an arm64 layer"),)),
    Workload("nodejs20.x-x86_64", "nodejs20.x", "x86_64", "nodejs20.x x86_64: sharp", NODE_BUMP,
             (ProjectPeer, NpmZip, Sam, NpmInContainer),
             (("chalice package", "Python only"),
              ("uv / pip", "Python installers"))),
)


def run_all(peers: list[Peer], spec_dir: Path, scratch: Path, repeat: int,
            progress: Callable[[str], None], label: str) -> dict[str, Result]:
    """Per repetition and method: cold (fresh caches), warm, unchanged, then bump."""
    results = {p.name: Result() for p in peers}
    for p in peers:
        reason = p.missing()
        if reason:
            results[p.name].unavailable = dict.fromkeys(SCENARIOS, reason)
            progress(f"{label} {p.name}: not run: {reason}")
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
                        progress(f"{label} [{rep}/{repeat}] {p.name} {scenario}: FAILED\n  {exc}")
                        continue
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    res.samples.setdefault(scenario, []).append(run)
                    progress(f"{label} [{rep}/{repeat}] {p.name} {scenario}: {run.seconds:.2f} s, "
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


def memory(results: dict[str, Result]) -> dict[str, float | bool] | None:
    """The issue's bound for the project's cold build: peak RSS < 2 x largest file + 200 MB."""
    cold = results[PROJECT].samples.get("cold", [])
    rss, largest = med(cold, "rss_mb"), med(cold, "largest_mb")
    if rss is None or largest is None:
        return None
    bound = 2 * largest + 200
    return {"peak_rss_mb": rss, "largest_file_mb": largest, "bound_mb": bound,
            "holds": rss < bound}


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
workloads = data["workloads"]
every = list(dict.fromkeys(m for wl in workloads for m in wl["medians"]))
colour = {m: plt.cm.tab10(i % 10) for i, m in enumerate(every)}  # one colour per method throughout
fig, axes = plt.subplots(len(workloads), 1, figsize=(13, 4.6 * len(workloads)), squeeze=False)
for ax, wl in zip(axes[:, 0], workloads):
    methods = list(wl["medians"])
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        values = [wl["medians"][m].get(s) or 0 for s in scenarios]
        bars = ax.bar([x + i * width for x in range(len(scenarios))], values, width, label=m,
                      color=colour[m])
        for b, v in zip(bars, values):
            if v:
                ax.annotate(f"{v:.1f}" if v >= 1 else f"{v:.2f}",
                            (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom",
                            fontsize=7)
    ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(scenarios))], scenarios)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median, log scale)")
    ax.set_title(wl["title"])
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
fig.suptitle(data["title"])
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
    p.add_argument("--workload", action="append", default=[],
                   help="run only workloads whose name contains this: "
                   + ", ".join(w.name for w in WORKLOADS) + " (all)")
    args = p.parse_args(argv)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    workloads = [w for w in WORKLOADS
                 if not args.workload or any(x in w.name for x in args.workload)]
    if not workloads:
        p.error("no workload matches --workload; there are " + ", ".join(w.name for w in WORKLOADS))
    if args.setup:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin/pip"), "install", "-q", "aws-sam-cli", "chalice",
                        "matplotlib"], check=True)
    started = time.perf_counter()
    sections, printed, data_workloads = [], [], []
    for wl in workloads:
        peers = [make(wl) for make in wl.peers]
        if args.only:
            peers = [x for x in peers if x.name == PROJECT or any(o in x.name for o in args.only)]
        with tempfile.TemporaryDirectory(prefix="pll-compare-", ignore_cleanup_errors=True) as tmp:
            scratch = Path(tmp)
            spec_note = wl.write_specs(scratch / "spec", progress)
            results = run_all(peers, scratch / "spec", scratch, args.repeat, progress, wl.name)
            project = next(x for x in peers if isinstance(x, ProjectPeer))
            fp_inner, fp_outer = project.fingerprint_ms(scratch / "spec", args.repeat)
        headers, rows = table(results)
        if wl.node:
            what = ", ".join(f"{k}@{v}" for k, v in NODE_PACKAGE["dependencies"].items())
        else:
            what = ", ".join(PY_WORKLOAD.split())
        notes = [f"workload: {wl.runtime} {wl.arch}, {what}; bump: {wl.bump[0]} -> {wl.bump[1]}"]
        if spec_note:
            notes.append(spec_note)
        mem = memory(results)
        if mem:
            notes.append(
                f"memory: the project's cold build peaked at {mem['peak_rss_mb']:.0f} MB RSS; "
                f"the bound is 2 x the largest file it packs ({mem['largest_file_mb']:.1f} MB) "
                f"+ 200 MB = {mem['bound_mb']:.0f} MB: "
                + ("holds" if mem["holds"] else "EXCEEDED"))
        notes.append(f"no-change fingerprint of the locked spec: {fp_inner:.1f} ms in process, "
                     f"{fp_outer:.0f} ms for `lambda-layers hash` as a new process")
        notes += [f"{x.name}: {x.note}" for x in peers if x.note]
        notes += [f"{x.name}: {f}" for x in peers for f in sorted(x.findings)]
        notes += [f"{name}: not run here: {why}" for name, why in wl.left_out]
        for name, res in results.items():
            for scenario, reason in res.unavailable.items():
                notes.append(f"{name}, {scenario}: {reason}")
        printed.append(f"== {wl.title}\n" + text(headers, rows) + "\n"
                       + "\n".join("* " + n for n in notes))
        print(printed[-1] + "\n", flush=True)
        sections.append(f"## {wl.title}\n\n" + markdown(headers, rows) + "\n\n"
                        + "\n".join("- " + n for n in notes) + "\n")
        data_workloads.append({
            "name": wl.name, "title": wl.title, "runtime": wl.runtime, "arch": wl.arch,
            "fingerprint_ms": [fp_inner, fp_outer], "memory": mem,
            "medians": {name: {s: med(res.samples.get(s, []), "seconds") for s in SCENARIOS}
                        for name, res in results.items()},
            "zip_mb": {name: med([r for runs in res.samples.values() for r in runs], "zip_mb")
                       for name, res in results.items()},
            "notes": notes})
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    common = [
        f"median of {args.repeat} run(s) per scenario; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load} at the end; whole run "
        f"{(time.perf_counter() - started) / 60:.1f} min",
        "cold: empty download caches and no project cache; warm: download caches (and the "
        "project's package packs) kept, finished zip dropped; unchanged: everything kept, same "
        "spec; bump: after those, one package changed; times include writing the zip",
        "project times are `lambda-layers build --builder local` as a new process (Python "
        "start-up included); ratios are method time / project time in the same scenario (above "
        "1 = slower than the project); peak RSS is of the cold build's largest process "
        "(`wait4`; MB = 10^6 bytes); every zip's native files are checked to be for the "
        "workload's architecture",
    ]
    if args.only or args.workload:
        common.append("partial run: " + " ".join(
            [*(f"--workload {w}" for w in args.workload), *(f"--only {o!r}" for o in args.only)]))
    print("\n".join("* " + n for n in common))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(
        "# Build speed: this project against its peers\n\n![chart](compare.png)\n\n"
        + "\n".join("- " + n for n in common) + "\n\n" + "\n".join(sections))
    data = {"title": "Lambda layer builds: this project against its peers",
            "scenarios": list(SCENARIOS), "workloads": data_workloads, "notes": common}
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

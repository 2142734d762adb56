"""Time one layer build, cold and warm, with plain pip, plain uv and this project's builders."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from uv import find_uv_bin

from pulumi_lambda_layers.build.pipeline import build_layer
from pulumi_lambda_layers.errors import LayerError
from pulumi_lambda_layers.runtimes import (UNAME_MACHINE, Architecture, Runtime, check_architecture,
                                            get_runtime)
from pulumi_lambda_layers.spec import make_spec

DEFAULT_REQUIREMENTS = "requests==2.32.3\nnumpy==1.26.4\n"
# No image registry is reachable from the dev machines: docker builds use the images that
# scripts/build-images.sh makes (`make images`), tagged like this.
LOCAL_IMAGE = "pulumi-lambda-layers-dev/{runtime}:{arch}"
# Same options as tests/conftest.py's docker_build_options(): the build container needs the host's
# network and CA bundle to reach the package index from these machines.
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BASELINE = "this project, builder=local"
MB = 1_000_000


@dataclass(frozen=True)
class Target:
    """What every method builds: one requirements file for one Lambda runtime and architecture."""

    runtime: Runtime
    arch: Architecture
    requirements: Path

    @property
    def uv_platform(self) -> str:
        """uv's --python-platform, the same one the project's local builder uses."""
        return self.runtime.manylinux_platform(self.arch)

    @property
    def pip_platform(self) -> str:
        """pip's --platform for the same glibc (manylinux2014 is pip's name for 2_17)."""
        machine = UNAME_MACHINE[self.arch]
        glibc = self.uv_platform.split("manylinux_", 1)[1]
        return f"manylinux2014_{machine}" if glibc == "2_17" else f"manylinux_{glibc}_{machine}"


@dataclass(frozen=True)
class DockerOptions:
    """Where and how the docker builder runs on this machine."""

    image: str
    network_mode: str | None
    ca_bundle: str | None


# A method builds the target's layer zip inside a work dir and returns the zip's size in bytes.
BuildFn = Callable[[Target, Path], int]


@dataclass(frozen=True)
class Method:
    """One way to build the layer, as it appears in the table."""

    name: str
    build: BuildFn
    note: str = ""


@dataclass
class Timings:
    """The samples one method collected; error is set when it failed (and then stopped running)."""

    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    zip_bytes: int | None = None
    error: str | None = None


# --- the methods ---------------------------------------------------------------------------------


def zip_dir(root: Path, out: Path) -> int:
    """Zip root as most hand-rolled scripts do: os.walk order, deflate level 6, no filtering."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                path = Path(folder, name)
                zf.write(path, path.relative_to(root).as_posix())
    return out.stat().st_size


def run_tool(cmd: list[str]) -> None:
    """Run an installer; on failure raise with the tail of its output, which names the cause."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:] or ["(no output)"]
        # The last line goes first too: the table's footnote shows only an error's first line.
        raise RuntimeError(f"{Path(cmd[0]).name} exited with {proc.returncode}: {tail[-1]}\n  "
                           + "\n  ".join(tail))


def build_with_pip(target: Target, work: Path) -> int:
    # `python/` is the folder the AWS docs tell hand-rolled layers to install into.
    site = work / "layer" / "python"
    run_tool([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "-r", str(target.requirements), "-t", str(site),
              "--platform", target.pip_platform, "--only-binary=:all:",
              "--python-version", target.runtime.version])
    return zip_dir(work / "layer", work / "layer.zip")


def build_with_uv(target: Target, work: Path) -> int:
    # The same uv binary the project runs, so the difference to the project is its own overhead.
    site = work / "layer" / "python"
    run_tool([find_uv_bin(), "pip", "install", "--quiet", "-r", str(target.requirements),
              "--target", str(site), "--python-platform", target.uv_platform,
              "--python-version", target.runtime.version])
    return zip_dir(work / "layer", work / "layer.zip")


def project_build(builder: str, docker: DockerOptions | None,
                  log: Callable[[str], None]) -> BuildFn:
    """A method that runs the whole pipeline: resolve, build, deterministic zip, validate."""

    def build(target: Target, work: Path) -> int:
        extra = {} if docker is None else {"image": docker.image,
                                            "network_mode": docker.network_mode,
                                            "ca_bundle": docker.ca_bundle}
        spec = make_spec(runtime=target.runtime.id, architecture=target.arch,
                         requirements=str(target.requirements), builder=builder, **extra)
        return build_layer(spec, work / "layer.zip", log=log).zip.zipped_size

    return build


def make_methods(docker: DockerOptions | None, log: Callable[[str], None]) -> list[Method]:
    methods = [
        Method("pip install -t + zipfile", build_with_pip,
               "pip compiles .pyc files by default and they end up in the zip"),
        Method("uv pip install --target + zipfile", build_with_uv),
        Method(BASELINE, project_build("local", None, log)),
    ]
    if docker is not None:
        methods.append(Method("this project, builder=docker", project_build("docker", docker, log),
                              "pip runs in a fresh container each time, so only the host-side "
                              "resolution (uv) has a warm cache; the image is always present"))
    return methods


# --- running -------------------------------------------------------------------------------------


CACHE_VARIABLES = {"PIP_CACHE_DIR": "pip", "UV_CACHE_DIR": "uv", "PLL_CACHE_DIR": "project"}


@contextmanager
def caches_in(cache: Path) -> Iterator[None]:
    """Point pip, uv (also when the project runs it) and the project's own cache (finished zips,
    packs, uv export answers) at cache, so 'cold' really starts empty and 'warm' keeps them."""
    saved = {key: os.environ.get(key) for key in CACHE_VARIABLES}
    for key, folder in CACHE_VARIABLES.items():
        os.environ[key] = str(cache / folder)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def timed_run(method: Method, target: Target, cache: Path, scratch: Path) -> tuple[float, int]:
    """Seconds and zip bytes of one build in a fresh work dir (deleted after, caches are not)."""
    work = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    try:
        with caches_in(cache):
            start = time.perf_counter()
            zip_bytes = method.build(target, work)
            return time.perf_counter() - start, zip_bytes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(methods: list[Method], target: Target, repeat: int, scratch: Path,
            progress: Callable[[str], None]) -> dict[str, Timings]:
    """Each repetition: every method cold (fresh cache), then warm (the cache that run left)."""
    results = {m.name: Timings() for m in methods}
    # Round-robin over the methods, so slow drift in background load hits all of them alike.
    for rep in range(1, repeat + 1):
        for method in methods:
            timings = results[method.name]
            if timings.error:
                continue
            cache = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
            try:
                for kind, samples in (("cold", timings.cold), ("warm", timings.warm)):
                    seconds, timings.zip_bytes = timed_run(method, target, cache, scratch)
                    samples.append(seconds)
                    progress(f"[{rep}/{repeat}] {method.name}: {kind} {seconds:.1f} s, "
                             f"{timings.zip_bytes / MB:.1f} MB")
            except (LayerError, RuntimeError, OSError) as exc:
                # Keep going with the other methods; the table shows this one as failed.
                timings.error = str(exc)
                progress(f"[{rep}/{repeat}] {method.name}: FAILED\n{exc}")
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    return results


# --- reporting -----------------------------------------------------------------------------------

HEADERS = ("method", "cold s", "warm s", "zip MB", "cold vs local", "warm vs local")


def median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def fmt_seconds(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def table_rows(results: dict[str, Timings]) -> list[tuple[str, ...]]:
    base = results[BASELINE]
    base_cold, base_warm = median(base.cold), median(base.warm)
    rows = []
    for name, t in results.items():
        cold, warm = median(t.cold), median(t.warm)
        if t.error:
            rows.append((name + " (FAILED)", *("-",) * 5))
            continue
        size = f"{t.zip_bytes / MB:.1f}" if t.zip_bytes is not None else "-"
        rows.append((name, fmt_seconds(cold), fmt_seconds(warm), size,
                     ratio(cold, base_cold), ratio(warm, base_warm)))
    return rows


def text_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in (HEADERS, *rows)) for i in range(len(HEADERS))]

    def line(cells: tuple[str, ...]) -> str:
        # Method names left-aligned, numbers right-aligned so their decimals line up.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(HEADERS), line(tuple("-" * w for w in widths)), *map(line, rows)])


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    head = "| " + " | ".join(HEADERS) + " |"
    rule = "|" + "|".join([":---", *["---:"] * (len(HEADERS) - 1)]) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in rows)])


def notes(target: Target, repeat: int, methods: list[Method], docker_skipped: bool,
          results: dict[str, Timings]) -> list[str]:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    out = [
        f"target: {target.runtime.id} {target.arch}, {target.requirements.name}: "
        + ", ".join(line.strip() for line in target.requirements.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")),
        f"median of {repeat} run(s); cold = empty pip/uv caches and project cache "
        "(PLL_CACHE_DIR), warm = the caches the cold run left; ratios are method time / this "
        "project's local builder time (below 1 = faster)",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load} at the end; "
        "timings are noisy when other work runs at the same time",
        "zip MB = compressed size of the layer zip (10^6 bytes)",
    ]
    out += [f"{m.name}: {m.note}" for m in methods if m.note]
    if docker_skipped:
        out.append("this project, builder=docker: skipped (--skip-docker)")
    out += [f"{name} failed: {t.error.splitlines()[0]}" for name, t in results.items() if t.error]
    return out


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requirements", type=Path, help="requirements file (default: "
                   + DEFAULT_REQUIREMENTS.strip().replace("\n", ", ") + ")")
    p.add_argument("--runtime", default="python3.11", help="Lambda Python runtime (python3.11)")
    p.add_argument("--arch", default="x86_64", help="x86_64 (default) or arm64")
    p.add_argument("--repeat", type=int, default=3, help="runs per method and cache state (3)")
    p.add_argument("--skip-docker", action="store_true", help="leave out the docker builder")
    p.add_argument("--image", help="docker build image (default: " + LOCAL_IMAGE + ")")
    p.add_argument("--network", default="host",
                   help="docker network mode for the build container (host)")
    p.add_argument("--ca-bundle", default=HOST_CA_BUNDLE,
                   help=f"extra CA bundle for the build container ({HOST_CA_BUNDLE}); '' for none")
    p.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    p.add_argument("--verbose", action="store_true", help="show the project's build log")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def make_target(args: argparse.Namespace, scratch: Path) -> Target:
    runtime = get_runtime(args.runtime)
    if runtime.language != "python":
        raise LayerError(f"--runtime: {runtime.id} is not a Python runtime; pip and uv only "
                         "install Python packages")
    arch = check_architecture(args.arch, "--arch")
    if args.requirements is None:
        requirements = scratch / "requirements.txt"
        requirements.write_text(DEFAULT_REQUIREMENTS)
    else:
        requirements = args.requirements.resolve()
        if not requirements.is_file():
            raise LayerError(f"--requirements: {requirements} does not exist")
    return Target(runtime, arch, requirements)


def docker_options(args: argparse.Namespace, target: Target) -> DockerOptions:
    """The docker settings, with the image checked now rather than after minutes of other builds."""
    import docker
    import docker.errors

    image = args.image or LOCAL_IMAGE.format(runtime=target.runtime.id, arch=target.arch)
    fix = "build it with `make images`, pass --image, or run with --skip-docker"
    try:
        docker.from_env().images.get(image)
    except docker.errors.ImageNotFound:
        raise LayerError(f"docker image {image} is not present; {fix}") from None
    except docker.errors.DockerException as exc:
        raise LayerError(f"no Docker engine answers ({exc}); start one with `make docker`, "
                         "or run with --skip-docker") from None
    return DockerOptions(image, args.network or None, args.ca_bundle or None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    build_log = (lambda msg: progress("    " + msg)) if args.verbose else (lambda msg: None)
    # Everything a run writes (layers, zips, caches) stays in here and goes away at the end.
    with tempfile.TemporaryDirectory(prefix="pll-bench-", ignore_cleanup_errors=True) as tmp:
        scratch = Path(tmp)
        try:
            target = make_target(args, scratch)
            docker = None if args.skip_docker else docker_options(args, target)
        except LayerError as exc:
            progress(f"build_speed: {exc}")
            return 2
        methods = make_methods(docker, build_log)
        results = run_all(methods, target, args.repeat, scratch, progress)
        rows = table_rows(results)
        footer = notes(target, args.repeat, methods, docker is None, results)
    print(text_table(rows))
    print("\n".join("* " + n for n in footer))
    if args.markdown:
        args.markdown.write_text(markdown_table(rows) + "\n\n"
                                 + "\n".join("- " + n for n in footer) + "\n")
        progress(f"markdown table written to {args.markdown}")
    return 1 if any(t.error for t in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

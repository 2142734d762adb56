"""Previews on the real engine: the layers of a program resolve at once, a second preview takes
every resolution from the memo (no index request), and the freshness switches work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject
from tests.local_index import LocalIndex, make_wheel, serve_index

LAYERS = 6
PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

for n in range(%d):
    layer = LambdaLayerBuild(f"deps{n}", runtime="python3.12",
                             requirements=f"layers/deps{n}/requirements.txt",
                             layer_name=f"e2e-memo-deps{n}", builder="local")
    pulumi.export(f"packages{n}", layer.packages)
''' % LAYERS


@pytest.fixture
def index(tmp_path: Path) -> Iterator[LocalIndex]:
    for n in range(LAYERS):
        make_wheel(tmp_path / "wheels", f"pll_e2e_{n}", "1.0")
    # Each index page takes 1.5 s, like a registry slow to answer metadata.
    with serve_index(tmp_path / "wheels", delay=1.5) as served:
        yield served


@pytest.fixture
def pulumi_extra_env(tmp_path: Path) -> dict[str, str]:
    return {"PLL_CACHE_DIR": str(tmp_path / "build-cache"),
            "UV_CACHE_DIR": str(tmp_path / "uv-cache")}


def _project(p: PulumiProject, index: LocalIndex) -> PulumiCLI:
    p.write("memo-e2e", PROGRAM)
    for n in range(LAYERS):
        folder = p.dir / "layers" / f"deps{n}"
        folder.mkdir(parents=True)
        (folder / "requirements.txt").write_text(f"--index-url {index.url}\npll-e2e-{n}\n")
    p.cli.stack_init("dev")
    return p.cli


def test_layers_resolve_at_once_and_a_second_preview_uses_the_memo(
        pulumi_project: PulumiProject, index: LocalIndex, tmp_path: Path) -> None:
    cli = _project(pulumi_project, index)

    # 1. First preview: every layer resolves against the index, at the same time.
    first = cli.preview(diff=True).stdout
    for n in range(LAYERS):
        assert f'pll-e2e-{n}: "1.0"' in first, first  # the packages input, shown by --diff
    pages = [p for p in index.log.paths if p.startswith("/simple/")]
    assert len(pages) == LAYERS, index.log.paths
    # One resolution after another would never have two 1.5 s page requests open at once.
    assert index.log.max_in_flight >= 2, index.log.paths

    # 2. Second preview, with uv offline and an empty uv cache, so uv could not resolve at all:
    #    it succeeds, plans the same creates, and the index sees no request.
    asked = index.log.count()
    offline = PulumiCLI(pulumi_project.dir, home=tmp_path / "pulumi", extra_env={
        **cli.env, "UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "empty-uv-cache")})
    assert offline.preview_changes().get("create") == LAYERS + 1
    assert index.log.count() == asked, index.log.paths[asked:]

    # 3. The switch forces fresh resolutions: offline they fail, against `requirements`.
    cli.config_set("lambda-layers:refreshResolution", "true")
    proc = offline.run("preview", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # The engine stops at the first failed check, of whichever layer resolved first.
    assert re.search(r"LambdaLayerBuild resource 'deps\d': property requirements value .* has a "
                     r"problem: requirements: could not resolve", text), text
    online = cli.preview_changes()
    assert online.get("create") == LAYERS + 1
    assert index.log.count() > asked, "refreshResolution resolved against the index"
    cli.run("config", "rm", "lambda-layers:refreshResolution")

    # 4. A max age of 0 resolves every time; then the memo is used again once it is removed.
    cli.config_set("lambda-layers:resolutionMaxAge", "0")
    asked = index.log.count()
    cli.preview()
    assert index.log.count() > asked
    cli.run("config", "rm", "lambda-layers:resolutionMaxAge")
    asked = index.log.count()
    assert offline.preview_changes().get("create") == LAYERS + 1
    assert index.log.count() == asked


def test_bad_freshness_config_fails_preview_against_the_property(
        pulumi_project: PulumiProject, index: LocalIndex) -> None:
    cli = _project(pulumi_project, index)
    cli.config_set("lambda-layers:resolutionMaxAge", "soon")
    proc = cli.run("preview", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    line = re.search(r"LambdaLayerBuild resource 'deps\d': property resolution_max_age .*has a "
                     r"problem: (.*)", text)
    assert line, text
    assert "lambda-layers:resolutionMaxAge: 'soon' is not a duration" in line.group(1)
    assert "'1h'" in line.group(1), "the fix is named"
    assert "Traceback" not in text, text
    assert index.log.count() == 0, "nothing is resolved with a bad freshness rule"

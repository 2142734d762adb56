"""`make demo`'s script, so CI keeps the main job working: every step it checks must hold."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_tells_the_whole_story() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_", "PLL_"))}
    env["PLL_DEV_CACHE"] = os.environ.get("PLL_DEV_CACHE",
                                          str(Path.home() / ".cache/pulumi-lambda-layers-dev"))
    proc = subprocess.run(["bash", str(ROOT / "scripts/demo.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r'~ six +: "1\.16\.0" => "1\.17\.0"', out), out[-4000:]
    for shown in ("deleted demo-numpy:1", "0 stale", "demo passed in"):
        assert shown in out, (shown, out[-4000:])
    assert out.count("   ok: ") >= 5, out[-4000:]

"""Many layer creates at once in one fresh provider process, on a cold cache, never fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3

from pulumi_lambda_layers.resources import program_time_fingerprint
from tests.conftest import write

# Distinct tiny pure-Python wheels: twelve layers of different content that build in seconds.
PINS = ("six==1.16.0", "idna==3.7", "toml==0.10.2", "iniconfig==2.0.0", "pluggy==1.5.0",
        "tomli==2.0.1", "typing_extensions==4.12.2", "zipp==3.19.2", "jmespath==1.0.1",
        "pycparser==2.22", "more-itertools==10.3.0", "packaging==24.1")
# The target: 10 of 10 cold first ups succeed.
RUNS = 10

# What the dynamic provider process does during a first `pulumi up`: a fresh interpreter (so
# sysconfig and every lazy import are cold) running the creates in threads, all at once.
CREATES = """
import json, sys, threading, traceback
from concurrent.futures import ThreadPoolExecutor
from pulumi_lambda_layers.resources import LayerBuildProvider

all_props = json.load(sys.stdin)
start = threading.Barrier(len(all_props))

def create(props):
    start.wait()
    try:
        return {"version": LayerBuildProvider().create(props).outs["version"]}
    except BaseException:
        return {"error": traceback.format_exc()}

with ThreadPoolExecutor(len(all_props)) as pool:
    print(json.dumps(list(pool.map(create, all_props))))
"""


def _props(tmp_path: Path) -> list[dict[str, Any]]:
    """Resource inputs as LambdaLayerBuild makes them at program time, one layer per pin."""
    made = []
    for i, pin in enumerate(PINS):
        lock = write(tmp_path / f"layer{i}" / "requirements.lock", pin + "\n")
        content_hash, packages, build, errors = program_time_fingerprint(
            {"runtime": "python3.11", "architecture": "x86_64", "lock": str(lock),
             "builder": "local"})
        assert errors == [], errors
        made.append({"content_hash": content_hash, "packages": packages,
                     "runtime": "python3.11", "architecture": "x86_64",
                     "layer_name": f"pll-threads-{i}", "description": "thread safety",
                     "share_with": [], "retain_versions": 0, "retain_on_delete": False,
                     "build": build})
    assert len({p["content_hash"] for p in made}) == len(PINS)
    return made


def test_concurrent_creates_on_a_cold_cache_in_one_process(aws_env: str, tmp_path: Path) -> None:
    props = _props(tmp_path)
    lam = boto3.client("lambda")
    for run in range(RUNS):
        tag = uuid.uuid4().hex[:8]
        named = [{**p, "layer_name": f"{p['layer_name']}-{tag}"} for p in props]
        # A new cache folder per run: every create builds (zips and per-package packs are cold).
        # One build slot per layer, so all of them overlap here as on a machine with many cores.
        env = {**os.environ, "PLL_CACHE_DIR": str(tmp_path / f"cache-{run}"),
               "PLL_PARALLEL_BUILDS": str(len(props))}
        proc = subprocess.run([sys.executable, "-c", CREATES], input=json.dumps(named),
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, f"run {run}: the provider process failed:\n{proc.stderr[-4000:]}"
        results = json.loads(proc.stdout)
        failed = [r["error"] for r in results if "error" in r]
        assert not failed, f"run {run}: {len(failed)} of {len(props)} creates failed:\n{failed[0]}"
        assert [r["version"] for r in results] == [1] * len(props)
        for p in named:
            live = lam.list_layer_versions(LayerName=p["layer_name"])["LayerVersions"]
            assert [v["Version"] for v in live] == [1], p["layer_name"]


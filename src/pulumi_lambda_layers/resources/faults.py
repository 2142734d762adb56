"""For tests only: a point where a deploy hangs on request, so a test can kill it at a known step."""

from __future__ import annotations

from pulumi_lambda_layers.resources.common import log


def fault_point(name: str) -> None:
    """Hang here when PLL_FAULT_INJECT names this point: lets tests kill a deploy at a known step."""
    import os
    import time

    if os.environ.get("PLL_FAULT_INJECT") == name:
        log(f"fault injection: hanging at {name}")
        engine = os.getppid()
        while os.getppid() == engine:  # until the engine is killed; then leave no orphan behind
            time.sleep(0.1)
        os._exit(1)

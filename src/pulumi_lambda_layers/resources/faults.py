"""For tests only: a point where a deploy hangs on request, so a test can kill it at a known step."""

from __future__ import annotations

from pulumi_lambda_layers.aws import functions as _functions
from pulumi_lambda_layers.log import emit as log


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


# aws/ must not import the Pulumi glue: its points ("between-functions" in the re-point) call a
# hook, which the providers' import of this module points here.
_functions.fault_hook = fault_point

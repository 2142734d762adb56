"""The floor under bench/stack.py: previews of N no-op Pulumi dynamic resources beside the empty program.

What a Python dynamic provider costs by itself (its host process, one check and diff per
resource), with no code of this project in it; run: .venv/bin/python bench/dynamic_floor.py
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.pulumi_harness import PulumiCLI, write_python_project
from tests.moto_cross_account import start_cross_account_moto
PROG = '''
import pulumi
from pulumi.dynamic import ResourceProvider, CreateResult, Resource
class P(ResourceProvider):
    def create(self, props):
        return CreateResult("x", props)
class R(Resource, module="t", name="R"):
    pass
for i in range({n}):
    R(P(), f"r{{i}}", {{"v": i}})
'''
EMPTY = "import pulumi\n"
with start_cross_account_moto() as moto:
    for label, main in (("empty", EMPTY), ("1 trivial dynamic", PROG.format(n=1)), ("50 trivial dynamic", PROG.format(n=50))):
        times = []
        for _ in range(3):
            d = Path(tempfile.mkdtemp())
            write_python_project(d / "p", "trivial", main)
            cli = PulumiCLI(d / "p", home=d / "home", extra_env={"AWS_ENDPOINT_URL": moto.url})
            cli.stack_init("dev")
            t = time.monotonic(); cli.run("preview"); times.append(time.monotonic() - t)
        print(f"{label}: preview {statistics.median(times):.2f} s")

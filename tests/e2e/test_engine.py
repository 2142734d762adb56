"""The real Pulumi engine runs a Python dynamic resource through create, no-op preview, update and destroy."""

from __future__ import annotations

import sys

from tests.e2e.pulumi_harness import PulumiProject

# The provider reports its interpreter's prefix so the test proves it ran in this venv, not the system python.
PROGRAM = '''
import sys

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


def _outs(text):
    return {"text": text, "loud": text.upper() + "!", "provider_prefix": sys.prefix}


class ShoutProvider(ResourceProvider):
    def create(self, props):
        return CreateResult(id_="shout-" + props["text"], outs=_outs(props["text"]))

    def diff(self, _id, olds, news):
        return DiffResult(changes=olds["text"] != news["text"], replaces=[])

    def update(self, _id, olds, news):
        return UpdateResult(outs=_outs(news["text"]))


class Shout(Resource):
    loud: pulumi.Output[str]
    provider_prefix: pulumi.Output[str]

    def __init__(self, name, text):
        super().__init__(ShoutProvider(), name, {"text": text, "loud": None, "provider_prefix": None})


shout = Shout("greeting", pulumi.Config().require("text"))
pulumi.export("id", shout.id)
pulumi.export("loud", shout.loud)
pulumi.export("provider_prefix", shout.provider_prefix)
pulumi.export("program_prefix", sys.prefix)
'''


def test_dynamic_resource_lifecycle(pulumi_project: PulumiProject) -> None:
    cli = pulumi_project.cli
    pulumi_project.write("engine-e2e", PROGRAM)
    cli.stack_init("dev")
    cli.config_set("text", "hello")

    cli.up()
    assert cli.outputs() == {
        "id": "shout-hello",
        "loud": "HELLO!",
        "provider_prefix": sys.prefix,
        "program_prefix": sys.prefix,
    }

    changes = cli.preview_changes()
    assert set(changes) == {"same"}, f"expected a no-op preview, got {changes}"

    cli.config_set("text", "bye")
    assert cli.preview_changes().get("update") == 1
    cli.up()
    outputs = cli.outputs()
    # Same id: the provider's update ran in place rather than a replace.
    assert (outputs["id"], outputs["loud"]) == ("shout-hello", "BYE!")

    cli.destroy()
    assert cli.resources() == []
    assert cli.outputs() == {}

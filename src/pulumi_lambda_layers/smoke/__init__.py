"""Smoke tests: import a layer's packages (and call a handler) in a Lambda-like container."""

from pulumi_lambda_layers.errors import SmokeError
from pulumi_lambda_layers.smoke.discover import layer_imports
from pulumi_lambda_layers.smoke.result import SmokeResult
from pulumi_lambda_layers.smoke.run import smoke_test
from pulumi_lambda_layers.smoke.stage import lambda_environment

__all__ = ["SmokeError", "SmokeResult", "lambda_environment", "layer_imports", "smoke_test"]

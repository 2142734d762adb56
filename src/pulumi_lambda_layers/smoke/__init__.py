"""Smoke tests: import a layer's packages (and call a handler) in a Lambda-like container."""

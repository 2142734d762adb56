"""Where the external tools live: uv (shipped as a Python package) and npm (from the machine)."""

from __future__ import annotations

import shutil

from .errors import BuildError


def uv_command() -> list[str]:
    """The uv executable; it comes with the `uv` dependency, so it is always there."""
    from uv import find_uv_bin

    return [find_uv_bin()]


def npm_command() -> list[str]:
    """npm from PATH, or a BuildError that says how to get it."""
    npm = shutil.which("npm")
    if not npm:
        raise BuildError("npm", "npm is not on PATH",
                         fix="install Node.js and npm, or use builder='docker'")
    return [npm]

"""Where the external tools live: uv (shipped as a Python package) and npm (from the machine)."""

from __future__ import annotations

import shutil
import sysconfig
import threading

from pulumi_lambda_layers.errors import BuildError

# sysconfig fills its variables on first use without a lock: a thread reading them meanwhile gets
# None (uv's find_uv_bin then fails with a TypeError). Fill them here, at import, before the
# provider's build threads run; the lock below covers a thread that imports this module late.
sysconfig.get_config_vars()

_lock = threading.Lock()
_found: dict[str, str] = {}  # tool -> path, resolved once per process (builds run in threads)


def uv_command() -> list[str]:
    """The uv executable; it comes with the `uv` dependency, so it is always there."""
    with _lock:
        if "uv" not in _found:
            from uv import find_uv_bin

            _found["uv"] = find_uv_bin()
        return [_found["uv"]]


def npm_command() -> list[str]:
    """npm from PATH, or a BuildError that says how to get it."""
    with _lock:
        # Only a found npm is kept: installing Node.js while a process runs is then noticed.
        if "npm" not in _found and (npm := shutil.which("npm")):
            _found["npm"] = npm
        npm = _found.get("npm")
    if not npm:
        raise BuildError("npm", "npm is not on PATH",
                         fix="install Node.js and npm, or use builder='docker'")
    return [npm]

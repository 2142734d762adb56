"""Resolution memo: the pins `uv pip compile` gave for the same inputs, reused while fresh."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pulumi_lambda_layers.atomic import write_atomic
from pulumi_lambda_layers.errors import SpecError

# One hour: a preview loop (edit, preview, edit, preview) pays one resolution per layer per hour,
# while a release published upstream reaches the diff the same working day. Pinned sources
# (lock=) never use the memo, so the trade-off only touches requirements= layers.
DEFAULT_MAX_AGE = 3600.0
MAX_AGE_ARGUMENT = "resolution_max_age"
CONFIG_MAX_AGE = "lambda-layers:resolutionMaxAge"
CONFIG_REFRESH = "lambda-layers:refreshResolution"
MAX_AGE_FIX = ("give seconds (0 = always resolve) or a duration like '90s', '30m', '1h', '2d'")
# Bump when the key or the entry format changes: old entries are then simply never found.
_MEMO_FORMAT = 1

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
_FIND_LINKS = ("-f", "--find-links")
# uv settings that change how (or whether) uv reaches the index, never which versions it picks:
# leaving them out lets UV_OFFLINE=1 or another cache dir still find the memo.
_UV_ENV_IGNORED = {"UV_CACHE_DIR", "UV_OFFLINE", "UV_NO_CACHE", "UV_NO_PROGRESS",
                   "UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_NATIVE_TLS", "UV_LINK_MODE",
                   "UV_CONCURRENT_DOWNLOADS", "UV_CONCURRENT_BUILDS", "UV_CONCURRENT_INSTALLS",
                   "UV_KEYRING_PROVIDER", "UV_REQUEST_TIMEOUT"}


@dataclass(frozen=True)
class Freshness:
    """How old a memo entry may be and still be used instead of asking the index again."""

    max_age: float = DEFAULT_MAX_AGE  # seconds; 0 resolves every time
    refresh: bool = False  # resolve now whatever the age; the new result replaces the entry

    def reuses(self, age: float) -> bool:
        # A negative age (clock moved back, an entry from another machine's future) is not fresh.
        return not self.refresh and 0 <= age < self.max_age


def parse_max_age(value: object, argument: str = MAX_AGE_ARGUMENT) -> float:
    """Seconds from a number or a duration string ('90s', '30m', '1h', '2d'); SpecError otherwise."""
    if isinstance(value, bool):
        raise SpecError(argument, f"expected a duration, got {value!r}", MAX_AGE_FIX)
    if isinstance(value, (int, float)):
        if value < 0 or value != value:  # NaN compares unequal to itself
            raise SpecError(argument, f"expected a duration >= 0, got {value!r}", MAX_AGE_FIX)
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise SpecError(argument, f"{value!r} is not a duration", MAX_AGE_FIX)
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def parse_switch(value: object, argument: str = CONFIG_REFRESH) -> bool:
    """true/false (also yes/no, 1/0, on/off) from a config string or a bool; SpecError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise SpecError(argument, f"{value!r} is not true or false",
                    f"`pulumi config set {argument} true` to force a fresh resolution, "
                    f"`pulumi config rm {argument}` to go back to the memo")


def strip_credentials(text: str) -> str:
    """The text with every user:password@ (or token@) of a URL removed."""
    return _USERINFO.sub(r"\1", text)


def memo_key(requirements: Path, options: Sequence[str], uv_identity: str,
             env: Mapping[str, str]) -> str | None:
    """sha256 over everything that decides what `uv pip compile requirements options` prints;
    None when a part of that cannot be read cheaply (a local path requirement, a URL include)."""
    files: list[list[str]] = []
    find_links: list[Path] = []
    if not _read_tree(requirements, requirements.parent, env, files, find_links, set()):
        return None
    parts = {
        "format": _MEMO_FORMAT,
        "files": files,
        "find_links": [_listing(folder) for folder in find_links],
        "options": [strip_credentials(o) for o in options],
        "uv": uv_identity,
        "uv_env": sorted((k, strip_credentials(v)) for k, v in env.items()
                         if k.startswith("UV_") and k not in _UV_ENV_IGNORED
                         and not k.endswith(("_PASSWORD", "_USERNAME", "_TOKEN"))),
        "uv_config": _uv_config(requirements.parent, env),
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _read_tree(path: Path, root: Path, env: Mapping[str, str], files: list[list[str]],
               find_links: list[Path], seen: set[Path]) -> bool:
    """Append (name relative to root, text without credentials) of path and every -r/-c file it
    names, in order; False when the result also depends on something not hashed here."""
    real = path.resolve()
    if real in seen:
        return True
    seen.add(real)
    try:
        text = path.read_text()
    except OSError:
        return False
    # uv expands ${VAR} in requirements files: the value decides the result, not the placeholder.
    expanded = _ENV_REF.sub(lambda m: env.get(m.group(1), ""), text)
    files.append([os.path.relpath(path, root), strip_credentials(expanded)])
    for line in _lines(expanded):
        flag, _, value = line.partition(" ")
        if "=" in flag and flag.startswith("-"):  # --requirement=x, -r=x: as pip reads them
            flag, _, value = flag.partition("=")
        value = value.strip()
        if flag in _INCLUDES:
            if "://" in value:
                return False
            if not _read_tree(path.parent / value, root, env, files, find_links, seen):
                return False
        elif flag in _FIND_LINKS and "://" not in value:
            find_links.append(path.parent / value)
        elif not line.startswith("-") and _is_local_path(line):
            return False  # a local project's own metadata decides its dependencies
    return True


def _lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for raw in joined.splitlines():
        line = " ".join(re.sub(r"(^|\s)#.*$", "", raw).split())
        if line:
            out.append(line)
    return out


def _is_local_path(line: str) -> bool:
    req = line.split(";")[0].strip()
    target = req.split("@", 1)[1].strip() if " @ " in req or "@ " in req else req
    return target.startswith(("file:", ".", "/", "~"))


def _listing(folder: Path) -> list[list[object]]:
    """A --find-links folder's files by name, size and mtime: a new wheel there is a new key."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [[e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in entries if e.is_file()]


def _uv_config(start: Path, env: Mapping[str, str]) -> list[str]:
    """Texts of the uv configuration files uv would read from start: UV_CONFIG_FILE, else the
    nearest project uv.toml / pyproject.toml with [tool.uv], plus the user and system uv.toml."""
    if env.get("UV_NO_CONFIG"):
        return []
    if env.get("UV_CONFIG_FILE"):
        candidates = [Path(env["UV_CONFIG_FILE"])]
    else:
        candidates = []
        for folder in (start.resolve(), *start.resolve().parents):
            if (folder / "uv.toml").is_file():
                candidates.append(folder / "uv.toml")
                break
            project = folder / "pyproject.toml"
            if project.is_file() and "[tool.uv" in project.read_text(errors="replace"):
                candidates.append(project)
                break
        home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
        candidates += [Path(home) / "uv" / "uv.toml", Path("/etc/uv/uv.toml")]
    texts = []
    for candidate in candidates:
        try:
            texts.append(strip_credentials(candidate.read_text()))
        except OSError:
            texts.append("")
    return texts


def entry_path(key: str) -> Path:
    """Where the memo entry of a key lives (it may not exist)."""
    from pulumi_lambda_layers.build.cache import cache_dir

    return cache_dir() / "resolutions" / f"{key}.json"


def lookup(key: str, freshness: Freshness, now: float) -> str | None:
    """The memoized `uv pip compile` output for key, if the entry is there, whole and fresh."""
    try:
        entry = json.loads(entry_path(key).read_text())
        resolved_at, text = float(entry["resolved_at"]), entry["output"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, or torn by a crash: resolve again and rewrite it
    if not isinstance(text, str) or not freshness.reuses(now - resolved_at):
        return None
    return text


def store(key: str, output: str, now: float) -> None:
    """Keep output under key; atomic, so a concurrent reader sees the old entry or the new one."""
    # A temp file per writer: two threads (or processes) resolving the same key never share one.
    write_atomic(entry_path(key), json.dumps({"resolved_at": now, "output": output}).encode())


def resolve(requirements: Path, options: Sequence[str], uv_identity: str,
            run: Callable[[], str], freshness: Freshness | None = None,
            env: Mapping[str, str] | None = None,
            clock: Callable[[], float] = time.time) -> str:
    """run()'s output (a fresh resolution), or the memoized one of the same inputs while fresh."""
    freshness = freshness or Freshness()
    key = memo_key(requirements, options, uv_identity, os.environ if env is None else env)
    if key is not None:
        memo = lookup(key, freshness, clock())
        if memo is not None:
            return memo
    output = run()
    if key is not None:
        store(key, output, clock())
    return output

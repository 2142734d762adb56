"""A package's license from its own metadata, in SPDX form where it can be, and the deny policy."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_lambda_layers.errors import SpecError

# Short License: values seen in the wild that name one SPDX license without saying it in SPDX.
_ALIASES = {
    "apache 2": "Apache-2.0", "apache 2.0": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0", "apache license version 2.0": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0", "asl 2.0": "Apache-2.0",
    "mit license": "MIT", "the mit license": "MIT", "expat": "MIT",
    "bsd 3-clause": "BSD-3-Clause", "3-clause bsd": "BSD-3-Clause", "new bsd": "BSD-3-Clause",
    "bsd 3-clause license": "BSD-3-Clause", "modified bsd": "BSD-3-Clause",
    "bsd 2-clause": "BSD-2-Clause", "simplified bsd": "BSD-2-Clause", "isc license": "ISC",
    "mpl 2.0": "MPL-2.0", "psf": "PSF-2.0", "psfl": "PSF-2.0",
    "python software foundation license": "PSF-2.0", "unlicense": "Unlicense",
}
# Trove classifiers (after "License :: OSI Approved :: ") that name exactly one SPDX license.
# "BSD License", "Apache Software License" or "GNU General Public License v3 (GPLv3)" name a
# family, not a license: they stay names (and the deny policy matches them by family below).
_CLASSIFIERS = {
    "MIT License": "MIT", "MIT No Attribution License (MIT-0)": "MIT-0", "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "Python Software Foundation License":
    "PSF-2.0", "The Unlicense (Unlicense)": "Unlicense", "Boost Software License 1.0 (BSL-1.0)":
    "BSL-1.0", "zlib/libpng License": "Zlib", "European Union Public Licence 1.2 (EUPL 1.2)":
    "EUPL-1.2", "Universal Permissive License (UPL)": "UPL-1.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}
# Family of a classifier name: what a denied SPDX id of that family matches.
_NAME_FAMILIES = (
    (re.compile(r"Affero General Public License v3"), "AGPL-3.0"),
    (re.compile(r"Lesser General Public License v3|LGPLv3"), "LGPL-3.0"),
    (re.compile(r"Lesser General Public License v2|LGPLv2"), "LGPL-2.1"),
    (re.compile(r"(?<!Lesser )(?<!Affero )General Public License v3 \(GPLv3\)"), "GPL-3.0"),
    (re.compile(r"(?<!Lesser )(?<!Affero )General Public License v2 \(GPLv2\)"), "GPL-2.0"),
)


@dataclass(frozen=True)
class License:
    """What a package says it is licensed under: an SPDX expression, else a free-text name, else
    nothing (unknown); `source` is the metadata field it came from."""

    expression: str | None = None
    name: str | None = None
    source: str = ""

    @property
    def text(self) -> str:
        return self.expression or self.name or "unknown"

    @property
    def known(self) -> bool:
        return self.expression is not None


def spdx(text: str) -> str | None:
    """The SPDX expression `text` is (normalised: `mit` -> `MIT`), else None."""
    from license_expression import ExpressionError

    try:
        parsed = _licensing().parse(text, validate=True, strict=True)
    except (ExpressionError, ValueError, TypeError, AttributeError):
        return None
    return None if parsed is None else str(parsed.render())


@functools.lru_cache(maxsize=1)
def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def python_license(expression: str | None, license_field: str | None,
                   classifiers: Iterable[str]) -> License:
    """From a METADATA's License-Expression (PEP 639), then License, then the classifiers."""
    if expression and expression.strip():
        found = spdx(expression.strip())
        return License(found, None if found else expression.strip(), "License-Expression")
    field = (license_field or "").strip()
    one_line = field if field and "\n" not in field and len(field) <= 100 and \
        not field.lower().startswith(("copyright", "unknown", "none")) else ""
    if one_line:
        found = spdx(one_line) or _ALIASES.get(one_line.lower())
        if found:
            return License(found, None, "License")
    names = [c.split("::")[-1].strip() for c in classifiers
             if c.startswith("License ::") and c.count("::") >= 2]
    mapped = sorted({_CLASSIFIERS[n] for n in names if n in _CLASSIFIERS})
    if names and len(mapped) == 1 and len(names) == 1:
        return License(mapped[0], None, "classifier")
    if names:
        return License(None, "; ".join(sorted(set(names))), "classifier")
    if one_line:
        return License(None, one_line, "License")
    return License()


def node_license(manifest: dict[str, Any]) -> License:
    """From a package.json: "license" (an SPDX expression), or the old {"type": ...} forms."""
    value = manifest.get("license")
    if isinstance(value, dict):
        value = value.get("type")
    if not value and isinstance(manifest.get("licenses"), list):
        types = [str(x.get("type")) for x in manifest["licenses"]
                 if isinstance(x, dict) and x.get("type")]
        value = " OR ".join(types) if types else None
    if not isinstance(value, str) or not value.strip():
        return License()
    found = spdx(value.strip())
    return License(found, None if found else value.strip(), "package.json")


# --- the deny policy -------------------------------------------------------------------------

def _family(key: str) -> str:
    """GPL-3.0-only, GPL-3.0-or-later, GPL-3.0+ and GPL-3.0 are one family for the policy: a
    team that denies one of them means the license, not the spelling of its version clause."""
    return re.sub(r"(-only|-or-later|\+)$", "", key).lower()


@dataclass(frozen=True)
class Policy:
    """deny_licenses, parsed: single ids (matched by family) and whole expressions (matched as
    written, after normalising)."""

    ids: frozenset[str]
    expressions: frozenset[str]
    given: tuple[str, ...]

    def denies(self, license: License) -> bool:
        if license.expression is not None:
            return self._denied(_licensing().parse(license.expression))
        if license.name:
            return any(pattern.search(license.name) and family.lower() in self.ids
                       for pattern, family in _NAME_FAMILIES)
        return False

    def _denied(self, node: Any) -> bool:
        from license_expression import AND, OR, LicenseWithExceptionSymbol

        if str(node.render()).lower() in self.expressions:
            return True
        if isinstance(node, AND):
            return any(self._denied(arg) for arg in node.args)
        if isinstance(node, OR):  # a choice: denied only when every choice is
            return all(self._denied(arg) for arg in node.args)
        if isinstance(node, LicenseWithExceptionSymbol):
            node = node.license_symbol
        return _family(str(node.key)) in self.ids


def deny_policy(entries: Sequence[str] | None, argument: str = "deny_licenses") -> Policy:
    """The policy of deny_licenses; a SpecError naming `argument` for one that is not SPDX."""
    ids: set[str] = set()
    expressions: set[str] = set()
    for entry in entries or ():
        found = spdx(entry.strip()) if isinstance(entry, str) else None
        if found is None:
            raise SpecError(argument, f"{entry!r} is not an SPDX license id or expression",
                            "use ids from https://spdx.org/licenses/, e.g. GPL-3.0-only or "
                            "\"AGPL-3.0-only OR SSPL-1.0\"")
        _collect(_licensing().parse(found), ids, expressions)
    return Policy(frozenset(ids), frozenset(expressions), tuple(entries or ()))


def _collect(node: Any, ids: set[str], expressions: set[str]) -> None:
    """An entry "A OR B" denies A and B; "A AND B" and "A WITH X" are denied as written."""
    from license_expression import OR, LicenseSymbol, LicenseWithExceptionSymbol

    if isinstance(node, OR):
        for arg in node.args:
            _collect(arg, ids, expressions)
    elif isinstance(node, LicenseSymbol) and not isinstance(node, LicenseWithExceptionSymbol):
        ids.add(_family(str(node.key)))
    else:
        expressions.add(str(node.render()).lower())

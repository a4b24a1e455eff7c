"""Leaf value checking, delegated to the types pyang compiled from the module.

Ranges, lengths, patterns (XSD regex, the same dialect yanglint uses),
enumerations and unions all come from pyang's type objects, so no restriction
of the module is written again in Python.  Only the lexical form of numbers
is checked here: pyang reads "0x10" and "010" as module literals, which are
not valid instance values (RFC 7950 §9.2.1).
"""

from __future__ import annotations

import re
import threading
from typing import Any

_INT = re.compile(r"[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\Z")
_INT_TYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
_NUMERIC = _INT_TYPES | {"decimal64"}
_XML_SPACE = " \t\r\n"
_CACHE_LIMIT = 4096
_MAX_NUMBER = 64
"""Characters of a numeric value beyond which it cannot be in any range
(uint64 has 20 digits, decimal64 19 plus sign and point)."""
_MAX_PATTERN_INPUT = 4096
"""Longest value a pattern is run on when the type states no length: the
patterns of a module are client-independent, but Python's regex engine can
still take super-linear time on some; no value of our modules' unbounded
pattern types (addresses, dates, identifiers) comes near this."""
_SHOW = 64
"""Characters of a value quoted in a message; a 1 MB value is not echoed whole."""


def show(text: str) -> str:
    """``text`` quoted for a message, shortened when long."""
    if len(text) <= _SHOW:
        return f'"{text}"'
    return f'"{text[:_SHOW]}..." ({len(text)} characters)'


def _base_name(spec: Any) -> str:
    return str(getattr(spec, "name", ""))


def _typedef_names(type_stmt: Any) -> set[str]:
    """The names of the typedef chain of a type statement, without prefixes."""
    names: set[str] = set()
    stmt = type_stmt
    while stmt is not None and len(names) < 32:
        names.add(str(stmt.arg).split(":")[-1])
        typedef = getattr(stmt, "i_typedef", None)
        stmt = typedef.search_one("type") if typedef is not None else None
    return names


class LeafType:
    """The type of one leaf or leaf-list, as compiled by pyang."""

    def __init__(self, type_stmt: Any, module_stmt: Any) -> None:
        self._spec = type_stmt.i_type_spec
        self._module = module_stmt
        self.base = _base_name(self._spec)
        self.name = str(type_stmt.arg)
        self.restriction = describe(type_stmt)
        self.leafref_path: str | None = None
        self.require_instance = True
        if self.base == "leafref" or hasattr(self._spec, "path_"):
            self.base = "leafref"
            path_stmt = getattr(self._spec, "path_", None)
            self.leafref_path = None if path_stmt is None else str(path_stmt.arg)
            self.require_instance = bool(getattr(self._spec, "require_instance", True))
            target = getattr(self._spec, "i_target_node", None)
            self.target_base = (
                _base_name(target.search_one("type").i_type_spec) if target is not None else ""
            )
            if target is not None:
                self.restriction = describe(target.search_one("type"))
        else:
            self.target_base = self.base
        self.prefixed = self.base in ("identityref", "instance-identifier") or (
            "xpath1.0" in _typedef_names(type_stmt)
        )
        """Values name schema nodes with XML namespace prefixes (RFC 7950
        §9.10.3, §9.13.2, yang:xpath1.0): the codec maps them to module prefixes."""
        self.enums: tuple[str, ...] = tuple(
            str(name) for name, _ in getattr(_innermost(self._spec), "enums", [])
        )
        self._max_length = _max_length(self._spec)
        """No valid value is longer (None: numbers and types without patterns)."""
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def check(self, text: str) -> str | None:
        """Return why ``text`` is not a valid value, or None when it is."""
        # a dict read is atomic: no lock for a hit (190 000 leaves checked
        # at 10 000 channels), only to change the cache
        try:
            return self._cache[text]
        except KeyError:
            pass
        result = self._check(text)
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = result
        return result

    def _check(self, text: str) -> str | None:
        base = self.target_base
        if base in _NUMERIC:
            # numbers may carry XML white space around them (libyang agrees)
            text = text.strip(_XML_SPACE)
        if base in _INT_TYPES and not _INT.match(text):
            return f"{show(text)} is not an integer"
        if base in _NUMERIC and len(text) > _MAX_NUMBER:
            # no int64 needs more digits; int() of a huge string is slow
            # (and refused past 4300 digits)
            return f"{show(text)} is out of range for {self.name}"
        if base == "decimal64" and not _DECIMAL.match(text):
            return f"{show(text)} is not a decimal number"
        if base == "empty":
            return None if text == "" else "an empty leaf takes no value"
        if self._max_length is not None and len(text) > self._max_length:
            # RFC 7950 §9.4.4 before §9.4.5: the length is checked first, so
            # no pattern ever runs on a value that cannot be valid anyway
            return self._problem(text, _DETAILS["length error"])
        errors: list[Any] = []
        if base in _INT_TYPES:
            value: Any = int(text)
        else:
            value = self._spec.str_to_val(errors, None, text, self._module)
            if value is None or errors:
                return self._message(text, errors)
        if self._spec.validate(errors, None, value, self._module) is False or errors:
            return self._message(text, errors)
        return None

    def _message(self, text: str, errors: list[Any]) -> str:
        """The problem pyang reported in ``errors``, for a message."""
        detail = "invalid value"
        for _pos, _tag, args in errors:
            if isinstance(args, tuple) and len(args) == 3:
                raw = str(args[2])
                detail = next((v for k, v in _DETAILS.items() if raw.startswith(k)), raw)
                break
        return self._problem(text, detail)

    def _problem(self, text: str, detail: str) -> str:
        if self.enums:
            choices = ", ".join(self.enums)
            return f"{show(text)} is not valid for {self.name}: expected one of {choices}"
        restriction = f" ({self.restriction})" if self.restriction else ""
        return f"{show(text)} is not valid for {self.name}{restriction}: {detail}"

    def canonical(self, text: str) -> str:
        """The canonical form of a valid value (numbers without sign or zeros)."""
        if self.target_base in _INT_TYPES:
            stripped = text.strip(_XML_SPACE)
            if len(stripped) <= _MAX_NUMBER and _INT.match(stripped):
                return str(int(stripped))
        return text


def _max_length(spec: Any) -> int | None:
    """The longest value a string-like type can accept, for the check that
    runs before any pattern: the smallest upper bound of a ``length`` in the
    derivation chain, else ``_MAX_PATTERN_INPUT`` when a pattern would run,
    else None.  A union takes the largest of its members' bounds."""
    members = getattr(spec, "types", None)
    if members is not None:  # union
        bounds = [_max_length(getattr(m, "i_type_spec", m)) for m in members]
        if any(b is None for b in bounds):
            return None
        return max((b for b in bounds if b is not None), default=None)
    bound: int | None = None
    patterned = False
    while spec is not None:
        if hasattr(spec, "res") or hasattr(spec, "patterns"):
            patterned = True
        high = getattr(spec, "max", None) if hasattr(spec, "lengths") else None
        if isinstance(high, int):
            bound = high if bound is None else min(bound, high)
        spec = getattr(spec, "base", None)
    if bound is not None:
        return bound
    return _MAX_PATTERN_INPUT if patterned else None


def _innermost(spec: Any) -> Any:
    while hasattr(spec, "base") and not hasattr(spec, "enums"):
        spec = spec.base
    return spec


_DETAILS = {
    "range error": "out of range",
    "length error": "wrong length",
    "pattern mismatch": "does not match the pattern",
    "no member type matched": "matches none of the member types",
    "not an integer": "not an integer",
}


def describe(type_stmt: Any) -> str:
    """The restrictions of a type and its typedef chain, for messages."""
    parts: list[str] = []
    seen: set[str] = set()
    stmt = type_stmt
    while stmt is not None:
        for keyword in ("range", "length"):
            sub = stmt.search_one(keyword)
            if sub is not None and keyword not in seen:  # the most derived one applies
                seen.add(keyword)
                parts.append(f"{keyword} {sub.arg}")
        parts.extend(f"pattern '{p.arg}'" for p in stmt.search("pattern"))
        typedef = getattr(stmt, "i_typedef", None)
        stmt = typedef.search_one("type") if typedef is not None else None
    return ", ".join(dict.fromkeys(parts))

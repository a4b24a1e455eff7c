"""Errors of the config core, shaped like NETCONF rpc-errors.

Validation and edit errors carry what RFC 6241 (error-tag, error-type,
error-info) and RFC 7950 §15 (error-app-tag) prescribe, so the NETCONF layer
renders them without interpreting them, and ``nf validate`` prints the same
facts offline.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ERRORS = 100
"""Errors one request reports at most.  Walks that collect errors stop
once they have one more than this, so a message of 100 000 bad elements
costs no more than one of a hundred and its reply stays small; the one more
lets the reply say that the rest were left out (``nf.northbound.errors``)."""


@dataclass(frozen=True)
class ConfigError:
    """One error: an rpc-error to be."""

    tag: str
    """RFC 6241 error-tag, e.g. invalid-value, operation-failed, data-missing."""
    message: str
    path: str | None = None
    """Instance-identifier of the node in error, with module prefixes."""
    app_tag: str | None = None
    """RFC 7950 §15 error-app-tag, e.g. must-violation, data-not-unique."""
    type: str = "application"
    """RFC 6241 error-type: transport, rpc, protocol or application."""
    info: tuple[tuple[str, str], ...] = ()
    """error-info children as (name, text): bad-element, bad-namespace, non-unique..."""

    @classmethod
    def at(cls, tag: str, message: str, path: str, element: str) -> ConfigError:
        """An application error about the data node ``element`` at ``path``
        (error-info bad-element names it, as RFC 6241 Appendix A asks)."""
        return cls(tag, message, path=path, info=(("bad-element", element),))

    def __str__(self) -> str:
        head = f"{self.path}: " if self.path else ""
        tail = f" [{self.tag}" + (f", {self.app_tag}" if self.app_tag else "") + "]"
        return f"{head}{self.message}{tail}"


class EditError(Exception):
    """An edit-config cannot be applied; carries every error found."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors

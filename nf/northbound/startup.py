"""State on disk: the startup datastore and a pending confirmed commit.

Every file here is written atomically: a temporary file beside the real
one, fsync, rename over the old one, fsync of the directory, so a crash at
any moment leaves either the old or the new content, never a torn file.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from nf.config.codec import NC_NS, parse, parse_xml, render, split_tag
from nf.config.tree import Node
from nf.config.validate import validate
from nf.schema import SchemaIndex

CONFIRMED_NS = "urn:nf:params:xml:ns:nf-state:confirmed-commit"
"""Namespace of the daemon's own confirmed-commit state file."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` (mode 0600) so that a crash leaves one or the other."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _sync_dir(path)


def atomic_delete(path: Path) -> None:
    """Remove ``path`` (if it is there) durably."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _sync_dir(path)


def _sync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateFile:
    """One XML file of the state directory, holding configuration data."""

    def __init__(self, path: Path, schema: SchemaIndex) -> None:
        self.path = path
        self.schema = schema

    def exists(self) -> bool:
        return self.path.exists()

    def delete(self) -> None:
        atomic_delete(self.path)

    def _config_element(self, tree: Node) -> etree._Element:
        holder = etree.Element(f"{{{NC_NS}}}config", nsmap={None: NC_NS})  # type: ignore[dict-item]
        render(tree, self.schema, holder)
        return holder

    def _write(self, root: etree._Element) -> None:
        atomic_write(
            self.path,
            etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True),
        )


class StartupFile(StateFile):
    """``state_dir/startup.xml``: a NETCONF <config> element around the data."""

    def save(self, tree: Node) -> None:
        self._write(self._config_element(tree))


@dataclass(frozen=True)
class SavedCommit:
    """What the confirmed-commit file holds."""

    rollback: Node
    persist: str | None
    deadline: float
    """Wall-clock epoch seconds."""
    owner: int


class BadStateFile(Exception):
    """The confirmed-commit file cannot be read; the message names the file."""


class ConfirmedCommitFile(StateFile):
    """``state_dir/confirmed-commit.xml``: a pending confirmed commit.

    It exists exactly while a confirmed commit is pending, so that a daemon
    that stops (or crashes) before the confirmation can restore the
    configuration of before the confirmed commit at its next boot.  It holds
    the rollback configuration (a NETCONF <config>), the persist token, the
    session and the deadline as wall-clock time (UTC, ISO 8601).
    """

    def save(self, saved: SavedCommit) -> None:
        root = etree.Element(f"{{{CONFIRMED_NS}}}confirmed-commit", nsmap={None: CONFIRMED_NS})  # type: ignore[dict-item]
        if saved.persist is not None:
            etree.SubElement(root, f"{{{CONFIRMED_NS}}}persist").text = saved.persist
        etree.SubElement(root, f"{{{CONFIRMED_NS}}}session-id").text = str(saved.owner)
        etree.SubElement(root, f"{{{CONFIRMED_NS}}}deadline").text = datetime.fromtimestamp(
            saved.deadline, UTC
        ).isoformat()
        root.append(self._config_element(saved.rollback))
        self._write(root)

    def load(self) -> SavedCommit:
        """Read and validate the file, or raise BadStateFile naming it."""
        try:
            root = parse_xml(self.path.read_bytes())
        except OSError as exc:
            raise BadStateFile(f"{self.path}: {exc.strerror or exc}") from exc
        except Exception as exc:  # XMLSyntaxError, ValueError
            raise BadStateFile(f"{self.path}: not well-formed XML: {exc}") from exc
        fields: dict[str, etree._Element] = {}
        for child in root:
            if isinstance(child.tag, str):
                fields[split_tag(child.tag)[1]] = child
        try:
            if root.tag != f"{{{CONFIRMED_NS}}}confirmed-commit" or "config" not in fields:
                raise ValueError("not a confirmed-commit state file")
            persist = fields["persist"].text or "" if "persist" in fields else None
            owner = int(fields["session-id"].text or "")
            deadline = datetime.fromisoformat(fields["deadline"].text or "").timestamp()
        except KeyError as exc:
            raise BadStateFile(f"{self.path}: <{exc.args[0]}> is missing") from exc
        except ValueError as exc:
            raise BadStateFile(f"{self.path}: {exc}") from exc
        tree, errors = parse(fields["config"], self.schema)
        errors += validate(tree, self.schema)
        if errors:
            raise BadStateFile(
                f"{self.path}: invalid rollback configuration:\n"
                + "\n".join(f"  {e}" for e in errors)
            )
        return SavedCommit(tree, persist, deadline, owner)

"""The startup datastore on disk: saved atomically, read at boot.

A save writes a temporary file beside the real one, fsyncs it, renames it
over the old one and fsyncs the directory, so a crash at any moment leaves
either the old or the new startup configuration, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lxml import etree

from nf.config.codec import NC_NS, render
from nf.config.tree import Node
from nf.schema import SchemaIndex


class StartupFile:
    """``state_dir/startup.xml``: a NETCONF <config> element around the data."""

    def __init__(self, path: Path, schema: SchemaIndex) -> None:
        self.path = path
        self.schema = schema

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, tree: Node) -> None:
        holder = etree.Element(f"{{{NC_NS}}}config", nsmap={None: NC_NS})  # type: ignore[dict-item]
        render(tree, self.schema, holder)
        data = etree.tostring(holder, encoding="UTF-8", xml_declaration=True, pretty_print=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._sync_dir()

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

"""diff(old, new): the changed entries of two datastores, in apply order.

The unit of change is an entry of a list directly below a top-level
container (for our module: a serial port or a channel), because that is the
unit the runtime starts and stops.  Deletes come first, in reverse schema
order (channels before the serial ports they use), so that a deleted
channel frees its port and socket before anything new claims them; then
creates and modifications in schema order (ports before channels).

Trees are compared as configured (explicit values): a leaf set to its
default counts as a change.  The runtime compares the typed model to skip
restarts that change nothing in effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nf.config.tree import ListNode, Node, step
from nf.schema import SchemaIndex, SchemaNode

Op = Literal["delete", "create", "modify"]


@dataclass(frozen=True)
class Change:
    """One changed list entry (or a whole top-level node outside lists)."""

    op: Op
    schema: SchemaNode
    key: tuple[str, ...]
    old: Node | None
    new: Node | None

    @property
    def kind(self) -> str:
        """The list's name, e.g. "channel" or "serial-port"."""
        return self.schema.name

    @property
    def name(self) -> str:
        """The first key value, e.g. the channel name."""
        return self.key[0] if self.key else self.schema.name

    @property
    def path(self) -> str:
        parent = self.schema.parent
        prefix = step(parent) if parent is not None and parent.keyword != "root" else ""
        return prefix + step(self.schema, self.key if self.key else None)


def _units(schema: SchemaIndex) -> list[tuple[SchemaNode, SchemaNode | None]]:
    """(top-level node, list below it or None), in schema order."""
    units: list[tuple[SchemaNode, SchemaNode | None]] = []
    for top in schema.root.children.values():
        if not top.config:
            continue
        lists = [c for c in top.children.values() if c.keyword == "list" and c.config]
        if top.keyword == "container" and lists:
            units.extend((top, lst) for lst in lists)
        else:
            units.append((top, None))
    return units


def diff(old: Node, new: Node, schema: SchemaIndex) -> list[Change]:
    """Changed entries, deletes first (reverse schema order), then the rest."""
    deletes: list[Change] = []
    upserts: list[Change] = []
    for top, lst in _units(schema):
        old_top = old.get(top.qname)
        new_top = new.get(top.qname)
        if old_top is new_top:
            continue
        if lst is None:
            if old_top != new_top:
                change_op: Op = (
                    "delete" if new_top is None else "create" if old_top is None else "modify"
                )
                target = deletes if change_op == "delete" else upserts
                target.append(
                    Change(
                        change_op,
                        top,
                        (),
                        old_top if isinstance(old_top, Node) else None,
                        new_top if isinstance(new_top, Node) else None,
                    )
                )
            continue
        old_list = old_top.get(lst.qname) if isinstance(old_top, Node) else None
        new_list = new_top.get(lst.qname) if isinstance(new_top, Node) else None
        if old_list is new_list:
            continue
        old_entries = old_list if isinstance(old_list, ListNode) else ListNode()
        new_entries = new_list if isinstance(new_list, ListNode) else ListNode()
        list_deletes = [
            Change("delete", lst, key, entry, None)
            for key, entry in old_entries.items()
            if key not in new_entries
        ]
        deletes[:0] = list_deletes  # later lists are deleted first
        for key, entry in new_entries.items():
            before = old_entries.get(key)
            if before is None:
                upserts.append(Change("create", lst, key, None, entry))
            elif before is not entry and before != entry:
                upserts.append(Change("modify", lst, key, before, entry))
    return deletes + upserts

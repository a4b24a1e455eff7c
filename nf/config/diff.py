"""diff(old, new): the changed entries of two datastores, in apply order.

The unit of change is an entry of a list directly below a top-level
container (for our module: a serial port or a channel), because that is the
unit the runtime starts and stops; an entry of a top-level list is a unit
too.  Anything else at the top level (a top-level leaf or a container
without lists, or the children of a top-level container other than its
lists) is one more unit, the top-level node itself, with key ``()``.
Deletes come first, in reverse schema order (channels before the serial
ports they use), so that a deleted channel frees its port and socket before
anything new claims them; then creates and modifications in schema order
(ports before channels).  Within one list, entries keep their tree order.

The order of an ``ordered-by user`` list is configuration (NACM rules are
tried in it): when a unit list's order changes beyond entries appended at
its end, the list itself is one more change, a "modify" with key ``()``
(reported by netconf-config-change as a replace of the list); the order of
an ordered-by user list inside an entry makes that entry modified, since
such lists compare order-sensitively (``tree.ListNode``).

Trees are compared as configured (explicit values): a leaf set to its
default counts as a change.  The runtime compares the typed model to skip
restarts that change nothing in effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from nf.config.tree import Child, Key, ListNode, Node, step
from nf.schema import SchemaIndex, SchemaNode

Op = Literal["delete", "create", "modify"]


@dataclass(frozen=True)
class Change:
    """One changed list entry, or a top-level node itself (key ``()``): its
    children other than the lists that are units of their own, or an
    ordered-by user list whose order changed (key ``()``, no old or new)."""

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


def diff(old: Node, new: Node, schema: SchemaIndex) -> list[Change]:
    """Changed entries, deletes first (reverse schema order), then the rest."""
    unit_deletes: list[list[Change]] = []  # per unit, in schema order
    upserts: list[Change] = []
    for top in schema.root.children.values():
        if not top.config:
            continue
        old_top = old.get(top.qname)
        new_top = new.get(top.qname)
        if old_top is new_top:  # shared subtree: unchanged
            continue
        if top.keyword == "list":
            _entries(top, old_top, new_top, unit_deletes, upserts)
            continue
        lists = (
            [c for c in top.children.values() if c.keyword == "list" and c.config]
            if top.keyword == "container"
            else []
        )
        # the top-level node itself, without the lists that are units of their own
        old_rest = _rest(old_top, top, lists)
        new_rest = _rest(new_top, top, lists)
        top_deletes: list[Change] = []
        if old_rest != new_rest:
            change = Change(
                "delete" if new_rest is None else "create" if old_rest is None else "modify",
                top,
                (),
                old_rest if isinstance(old_rest, Node) else None,
                new_rest if isinstance(new_rest, Node) else None,
            )
            (top_deletes if change.op == "delete" else upserts).append(change)
        unit_deletes.append(top_deletes)
        for lst in lists:
            old_list = old_top.get(lst.qname) if isinstance(old_top, Node) else None
            new_list = new_top.get(lst.qname) if isinstance(new_top, Node) else None
            _entries(lst, old_list, new_list, unit_deletes, upserts)
    return [c for deletes in reversed(unit_deletes) for c in deletes] + upserts


def changed_keys(old: Node, new: Node, schema: SchemaIndex, limit: int = 64) -> int | None:
    """How many list entries may differ between ``old`` and ``new`` when
    every unit list of ``new`` is ``old``'s or was derived from it by edits
    (``ListNode.changed_since``), at most ``limit``; None otherwise.  A
    number says that ``diff`` and what follows it cost the change, not
    the configuration (the engine then does that work on the loop,
    without a thread hop); this costs the number of lists."""
    count = 0
    for old_list, new_list in _unit_lists(old, new, schema):
        if old_list is new_list:
            continue
        if not isinstance(old_list, ListNode) or not isinstance(new_list, ListNode):
            return None
        keys = new_list.changed_since(old_list, limit)
        if keys is None:
            return None
        count += len(keys)
        if count > limit:
            return None
    return count


def _unit_lists(
    old: Node, new: Node, schema: SchemaIndex
) -> Iterator[tuple[Child | None, Child | None]]:
    """The unit lists (see ``diff``) of the top-level nodes that differ, as
    (old, new) pairs: a top-level list itself, or each list of a top-level
    container (the container itself, created or removed, as one pair)."""
    for top in schema.root.children.values():
        if not top.config or top.keyword not in ("list", "container"):
            continue
        old_top, new_top = old.get(top.qname), new.get(top.qname)
        if old_top is new_top:
            continue
        if top.keyword == "list" or not (isinstance(old_top, Node) and isinstance(new_top, Node)):
            yield old_top, new_top
            continue
        for lst in top.children.values():
            if lst.keyword == "list" and lst.config:
                yield old_top.get(lst.qname), new_top.get(lst.qname)


def _rest(value: Child | None, top: SchemaNode, lists: list[SchemaNode]) -> Child | None:
    """A top-level node without its unit lists; None when nothing is left of it."""
    if not isinstance(value, Node) or not lists:
        return value
    rest = value
    for lst in lists:
        rest = rest.remove(lst.qname)
    return None if len(rest) == 0 and not top.presence else rest


def _entries(
    lst: SchemaNode,
    old_list: Child | None,
    new_list: Child | None,
    unit_deletes: list[list[Change]],
    upserts: list[Change],
) -> None:
    """The changed entries of one list: deletes in old order, the rest in new order."""
    if old_list is new_list:
        unit_deletes.append([])
        return
    old_entries = old_list if isinstance(old_list, ListNode) else ListNode()
    new_entries = new_list if isinstance(new_list, ListNode) else ListNode()
    if _few(lst, old_entries, new_entries, unit_deletes, upserts):
        return
    unit_deletes.append(
        [
            Change("delete", lst, key, entry, None)
            for key, entry in old_entries.items()
            if key not in new_entries
        ]
    )
    for key, entry in new_entries.items():
        before = old_entries.get(key)
        if before is None:
            upserts.append(Change("create", lst, key, None, entry))
        elif before is not entry and before != entry:
            upserts.append(Change("modify", lst, key, before, entry))
    if lst.user_ordered and _reordered(old_entries, new_entries):
        upserts.append(Change("modify", lst, (), None, None))


def _few(
    lst: SchemaNode,
    old: ListNode,
    new: ListNode,
    unit_deletes: list[list[Change]],
    upserts: list[Change],
) -> bool:
    """``_entries`` in time of the change, when ``new`` was derived from
    ``old`` (``ListNode.changed_since``) and the order of the changes is
    known without a walk: at most one deletion and one modification, and
    creations, which a derived list has last.  False: walk the lists."""
    keys = new.changed_since(old)
    if keys is None or lst.user_ordered:
        return False
    deleted = [k for k in keys if k in old and k not in new]
    modified = [k for k in keys if k in old and k in new and old.get(k) != new.get(k)]
    created = {k for k in keys if k not in old and k in new}
    if len(deleted) > 1 or len(modified) > 1:
        return False
    tail: list[Key] = []
    for key in new.keys_reversed():
        if len(tail) == len(created):
            break
        if key not in created:
            return False  # a creation not last: walk
        tail.append(key)
    unit_deletes.append([Change("delete", lst, k, old.get(k), None) for k in deleted])
    upserts.extend(Change("modify", lst, k, old.get(k), new.get(k)) for k in modified)
    upserts.extend(Change("create", lst, k, None, new.get(k)) for k in reversed(tail))
    return True


def _reordered(old: ListNode, new: ListNode) -> bool:
    """Is ``new`` in another order than ``old`` with new entries appended?
    (RFC 7950 §7.8.6: without ``insert``, a new entry goes last.)"""
    old_keys, new_keys = list(old.keys()), list(new.keys())
    appended = [k for k in old_keys if k in new] + [k for k in new_keys if k not in old]
    return new_keys != appended

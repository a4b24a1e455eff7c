"""Incremental validation: a commit checks what its change can affect.

Full validation (``nf.config.validate.check``) renders the whole tree with
its defaults and checks every rule on every node, so a one-leaf commit
costs as much as the configuration is big.  Here the previous running
tree is known valid and its instance document is kept; for a new tree
that differs from it by a few unit entries (``nf.config.diff``):

1. the instance is patched, not rebuilt: each changed entry's element is
   rendered alone, put in place of the old one and given its defaults;
2. the same checker (``validate._Checker``) walks it, but below the
   holders of unit lists it visits only the changed entries and the
   entries whose constraints read changed data, as the static analysis of
   ``nf.schema.footprint`` finds them (joins are looked up in value
   indexes kept with the instance); counts are taken from the tree and
   unique is checked among the entries that may collide.

Every rule left out would give what it gave on the previous, valid tree:
no error.  So the errors are those of full validation, in the same order
(``tests/test_incremental_validation.py`` checks it over random edits).
Whenever that cannot be shown cheaply (a change outside unit entries, an
entry moved, a read that cannot be bounded or joined, a when outside unit
entries) ``check_change`` returns None and the caller validates in full.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lxml import etree

from nf.config.codec import WD_DEFAULT, render_entry, split_tag
from nf.config.diff import Change, diff
from nf.config.errors import MAX_ERRORS, ConfigError
from nf.config.tree import Key, ListNode, Node
from nf.config.validate import (
    _IMPLICIT,
    Instance,
    Scope,
    UnitScope,
    _Checker,
    check_syntax,
    unique_key,
)
from nf.schema import SchemaIndex, SchemaNode
from nf.schema.footprint import Join, UnitReads, analyze, subtree, touches, unit_lists
from nf.schema.xpath import EvalCache, ValueIndex, path_values


@dataclass(frozen=True)
class _Analysis:
    units: dict[SchemaNode, UnitReads]
    holders: frozenset[SchemaNode]
    whens_outside: bool
    """A when outside unit entries: defaults there may follow any change."""


@functools.lru_cache(maxsize=8)
def _analysis(schema: SchemaIndex) -> _Analysis:
    units = unit_lists(schema)
    holders = frozenset(u.parent for u in units if u.parent is not None)
    inside = {n for u in units for n in subtree(u)}
    whens_outside = any(n.when is not None and n.config for n in schema.walk() if n not in inside)
    return _Analysis(analyze(schema), holders, whens_outside)


@dataclass
class _Step:
    """One entry replaced in the instance: old or new may be None."""

    lst: SchemaNode
    key: Key
    parent: etree._Element
    old: etree._Element | None
    new: etree._Element | None
    after: etree._Element | None
    """The element the old entry followed (None: first child of parent)."""


@dataclass
class Patch:
    """Entries replaced in an instance, and how to put them back."""

    instance: Instance
    steps: list[_Step] = field(default_factory=list)

    def undo(self) -> None:
        """The instance as it was before the patch (indexes included)."""
        elements = self.instance.entry_elements
        for step in reversed(self.steps):
            if step.new is not None:
                _reindex(self.instance, step.lst, step.parent, step.new, None)
                step.parent.remove(step.new)
                del elements(step.lst)[step.key]
            if step.old is not None:
                if step.after is None:
                    step.parent.insert(0, step.old)
                else:
                    step.after.addnext(step.old)
                elements(step.lst)[step.key] = step.old
                _reindex(self.instance, step.lst, step.parent, None, step.old)
        self.steps = []


def _reindex(
    instance: Instance,
    lst: SchemaNode,
    parent: etree._Element,
    old: etree._Element | None,
    new: etree._Element | None,
) -> None:
    tag = f"{{{lst.namespace}}}{lst.name}"
    for key, (holder, index) in instance.indexes.items():
        if holder is parent and key[1] == tag and isinstance(index, ValueIndex):
            if old is not None:
                index.discard(old)
            if new is not None:
                index.add(new)


def check_change(
    instance: Instance, old: Node, new: Node, changes: Sequence[Change]
) -> tuple[list[ConfigError], Patch] | None:
    """Errors of ``new``, given ``instance`` of the valid tree ``old`` and
    their ``diff``.  The instance is patched to be ``new``'s (``Patch.undo``
    puts it back).  None: not provable incrementally; the instance is as
    it was, validate in full."""
    schema = instance.schema
    analysis = _analysis(schema)
    if (
        analysis.whens_outside
        or (not changes and old is not new)  # e.g. an empty container: no change, other XML
        or any(c.key == () or c.schema not in analysis.units for c in changes)
    ):
        return None
    if _bulk(analysis, new, changes):
        return None
    patch = _patch(instance, old, new, changes)
    if patch is None:
        return None
    scope = _scope(instance, analysis, new, patch)
    if scope is None:
        patch.undo()
        return None
    cache: EvalCache = dict(instance.indexes)
    checker = _Checker(schema, scope=scope, cache=cache)
    checker.node(instance.holder, schema.root, "")
    for key, value in cache.items():  # sibling-scan indexes built by this run
        if isinstance(value[1], ValueIndex):
            instance.indexes.setdefault(key, value)
    return checker.errors, patch


BULK_CHANGES = 64
"""Changed entries from which ``check_change`` may leave a change to full
validation (``_bulk``); below, a change is always checked incrementally."""


def _bulk(analysis: _Analysis, new: Node, changes: Sequence[Change]) -> bool:
    """Whether ``changes`` touch so many unit entries, against the entries
    ``new`` has, that full validation costs less than checking them one by
    one: at least ``BULK_CHANGES``, and half of the entries.

    Why: each entry checked incrementally is rendered alone, put in place,
    added to the value indexes of joins, and scoped, about 1.5 times what
    full validation spends on it (a commit creating 10 000 channels on 10:
    2.2 s against 1.5 s of CPU, besides the indexes of joins, which full
    validation does not build).  Past half the entries, the whole is
    cheaper.  The errors are the same either way (what ``check_change``
    promises); the caller validates in full."""
    if len(changes) < BULK_CHANGES:
        return False
    entries = sum(len(_list_of(new, lst)) for lst in analysis.units)
    return 2 * len(changes) >= entries


def check_syntax_change(old: Node, new: Node, schema: SchemaIndex) -> list[ConfigError]:
    """``check_syntax(new)``, given that ``old`` passes it: the errors of
    the list entries that differ, checked alone.

    The syntax constraints (a value against its type, one case of a
    choice) read nothing outside the node they constrain, so an entry
    that did not change cannot have gained an error.  This is what makes a
    one-leaf edit of a 10 000-channel candidate cost one entry, not the
    whole tree.  A change of a top-level node itself (key ``()``) is
    checked in full: it is the part outside the lists, small."""
    changes = diff(old, new, schema)
    if any(c.key == () for c in changes):
        return check_syntax(new, schema)
    prefixes = {prefix: ns for ns, prefix in schema.prefixes.items()}
    checker = _Checker(schema, semantic=False)
    for change in changes:
        if change.new is None or len(checker.errors) > MAX_ERRORS:
            continue
        elem = render_entry(change.new, change.schema, prefixes)
        parent = change.schema.parent
        path = checker.step(parent) if parent is not None and parent.keyword != "root" else ""
        checker.node(elem, change.schema, path + checker.step(change.schema, elem))
    return checker.errors


def _patch(instance: Instance, old: Node, new: Node, changes: Sequence[Change]) -> Patch | None:
    """Replace the changed entries' elements, or None (nothing changed) if
    an entry would not end up where a full rendering puts it."""
    by_list: dict[SchemaNode, list[Change]] = {}
    for change in changes:
        by_list.setdefault(change.schema, []).append(change)
    plans: list[tuple[SchemaNode, etree._Element, list[Change], ListNode]] = []
    for lst, listed in by_list.items():
        old_list, new_list = _list_of(old, lst), _list_of(new, lst)
        parent = instance.parent_of(lst)
        if parent is None or not _holder_kept(old, new, lst) or parent.get(_IMPLICIT):
            return None
        if not _same_order(old_list, new_list, listed):
            return None
        plans.append((lst, parent, listed, new_list))
    patch = Patch(instance)
    prefixes = {prefix: ns for ns, prefix in instance.schema.prefixes.items()}
    for lst, parent, listed, new_list in plans:
        elements = instance.entry_elements(lst)
        created = sum(1 for c in listed if c.op == "create")
        # the last kept entry: the created ones come after it (_same_order),
        # found from the end (listing 10 000 keys cost a one-leaf commit)
        kept = next(itertools.islice(new_list.keys_reversed(), created, None), None)
        last = elements.get(kept) if kept is not None else None
        for change in listed:
            before = elements.get(change.key)
            after = before.getprevious() if before is not None else None
            fresh: etree._Element | None = None
            if change.new is not None:
                fresh = render_entry(change.new, lst, prefixes)
                if lst.parent is not None and lst.parent.keyword != "root":
                    # a top-level container's: Documents.patch takes its XML
                    instance.rendered[id(change.new)] = (change.new, etree.tostring(fresh))
                if before is not None:
                    before.addnext(fresh)
                elif last is not None:
                    last.addnext(fresh)
                else:
                    patch.undo()
                    return None  # the list's first entry: its place is not known here
                if before is None or last is before:
                    last = fresh
            if before is not None:
                _reindex(instance, lst, parent, before, None)
                parent.remove(before)
                del elements[change.key]
            if fresh is not None:
                elements[change.key] = fresh
                instance._add_defaults(fresh, lst)
                _reindex(instance, lst, parent, None, fresh)
            patch.steps.append(_Step(lst, change.key, parent, before, fresh, after))
    return patch


def _list_of(tree: Node, lst: SchemaNode) -> ListNode:
    holder: Node | None = tree
    if lst.parent is not None and lst.parent.keyword != "root":
        top = tree.get(lst.parent.qname)
        holder = top if isinstance(top, Node) else None
    found = holder.get(lst.qname) if holder is not None else None
    return found if isinstance(found, ListNode) else ListNode()


def _holder_kept(old: Node, new: Node, lst: SchemaNode) -> bool:
    """The list's top-level container is in both trees or in neither (it
    would otherwise turn from implicit to configured or back)."""
    if lst.parent is None or lst.parent.keyword == "root":
        return True
    return (old.get(lst.parent.qname) is None) == (new.get(lst.parent.qname) is None)


def _same_order(old_list: ListNode, new_list: ListNode, listed: list[Change]) -> bool:
    """Kept entries keep their order and created ones come last, in order
    (where a full rendering puts them).

    When ``new_list`` was derived from ``old_list`` (``changed_since``: an
    edit of running), only the tails are compared: listing both lists' keys
    was, at 10 000 channels, a twentieth of a one-leaf commit."""
    deleted = {c.key for c in listed if c.op == "delete"}
    created = [c.key for c in listed if c.op == "create"]
    changed = new_list.changed_since(old_list)
    if changed is not None:
        return _same_tail(old_list, new_list, deleted, created, len(changed | set(created)))
    old_keys = list(old_list.keys())
    if deleted:
        old_keys = [k for k in old_keys if k not in deleted]
    new_keys = list(new_list.keys())
    split = len(new_keys) - len(created)
    return new_keys[split:] == created and new_keys[:split] == old_keys


def _same_tail(
    old_list: ListNode, new_list: ListNode, deleted: set[Key], created: list[Key], window: int
) -> bool:
    """``_same_order`` for a ``new_list`` derived from ``old_list`` by
    setting or removing at most ``window`` keys (the created ones among
    them).  Such a list is ``old_list`` less the keys removed, in order
    (an entry set in place keeps its place), followed by the keys set that
    were not there, so every entry that may have moved is among its last
    ``window``.  If those are what the expected order (``old_list`` less
    ``deleted``, then ``created``) ends with, every moved entry is also
    among the expected order's last ``window``, and the two lists, of the
    same length, agree before them too: they are the same."""
    kept = len(old_list) - sum(1 for key in deleted if key in old_list)
    if len(new_list) != kept + len(created):
        return False
    expected = created[::-1]
    if len(expected) < window:
        expected += itertools.islice(
            (key for key in old_list.keys_reversed() if key not in deleted),
            window - len(expected),
        )
    return list(itertools.islice(new_list.keys_reversed(), window)) == expected[:window]


def _changed_nodes(step: _Step) -> list[SchemaNode]:
    """Schema nodes whose data differ between the old and new entry (with
    defaults): the entry list itself when it is created or deleted."""
    if step.old is None or step.new is None:
        return [step.lst]
    found: list[SchemaNode] = []
    _differ(step.old, step.new, step.lst, found)
    return found


def _differ(
    old: etree._Element, new: etree._Element, sn: SchemaNode, found: list[SchemaNode]
) -> None:
    olds = _by_name(old)
    news = _by_name(new)
    for qname in olds.keys() | news.keys():
        child = sn.children.get(qname)
        if child is None:
            continue
        a, b = olds.get(qname, []), news.get(qname, [])
        if child.keyword == "container" and len(a) == 1 and len(b) == 1:
            if a[0].get(_IMPLICIT) != b[0].get(_IMPLICIT):
                found.append(child)
            else:
                _differ(a[0], b[0], child, found)
        elif not _same(a, b):
            found.append(child)


def _by_name(elem: etree._Element) -> dict[tuple[str, str], list[etree._Element]]:
    groups: dict[tuple[str, str], list[etree._Element]] = {}
    for child in elem:
        if isinstance(child.tag, str):
            groups.setdefault(split_tag(child.tag), []).append(child)
    return groups


def _same(a: list[etree._Element], b: list[etree._Element]) -> bool:
    return len(a) == len(b) and all(
        x.text == y.text
        and x.get(WD_DEFAULT) == y.get(WD_DEFAULT)
        and x.get(_IMPLICIT) == y.get(_IMPLICIT)
        and _same(list(x), list(y))
        for x, y in zip(a, b, strict=True)
    )


def _scope(instance: Instance, analysis: _Analysis, new: Node, patch: Patch) -> Scope | None:
    """The entries to check again, or None if a read cannot be narrowed."""
    changed: dict[SchemaNode, list[_Step]] = {}
    # each changed schema node once: a commit creating 10 000 channels has
    # 20 000 steps but two changed nodes, and every read is tested against
    # each of them below
    nodes: dict[SchemaNode, None] = {}
    for step in patch.steps:
        changed.setdefault(step.lst, []).append(step)
        nodes.update(dict.fromkeys(_changed_nodes(step)))
    visit: dict[SchemaNode, dict[etree._Element, None]] = {}
    for step in patch.steps:
        if step.new is not None:
            visit.setdefault(step.lst, {})[step.new] = None
    for unit, reads in analysis.units.items():
        if reads.unbounded and nodes:
            return None
        if any(touches(r, n) for r in reads.when_reads for n in nodes):
            return None  # a default elsewhere may follow: rebuild
        joins: dict[Join, None] = {}
        for read in reads.reads:
            if any(touches(read, n) for n in nodes):
                if read.join is None:
                    return None
                joins[read.join] = None
        for join in joins:
            readers = _rhs_index(instance, join)
            if readers is None:
                return None
            lhs = path_values(_compiled(join.lhs, instance.schema))
            for step in changed.get(join.source, []):
                for elem in (step.old, step.new):
                    if elem is None:
                        continue
                    for value in lhs(elem):
                        visit.setdefault(unit, {}).update(dict.fromkeys(readers.get(value)))
    units: dict[SchemaNode, UnitScope] = {}
    for unit in analysis.units:
        lst = _list_of(new, unit)
        elements = instance.entry_elements(unit)
        seen = visit.get(unit, {})
        order = _position_index(instance, unit)
        if order is None:
            return None
        dirty = [s.new for s in changed.get(unit, []) if s.new is not None]
        uniques: list[list[etree._Element]] = []
        for number, spec in enumerate(unit.uniques):
            index = instance.index(unit, f"unique {number}", _unique_keys(spec))
            if index is None:
                return None
            members: dict[etree._Element, None] = {}
            for elem in dirty:
                key = unique_key(elem, spec)
                if key is not None:
                    members.update(dict.fromkeys(index.get(key)))
            uniques.append(order.ordered(members))
        last_key = lst.last()
        units[unit] = UnitScope(
            count=len(lst),
            visit=order.ordered(seen),
            last=elements.get(last_key) if last_key is not None else None,
            unique=uniques,
        )
    leafrefs: dict[SchemaNode, ValueIndex] = {}
    for reads in analysis.units.values():
        for leaf, join in reads.leafrefs.items():
            targets = instance.index(
                join.source, join.lhs, path_values(_compiled(join.lhs, instance.schema))
            )
            if targets is None:
                return None
            leafrefs[leaf] = targets
    return Scope(analysis.holders, units, leafrefs)


def _position_index(instance: Instance, unit: SchemaNode) -> ValueIndex | None:
    """An index of every entry by nothing: its positions order entries."""
    return instance.index(unit, "position", _no_keys)


def _no_keys(_elem: etree._Element) -> tuple[()]:
    return ()


def _unique_keys(
    spec: tuple[tuple[tuple[str, str], ...], ...],
) -> Callable[[etree._Element], list[tuple[str, ...]]]:
    def keys(elem: etree._Element) -> list[tuple[str, ...]]:
        key = unique_key(elem, spec)
        return [] if key is None else [key]

    return keys


def _rhs_index(instance: Instance, join: Join) -> ValueIndex | None:
    return instance.index(join.reader, join.rhs, path_values(_compiled(join.rhs, instance.schema)))


@functools.lru_cache(maxsize=256)
def _compiled_text(text: str, namespaces: tuple[tuple[str, str], ...]) -> etree.XPath:
    return etree.XPath(text, namespaces=dict(namespaces))


def _compiled(text: str, schema: SchemaIndex) -> etree.XPath:
    namespaces = tuple(sorted((prefix, ns) for ns, prefix in schema.prefixes.items()))
    return _compiled_text(text, namespaces)

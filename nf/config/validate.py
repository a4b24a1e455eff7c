"""Validation of a whole datastore against the schema (RFC 7950 §8).

The tree is rendered once into an lxml document ("the instance") with
defaults added as YANG says, and every rule is checked on it: types, keys,
mandatory nodes, choices, leafrefs, must and when (XPath in libxml2),
unique, min/max-elements.  Every error is returned, each with the RFC 6241
error-tag, the RFC 7950 §15 error-app-tag and an instance-identifier path,
so a NETCONF client and ``nf validate`` see the same facts.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field

from lxml import etree
from pyang import xpath_lexer

from nf.config.codec import (
    WD_DEFAULT,
    WD_NS,
    Rendered,
    ordered_children,
    parse,
    parse_children,
    render,
    split_tag,
    xml_key_of,
)
from nf.config.errors import MAX_ERRORS, ConfigError
from nf.config.tree import Node, _name_step, quote
from nf.schema import Choice, QName, SchemaIndex, SchemaNode
from nf.schema.xpath import EvalCache, ValueIndex

_IMPLICIT = "{urn:nf:internal}implicit"
"""Marks a non-presence container added only to hold defaults."""

_HOLDER = "data"


class Instance:
    """The lxml view of a tree with defaults, for XPath and checking."""

    def __init__(self, tree: Node, schema: SchemaIndex, keep_xml: bool = False) -> None:
        self.schema = schema
        self.rendered: Rendered = {}
        """The XML of entries rendered alone into this document, before their
        defaults were added (``keep_xml``, and entries an incremental
        validation put in): the running document is made of them
        (``Documents.patch``), who then clears this."""
        self.holder = render(
            tree, schema, etree.Element(_HOLDER), self.rendered if keep_xml else None
        )
        self._add_defaults(self.holder, schema.root)
        self._entries: dict[SchemaNode, dict[tuple[str, ...], etree._Element]] = {}
        """Unit list -> key -> entry element, built on first use and kept
        up to date by ``patch``."""
        self.indexes: EvalCache = {}
        """Value indexes of unit entries (sibling scans, unique, joins),
        built on first use and kept up to date by ``patch``."""

    def parent_of(self, lst: SchemaNode) -> etree._Element | None:
        """The element holding the entries of a unit list (its top-level
        container, or the holder for a top-level list)."""
        if lst.parent is None or lst.parent.keyword == "root":
            return self.holder
        return next(_children_named(self.holder, lst.parent.qname), None)

    def entry_elements(self, lst: SchemaNode) -> dict[tuple[str, ...], etree._Element]:
        """key -> element of every entry of a unit list."""
        found = self._entries.get(lst)
        if found is None:
            found = {}
            parent = self.parent_of(lst)
            if parent is not None:
                for elem in _children_named(parent, lst.qname):
                    key = xml_key_of(elem, lst)
                    if key is not None:
                        found[key] = elem
            self._entries[lst] = found
        return found

    def index(
        self, lst: SchemaNode, name: str, keys: Callable[[etree._Element], Iterable[Hashable]]
    ) -> ValueIndex | None:
        """The value index ``name`` of a unit list's entries (built on first use)."""
        parent = self.parent_of(lst)
        if parent is None:
            return None
        tag = f"{{{lst.namespace}}}{lst.name}"
        key = (id(parent), tag, name)
        cached = self.indexes.get(key)
        if cached is None or cached[0] is not parent:
            cached = (parent, ValueIndex(parent, tag, keys))
            self.indexes[key] = cached
        index: ValueIndex = cached[1]
        return index

    # -- defaults (RFC 7950 §7.6.1, §7.7.2, §7.9.3) ------------------------
    def _add_defaults(self, elem: etree._Element, snode: SchemaNode) -> None:
        # the element's children by tag, in one pass (a list's holder has
        # thousands); the schema side is a plan made once per schema node
        by_tag: dict[object, list[etree._Element]] = {}
        for child in elem:
            found = by_tag.get(child.tag)
            if found is None:
                by_tag[child.tag] = [child]
            else:
                found.append(child)
        active: dict[str, str] = {}
        if snode.choices:
            active = _active_cases(snode, {split_tag(t) for t in by_tag if isinstance(t, str)})
        for sn, tag, holds, implicit in _defaults_plan(snode):
            if sn.case_path and not _case_allows(sn, active):
                continue
            present = by_tag.get(tag)
            if holds:
                if present is not None:
                    for child in present:
                        self._add_defaults(child, sn)
                elif implicit and when_holds(sn, elem):
                    sub = etree.SubElement(elem, tag, {_IMPLICIT: "true"})
                    self._add_defaults(sub, sn)
            elif present is None and when_holds(sn, elem):
                for value in sn.defaults:
                    elem.append(_default_leaf(tag, value))

    def complete_tree(self) -> Node:
        """The tree with defaults, without empty implicit containers."""
        # read in place (see complete_entries): nothing to prune first
        tree, _ = parse(self.holder, self.schema, allow_state=True)
        return tree

    def complete_entries(
        self, top: SchemaNode, lst: SchemaNode, keys: Iterable[tuple[str, ...]]
    ) -> dict[tuple[str, ...], Node]:
        """Some entries of a list below a top-level container, defaults applied.

        Defaults were computed on the whole document, so this is exactly what
        ``complete_tree`` holds for those entries, without converting the rest:
        the runtime asks for the few entries a commit changed.
        """
        found: dict[tuple[str, ...], Node] = {}
        elements = self.entry_elements(lst)
        for key in keys:
            elem = elements.get(key)
            if elem is not None:
                # read in place, not from a pruned copy: reading ignores the
                # marker attributes and drops a non-presence container that
                # holds nothing, as the implicit ones pruned would be
                found[key] = parse_children(elem, lst, "", self.schema, True, [])
        return found


_WD_NSMAP = {"wd": WD_NS}
"""The marker's prefix, declared on each default leaf: one made by lxml
(ns0, ns1...) could clash with a prefix of an enclosing element once the
leaf is moved in (it would serialize with the wrong namespace)."""
_PROTOTYPES = threading.local()
"""Per thread (lxml trees are not to be shared between threads), the
default leaves made so far, by (tag, value)."""


def _default_leaf(tag: str, value: str) -> etree._Element:
    """A new leaf element holding a default (marked as such): a copy of
    one made once.  Made afresh, the marker attribute alone cost more than
    the element (at 10 000 channels, 130 000 defaults)."""
    made: dict[tuple[str, str], etree._Element] | None = getattr(_PROTOTYPES, "leaves", None)
    if made is None:
        made = _PROTOTYPES.leaves = {}
    prototype = made.get((tag, value))
    if prototype is None:
        prototype = made[(tag, value)] = etree.Element(tag, {WD_DEFAULT: "true"}, nsmap=_WD_NSMAP)
        prototype.text = value
    # __copy__ itself: copy.copy's dispatch cost 1 us more a leaf (2.6 us)
    copied: etree._Element = prototype.__copy__()  # type: ignore[attr-defined]  # not in the stubs
    return copied


def when_holds(sn: SchemaNode, parent: etree._Element) -> bool:
    """Evaluate the when of an absent node on a tentative dummy (§7.21.5)."""
    if sn.when is None:
        return True
    dummy = etree.SubElement(parent, f"{{{sn.namespace}}}{sn.name}")
    try:
        return sn.when.boolean(dummy, dummy)
    finally:
        parent.remove(dummy)


@functools.lru_cache(maxsize=4096)
def _defaults_plan(snode: SchemaNode) -> tuple[tuple[SchemaNode, str, bool, bool], ...]:
    """The children of ``snode`` that defaults concern, in schema order:
    (node, tag, holds children (a container or list), may be added as an
    implicit container).  Config-false leaves and lists have none; a leaf
    without a default adds nothing."""
    plan: list[tuple[SchemaNode, str, bool, bool]] = []
    for (ns, name), sn in snode.children.items():
        if not sn.config and sn.keyword != "container":
            continue
        holds = sn.keyword in ("container", "list")
        if not holds and not sn.defaults:
            continue
        implicit = sn.keyword == "container" and not sn.presence and sn.config
        plan.append((sn, f"{{{ns}}}{name}", holds, implicit))
    return tuple(plan)


def _named(elem: etree._Element) -> dict[QName, list[etree._Element]]:
    """The element children of ``elem`` by name, in one pass over them;
    names split once per distinct tag (a leaf-list of 100 000 values has
    one tag)."""
    groups: dict[str, list[etree._Element]] = {}
    for child in elem.iterchildren(etree.Element):
        tag = child.tag
        found = groups.get(tag)
        if found is None:
            groups[tag] = [child]
        else:
            found.append(child)
    return {split_tag(tag): found for tag, found in groups.items()}


def _children_named(elem: etree._Element, qname: QName) -> Iterator[etree._Element]:
    tag = f"{{{qname[0]}}}{qname[1]}"
    return (c for c in elem if c.tag == tag)


def _active_cases(snode: SchemaNode, present: set[QName]) -> dict[str, str]:
    """choice name -> the case in effect (present data, else the default case)."""
    active: dict[str, str] = {}
    for choice in snode.choices:
        found = [case for case, members in choice.cases.items() if members & present]
        if found:
            active[choice.name] = found[0]
        elif choice.default_case is not None:
            active[choice.name] = choice.default_case
    return active


def _case_allows(sn: SchemaNode, active: dict[str, str]) -> bool:
    """Whether defaults of ``sn`` apply: every enclosing case is in effect."""
    return all(active.get(choice) == case for choice, case in sn.case_path)


def complete(tree: Node, schema: SchemaIndex) -> Node:
    """``tree`` with every default value YANG implies (RFC 6243 report-all)."""
    return Instance(tree, schema).complete_tree()


def validate(tree: Node, schema: SchemaIndex) -> list[ConfigError]:
    """Every error of ``tree`` as a datastore; empty when valid."""
    return check(tree, schema)[0]


def check(
    tree: Node, schema: SchemaIndex, keep_xml: bool = False
) -> tuple[list[ConfigError], Instance]:
    """validate(), also returning the instance document (defaults applied)
    so callers can read defaults of the entries they need without a second
    rendering.  ``keep_xml``: the tree is to run (``Instance.rendered``)."""
    instance = Instance(tree, schema, keep_xml)
    checker = _Checker(schema)
    checker.node(instance.holder, schema.root, "")
    return checker.errors, instance


def check_syntax(tree: Node, schema: SchemaIndex) -> list[ConfigError]:
    """The syntax constraints of RFC 7950 §8.3.1 only: every value against
    its type (range, length, pattern; a leafref against its target's type)
    and at most one case of a choice.

    This is what an edit of the candidate checks (§8.3.3: the candidate is
    validated at <validate> and <commit>), so that a configuration can be
    built step by step: a channel first, the serial port it refers to next.
    must, when, leafref existence, unique, mandatory and min/max-elements
    wait for validation.  Structure, keys, operations and config false are
    the edit's own checks.
    """
    holder = render(tree, schema, etree.Element(_HOLDER))
    checker = _Checker(schema, semantic=False)
    checker.node(holder, schema.root, "")
    return checker.errors


@functools.lru_cache(maxsize=1024)
def _names_in(source: str) -> frozenset[str]:
    """The node names an XPath expression mentions, without prefixes."""
    try:
        tokens = xpath_lexer.scan(source)
    except xpath_lexer.XPathError:
        return frozenset()
    return frozenset(t.value.rsplit(":", 1)[-1] for t in tokens if t.type == "name")


def _absent_mandatory(elem: etree._Element, sn: SchemaNode) -> frozenset[str]:
    """Mandatory leaves that ``elem`` (an instance of ``sn``) lacks."""
    mandatory = _mandatory_leaves(sn)
    if not mandatory:
        return _NOTHING
    return frozenset(
        name for name, (ns, local) in mandatory if elem.find(f"{{{ns}}}{local}") is None
    )


@functools.lru_cache(maxsize=4096)
def _mandatory_leaves(sn: SchemaNode) -> tuple[tuple[str, QName], ...]:
    """(name, qname) of the mandatory config leaves of ``sn`` outside any
    choice: found once per schema node, not once per list entry."""
    return tuple(
        (child.name, qname)
        for qname, child in sn.children.items()
        if child.keyword == "leaf" and child.mandatory and child.config and not child.case_path
    )


_NOTHING: frozenset[str] = frozenset()

_PlanStep = tuple[QName, SchemaNode, str, bool, Callable[[str], str | None] | None]


@functools.lru_cache(maxsize=4096)
def _node_plan(snode: SchemaNode, semantic: bool, fast: bool = True) -> tuple[_PlanStep, ...]:
    """How ``_Checker.node`` checks each child of ``snode``, in XML order,
    decided once per schema node rather than at each of 190 000 leaves
    (10 000 channels): (qname, node, keyword, whether its absence may be
    an error (``_Checker.missing`` is called only then), and for a leaf
    whose only rule is its type (no when, no must, no leafref to
    resolve), that type's check, which ``node`` then calls itself).
    ``fast`` False: the general way for every child (``_Checker.fast``)."""
    plan: list[_PlanStep] = []
    for qname, sn in ordered_children(snode):
        if not fast:
            plan.append((qname, sn, sn.keyword, True, None))
            continue
        required = (
            semantic
            and sn.config
            and ((sn.keyword == "leaf" and sn.mandatory) or sn.min_elements > 0)
        )
        plain = None
        if (
            sn.keyword == "leaf"
            and sn.type is not None
            and sn.when is None
            and not sn.musts
            and not (semantic and sn.leafref is not None and sn.type.require_instance)
        ):
            plain = sn.type.check
        plan.append((qname, sn, sn.keyword, bool(required), plain))
    return tuple(plan)


@dataclass
class UnitScope:
    """What incremental validation checks of one unit list (``Scope``)."""

    count: int
    """Entries the list has."""
    visit: list[etree._Element]
    """The entries to check, in document order."""
    last: etree._Element | None
    """The list's last entry."""
    unique: list[list[etree._Element]]
    """Per unique statement: the entries that may collide, in document order."""


@dataclass
class Scope:
    """The part of an instance that incremental validation checks again
    (``nf.config.incremental`` decides it): below the parents of unit
    lists (``holders``), only the entries listed per unit list are
    checked; everything outside unit entries is checked as always."""

    holders: frozenset[SchemaNode]
    units: dict[SchemaNode, UnitScope]
    leafrefs: dict[SchemaNode, ValueIndex] = field(default_factory=dict)
    """Leafrefs to other unit entries, answered from a value index of the
    targets instead of collecting every target."""


class _Checker:
    fast = True
    """False: every child checked the general way (no ``_node_plan``
    shortcut, list entries searched as containers are), for tests that the
    shortcuts change no result."""

    def __init__(
        self,
        schema: SchemaIndex,
        semantic: bool = True,
        scope: Scope | None = None,
        cache: EvalCache | None = None,
    ) -> None:
        self.schema = schema
        self.semantic = semantic
        """False: only the syntax constraints (``check_syntax``)."""
        self.scope = scope
        self.errors: list[ConfigError] = []
        self.cache: EvalCache = {} if cache is None else cache

    def groups(self, elem: etree._Element, snode: SchemaNode) -> dict[QName, list[etree._Element]]:
        """The children of ``elem`` by name; below a holder of unit lists in
        a scope, a unit list's entries are those the scope checks (the key
        is there while the list has entries)."""
        if self.scope is None or snode not in self.scope.holders:
            return _named(elem)
        groups: dict[QName, list[etree._Element]] = {}
        others: list[QName] = []
        for qname, sn in snode.children.items():
            unit = self.scope.units.get(sn)
            if unit is None:
                others.append(qname)
            elif unit.count:
                groups[qname] = unit.visit
        if others:  # one pass over the holder's children, not one per name
            named = _named(elem)
            groups.update((q, named[q]) for q in others if q in named)
        return groups

    def node(
        self,
        elem: etree._Element,
        snode: SchemaNode,
        path: str,
        absent: frozenset[str] = frozenset(),
        groups: dict[QName, list[etree._Element]] | None = None,
    ) -> None:
        """Check the children of a container, list entry or the root.

        ``absent`` are the mandatory leaves ``elem`` lacks: each is reported
        once, as missing-element, and a when of a child that depends on one
        is not evaluated (it could only fail because of it).  ``groups``:
        ``self.groups(elem, snode)`` if the caller has it."""
        if groups is None:
            groups = self.groups(elem, snode)
        self.choices(elem, snode, groups, path)
        errors = self.errors
        for qname, sn, keyword, required, plain in _node_plan(snode, self.semantic, self.fast):
            if len(errors) > MAX_ERRORS:
                return  # enough to report (a reply carries no more); invalid anyway
            instances = groups.get(qname)
            if not instances:
                if required:  # else missing() has nothing to say
                    self.missing(elem, sn, path, set(groups))
                continue
            if plain is not None:  # a leaf with only its type to check
                problem = plain(instances[0].text or "")
                if problem is not None:
                    self.invalid(sn, path + self.step(sn), problem)
            elif keyword == "leaf":
                self.leaf(instances[0], sn, path, absent)
            elif keyword == "leaf-list":
                for inst in instances:
                    if len(self.errors) > MAX_ERRORS:
                        return
                    self.leaf(inst, sn, path, absent, value_step=True)
                self.counts(sn, len(instances), path)
            elif keyword == "container":
                inst_path = path + self.step(sn)
                own = _absent_mandatory(instances[0], sn)
                if self.conditions(instances[0], sn, inst_path, absent, own):
                    self.node(instances[0], sn, inst_path, own)
            elif keyword == "list":
                # an entry's children grouped once, for its key, its absent
                # mandatory leaves and its check (not searched for each)
                grouped = self.fast and (self.scope is None or sn not in self.scope.holders)
                mandatory = _mandatory_leaves(sn)
                for inst in instances:
                    if len(errors) > MAX_ERRORS:
                        return
                    if not grouped:
                        inst_path = path + self.step(sn, inst)
                        own = _absent_mandatory(inst, sn)
                        if self.conditions(inst, sn, inst_path, absent, own):
                            self.node(inst, sn, inst_path, own)
                        continue
                    children = _named(inst)
                    inst_path = path + self.step(sn, inst, children)
                    own = (
                        frozenset(name for name, q in mandatory if q not in children)
                        if mandatory
                        else _NOTHING
                    )
                    if self.conditions(inst, sn, inst_path, absent, own):
                        self.node(inst, sn, inst_path, own, children)
                unit = self.scope.units.get(sn) if self.scope is not None else None
                if unit is None:
                    self.counts(sn, len(instances), path)
                    self.unique([instances] * len(sn.uniques), sn, path)
                    continue
                if len(self.errors) > MAX_ERRORS and (
                    not instances or instances[-1] is not unit.last
                ):
                    return  # where the whole walk stops: at the next entry
                self.counts(sn, unit.count, path)
                self.unique(unit.unique, sn, path)

    def step(
        self,
        sn: SchemaNode,
        entry: etree._Element | None = None,
        children: dict[QName, list[etree._Element]] | None = None,
    ) -> str:
        """The path step of ``sn`` (of list entry ``entry``, whose
        children by name are ``children`` if the caller has them)."""
        text = _name_step(sn)
        if entry is not None:
            for kq in sn.keys:
                if children is not None:
                    found = children.get(kq)
                    key_elem = found[0] if found else None
                else:
                    key_elem = next(_children_named(entry, kq), None)
                value = (key_elem.text or "") if key_elem is not None else ""
                text += f"[{sn.prefix}:{kq[1]}={quote(value)}]"
        return text

    def invalid(self, sn: SchemaNode, path: str, problem: str) -> None:
        """A value its type refuses (``LeafType.check``)."""
        self.errors.append(
            ConfigError("invalid-value", problem, path=path, info=(("bad-element", sn.name),))
        )

    # -- single nodes -------------------------------------------------------
    def conditions(
        self,
        elem: etree._Element,
        sn: SchemaNode,
        path: str,
        parent_absent: frozenset[str] = frozenset(),
        absent: frozenset[str] = frozenset(),
    ) -> bool:
        """when and must of an existing node; False stops descending.

        One root cause, one error: a when that names a mandatory leaf its
        parent lacks (``parent_absent``), and a must that names a mandatory
        leaf the node itself lacks (``absent``), are not evaluated; the
        missing leaf is reported instead (a channel without mode is "mode is
        missing", not also "client mode needs exactly one destination" and
        "peer mode needs one")."""
        if not self.semantic or (sn.when is None and not sn.musts):
            return True  # most leaves: no attribute read for them
        explicit = elem.get(WD_DEFAULT) is None and elem.get(_IMPLICIT) is None
        if (
            sn.when is not None
            and explicit
            and not (parent_absent and parent_absent & _names_in(sn.when.source))
            and not sn.when.boolean(elem, elem, self.cache)
        ):
            self.errors.append(
                ConfigError(
                    "operation-failed",
                    f'"{sn.name}" is not allowed here: when condition "{sn.when.source}" is false',
                    path=path,
                    info=(("bad-element", sn.name),),
                )
            )
            return False
        for must in sn.musts:
            if absent and absent & _names_in(must.expr.source):
                continue
            if not must.expr.boolean(elem, elem, self.cache):
                self.errors.append(
                    ConfigError(
                        "operation-failed",
                        must.error_message or f'must condition "{must.expr.source}" is false',
                        path=path,
                        app_tag=must.error_app_tag or "must-violation",
                    )
                )
        return True

    def leaf(
        self,
        elem: etree._Element,
        sn: SchemaNode,
        parent_path: str,
        parent_absent: frozenset[str] = frozenset(),
        value_step: bool = False,
    ) -> None:
        """Check a leaf, or a leaf-list value (``value_step``: its path ends
        in ``[.=value]``).  Its path is made only for an error: a
        10 000-channel validation checks 190 000 leaves."""

        def path() -> str:
            step = parent_path + self.step(sn)
            return step + f"[.={quote(elem.text or '')}]" if value_step else step

        if (sn.when is not None or sn.musts) and not self.conditions(
            elem, sn, path(), parent_absent
        ):
            return
        assert sn.type is not None
        value = elem.text or ""
        problem = sn.type.check(value)
        if problem is not None:
            self.invalid(sn, path(), problem)
            return
        if self.semantic and sn.leafref is not None and sn.type.require_instance:
            targets = self.scope.leafrefs.get(sn) if self.scope is not None else None
            if (
                not targets.get(sn.type.canonical(value))
                if targets is not None
                else sn.type.canonical(value)
                not in sn.leafref.string_values(elem, elem, self.cache)
            ):
                self.errors.append(
                    ConfigError(
                        "data-missing",
                        f'"{value}" does not refer to an existing '
                        f"{sn.type.leafref_path} (leafref {sn.name})",
                        path=path(),
                        app_tag="instance-required",
                    )
                )

    def missing(
        self, parent: etree._Element, sn: SchemaNode, path: str, present: set[QName]
    ) -> None:
        """Mandatory leaf or min-elements for an absent node."""
        if not self.semantic:
            return
        required = (sn.keyword == "leaf" and sn.mandatory) or sn.min_elements > 0
        if not required or not sn.config:
            return
        if sn.case_path:
            owner = sn.parent
            assert owner is not None
            if not all(
                _active_cases(owner, present).get(choice) == case for choice, case in sn.case_path
            ):
                return
        if not when_holds(sn, parent):
            return
        if sn.keyword == "leaf":
            self.errors.append(
                ConfigError(
                    "missing-element",
                    f'mandatory "{sn.name}" is missing',
                    path=path + self.step(sn),
                    info=(("bad-element", sn.name),),
                )
            )
        else:
            self.counts(sn, 0, path)

    def counts(self, sn: SchemaNode, count: int, path: str) -> None:
        if not self.semantic:
            return
        if count < sn.min_elements:
            self.errors.append(
                ConfigError(
                    "operation-failed",
                    f'"{sn.name}" needs at least {sn.min_elements} entries, has {count}',
                    path=path + self.step(sn),
                    app_tag="too-few-elements",
                )
            )
        if sn.max_elements is not None and count > sn.max_elements:
            self.errors.append(
                ConfigError(
                    "operation-failed",
                    f'"{sn.name}" takes at most {sn.max_elements} entries, has {count}',
                    path=path + self.step(sn),
                    app_tag="too-many-elements",
                )
            )

    def unique(self, entries: list[list[etree._Element]], sn: SchemaNode, path: str) -> None:
        """Each unique statement of ``sn`` over its ``entries`` (all of the
        list's, or every entry that may collide)."""
        if not self.semantic:
            return
        for spec, among in zip(sn.uniques, entries, strict=True):
            seen: dict[tuple[str, ...], etree._Element] = {}
            for entry in among:
                key = unique_key(entry, spec)
                if key is not None:
                    values = list(key)
                    first = seen.get(key)
                    if first is None:
                        seen[key] = entry
                        continue
                    entry_path = path + self.step(sn, entry)
                    info = tuple(
                        (
                            "non-unique",
                            path
                            + self.step(sn, e)
                            + "".join(f"/{sn.prefix}:{q[1]}" for q in leaf_path),
                        )
                        for e in (first, entry)
                        for leaf_path in spec
                    )
                    names = ", ".join("/".join(q[1] for q in lp) for lp in spec)
                    self.errors.append(
                        ConfigError(
                            "operation-failed",
                            f'unique constraint violated: "{names}" = '
                            f'{", ".join(values)} is used by another "{sn.name}" entry',
                            path=entry_path,
                            app_tag="data-not-unique",
                            info=info,
                        )
                    )

    def choices(
        self,
        elem: etree._Element,
        snode: SchemaNode,
        groups: dict[QName, list[etree._Element]],
        path: str,
    ) -> None:
        present = set(groups)
        for choice in snode.choices:
            found = [case for case, members in choice.cases.items() if members & present]
            if len(found) > 1:
                self.errors.append(
                    ConfigError(
                        "operation-failed",
                        f'choice "{choice.name}" has data of several cases: {", ".join(found)}',
                        path=path or "/",
                    )
                )
            elif (
                self.semantic
                and not found
                and choice.mandatory
                and self._choice_applies(choice, snode, present)
            ):
                self.errors.append(
                    ConfigError(
                        "data-missing",
                        f'mandatory choice "{choice.name}" has no case',
                        path=path or "/",
                        app_tag="missing-choice",
                        info=(("missing-choice", choice.name),),
                    )
                )
        del elem

    @staticmethod
    def _choice_applies(choice: Choice, snode: SchemaNode, present: set[QName]) -> bool:
        if choice.depth == 0:
            return True
        # a nested choice is required only inside its active enclosing case
        for members in (c for ch in snode.choices for c in ch.cases.values()):
            nested = set().union(*choice.cases.values()) if choice.cases else set()
            if nested <= members and members & present:
                return True
        return False


def unique_key(
    entry: etree._Element, spec: tuple[tuple[QName, ...], ...]
) -> tuple[str, ...] | None:
    """The values of a unique statement's leaves in a list entry; None if
    one is missing (the entry then takes no part, RFC 7950 §7.8.3)."""
    values: list[str] = []
    for leaf_path in spec:
        found = _descend(entry, leaf_path)
        if found is None:
            return None
        values.append(found.text or "")
    return tuple(values)


def _descend(entry: etree._Element, path: tuple[QName, ...]) -> etree._Element | None:
    elem: etree._Element | None = entry
    for qname in path:
        assert elem is not None
        elem = next(_children_named(elem, qname), None)
        if elem is None:
            return None
    return elem

"""``<get>``/``<get-config>`` filtering: subtree (RFC 6241 §6) and XPath (§8.9).

Both filters work in two steps.  First they *mark* nodes of the data
document: a node is either selected whole (copied with its subtree) or kept
only as containment (an ancestor of something selected).  Then one builder
copies the marked nodes into a new ``<data>`` element in document order.
Marking instead of copying as we go is what makes several filter subtrees
(or XPath union branches) that select the same data merge into one output
tree without duplicates, as RFC 6241 §6.1 requires, and it leaves the input
untouched: the same rendered datastore may be filtered by several sessions.

Containment list entries always carry their keys.  RFC 6241 §6 is written
without schema knowledge and does not require this (§6.4.4 notes that the
server need not know which leaf is the key), but RFC 7950 §7.8.5 encodes a
list entry with its keys, and without them a client cannot tell which entry
a selected leaf belongs to.  libyang-based servers (netopeer2) behave the
same way.  The schema is what says which children are keys.

Everything here is pure: no I/O, no global state.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from pyang import xpath_lexer

from nf.config.codec import NC_NS, split_tag
from nf.config.errors import ConfigError
from nf.northbound.xpath_sandbox import XPathFailed, XPathTooCostly, positions
from nf.schema import SchemaIndex, SchemaNode

# The token classes after which '/' starts an absolute location path, and
# those that begin a step; shared with the YANG XPath rewriter so that both
# agree on what an absolute path is.
from nf.schema.xpath import _PATH_START_AFTER, _STEP_START

Evaluate = Callable[[etree._Element, str, dict[str, str]], list[int]]
"""Evaluates an XPath expression where it can be stopped: the document-order
positions of the elements it selects (``XPathSandbox.positions``)."""

_XML_SPACE = " \t\r\n"
"""XML whitespace (not Python's wider str.strip() set): RFC 6241 §6.2.5."""

_NC_TYPE = f"{{{NC_NS}}}type"
_NC_SELECT = f"{{{NC_NS}}}select"


class FilterError(Exception):
    """The ``<filter>`` element cannot be applied; carries the rpc-error to send."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def errors(self) -> list[ConfigError]:
        """The same error as a list, like ``EditError.errors``."""
        return [self.error]


@dataclass
class _Marks:
    """Nodes of the source document that the output keeps.

    lxml returns the same proxy object for a node as long as a reference to
    it is alive, so sets of elements compare by node identity here.
    """

    whole: set[etree._Element] = field(default_factory=set)
    """Selected with their entire subtree."""
    containment: set[etree._Element] = field(default_factory=set)
    """Kept as ancestors of selected nodes (plus their keys if list entries)."""


def apply_filter(
    data: etree._Element,
    filter_elem: etree._Element | None,
    schema: SchemaIndex,
    costly_xpath: Evaluate | None = None,
    max_depth: int | None = None,
) -> etree._Element:
    """Return a new ``<data>`` element holding what ``filter_elem`` selects.

    ``data`` is a ``<data>`` element whose children are the top-level nodes
    of the datastore (configuration and state alike); it is never modified.
    No filter selects everything (RFC 6241 §6.4.1).  Raises ``FilterError``
    for an unknown filter type, an XPath filter without ``select`` or an
    invalid XPath expression.

    ``max_depth`` (RFC 8526 <get-data>): of every selected node, only that
    many levels are copied, the node itself being level 1 (no filter
    selects the top-level nodes).  The key leaves of a list entry are part
    of its level, as an entry cannot be told from its siblings without
    them.  The cut is made while copying, so a shallow depth costs less
    than the whole subtree.
    """
    if filter_elem is None:
        if max_depth is None:
            return copy.deepcopy(data)
        marks = _Marks(whole=set(element_children(data)))
        return _build(data, marks, schema, max_depth)
    kind = _attribute(filter_elem, "type", _NC_TYPE)
    if kind is None or kind == "subtree":
        return _build(data, _subtree_marks(data, filter_elem, schema), schema, max_depth)
    if kind == "xpath":
        select = _attribute(filter_elem, "select", _NC_SELECT)
        if select is None:
            raise FilterError(
                ConfigError(
                    "missing-attribute",
                    'an XPath filter needs a "select" attribute',
                    type="protocol",
                    info=(("bad-attribute", "select"), ("bad-element", "filter")),
                )
            )
        check_select_length(select)
        holder = copy.deepcopy(data)  # its own document: "/" is the holder's root
        marks = _xpath_marks(holder, filter_elem, select, costly_xpath)
        return _build(holder, marks, schema, max_depth)
    raise FilterError(
        ConfigError(
            "bad-attribute",
            f'unknown filter type "{kind}" (expected "subtree" or "xpath")',
            type="protocol",
            info=(("bad-attribute", "type"), ("bad-element", "filter")),
        )
    )


def _attribute(elem: etree._Element, name: str, qualified: str) -> str | None:
    """An attribute given unqualified (as ncclient sends it) or in the base namespace."""
    value = elem.get(name)
    return elem.get(qualified) if value is None else value


def element_children(elem: etree._Element) -> list[etree._Element]:
    """Element children only: comments and processing instructions are not
    filter nodes.  (lxml's own element test: a third of the time of an
    isinstance check per child, which counts at 100 000 filter nodes.)"""
    return list(elem.iterchildren(etree.Element))


def has_element_children(elem: etree._Element) -> bool:
    """Whether ``elem`` has an element child; O(1) for a leaf."""
    return len(elem) > 0 and any(isinstance(child.tag, str) for child in elem)


# -- subtree filters (RFC 6241 §6) ------------------------------------------------


def _subtree_marks(
    data: etree._Element, filter_elem: etree._Element, schema: SchemaIndex
) -> _Marks:
    """Mark what the children of ``filter_elem`` select among the top-level nodes.

    The top level is not a data node, so there is no parent for content
    match nodes to select (§6.2.5): a top-level content match node selects
    just the top-level leaves it matches, and does not gate its siblings,
    which may belong to other modules.  An empty filter selects nothing
    (§6.4.2).
    """
    walk = _SubtreeWalk()
    nodes = element_children(filter_elem)
    for node in nodes:
        if _is_content_match(node):
            for candidate in walk.matching(node, data):
                if _value_matches(node, candidate, schema.root):
                    walk.marks.whole.add(candidate)
    walk.select([n for n in nodes if not _is_content_match(n)], data, schema.root)
    return walk.marks


SUBTREE_BUDGET = 2_000_000
"""Data nodes one subtree filter may look at.  A filter of F sibling nodes
against a list of D entries costs F x D; without a bound, 50 000 filter
entries against 1 000 channels take seconds of a shared CPU.  Selecting list
entries by their keys is served from an index and costs next to nothing."""


def _is_content_match(node: etree._Element) -> bool:
    """A leaf filter node with non-whitespace text (§6.2.5).

    Whitespace-only content is a selection node, like an empty element.
    """
    return not has_element_children(node) and bool((node.text or "").strip(_XML_SPACE))


class _SubtreeWalk:
    """One application of a subtree filter: the marks, a budget of data
    nodes looked at, and per-parent indexes of children by name and of list
    entries by key, built once so that each filter node finds its matches
    without scanning every sibling."""

    def __init__(self, budget: int | None = None) -> None:
        self.marks = _Marks()
        self.limit = SUBTREE_BUDGET if budget is None else budget
        self.budget = self.limit
        self._by_name: dict[etree._Element, dict[str, list[etree._Element]]] = {}
        self._by_key: dict[
            tuple[etree._Element, str, str], dict[tuple[str, ...], etree._Element]
        ] = {}

    def _spend(self, count: int) -> None:
        self.budget -= count
        if self.budget < 0:
            raise FilterError(
                ConfigError(
                    "resource-denied",
                    f"the subtree filter would look at more than {self.limit} data "
                    "nodes; select list entries by their keys or split the request",
                    type="application",
                )
            )

    def _named(self, parent: etree._Element, name: str) -> list[etree._Element]:
        index = self._by_name.get(parent)
        if index is None:
            index = {}
            kids = element_children(parent)
            self._spend(len(kids))
            for child in kids:
                index.setdefault(split_tag(child.tag)[1], []).append(child)
            self._by_name[parent] = index
        return index.get(name, [])

    def matching(self, node: etree._Element, parent: etree._Element) -> list[etree._Element]:
        """Children of ``parent`` that the filter node names.

        A filter node in a namespace matches only that namespace (§6.2.1).
        One without a namespace matches the name in any namespace, as
        clients that omit xmlns expect.  A node in the NETCONF base
        namespace is treated the same: it has only inherited the namespace
        of ``<filter>`` from a client that wrote the whole rpc under a
        default xmlns, and no data node lives in that namespace.  Attribute
        match expressions (§6.2.2) are honoured: every attribute of the
        filter node must be present on the data node with the same value.
        """
        ns, name = split_tag(node.tag)
        any_ns = ns in ("", NC_NS)
        candidates = self._named(parent, name)
        self._spend(len(candidates))
        return [
            child
            for child in candidates
            if (any_ns or split_tag(child.tag)[0] == ns)
            and all(child.get(attr) == value for attr, value in node.attrib.items())
        ]

    def _entries_by_key(
        self,
        node: etree._Element,
        parent: etree._Element,
        snode: SchemaNode,
        inner: list[etree._Element],
    ) -> list[etree._Element] | None:
        """The list entries a filter node selects by exact key values, from
        an index; None when the node does not give every key as a content
        match (then the entries are scanned)."""
        wanted: dict[str, str] = {}
        for child in inner:
            if _is_content_match(child):
                wanted.setdefault(split_tag(child.tag)[1], (child.text or "").strip(_XML_SPACE))
        key_names = [k[1] for k in snode.keys]
        if not key_names or any(k not in wanted for k in key_names):
            return None
        ns, name = split_tag(node.tag)
        index_key = (parent, ns, name)
        index = self._by_key.get(index_key)
        if index is None:
            index = {}
            for entry in self.matching(node, parent):
                values = []
                for key in key_names:
                    leaf = next(
                        (c for c in element_children(entry) if split_tag(c.tag)[1] == key), None
                    )
                    values.append(leaf.text or "" if leaf is not None else "")
                index.setdefault(tuple(values), entry)
            self._by_key[index_key] = index
        key_types = [snode.children[k].type for k in snode.keys]
        lookup = tuple(
            t.canonical(wanted[k]) if t is not None else wanted[k]
            for k, t in zip(key_names, key_types, strict=True)
        )
        hit = index.get(lookup)
        return [hit] if hit is not None else []

    def select(
        self, nodes: list[etree._Element], parent: etree._Element, snode: SchemaNode | None
    ) -> bool:
        """Apply selection and containment nodes to the children of ``parent``.

        Each filter node is applied on its own and the results are merged,
        so two sibling filter nodes for the same list (one per wanted entry)
        give the union of their entries (§6.4.7).  Returns whether anything
        was selected.
        """
        selected = False
        for node in nodes:
            inner = element_children(node)
            node_snode = snode.children.get(split_tag(node.tag)) if snode is not None else None
            candidates: list[etree._Element] | None = None
            if (
                inner
                and not node.attrib
                and node_snode is not None
                and node_snode.keyword == "list"
                and split_tag(node.tag)[0] not in ("", NC_NS)
            ):
                candidates = self._entries_by_key(node, parent, node_snode, inner)
            if candidates is None:
                candidates = self.matching(node, parent)
            for candidate in candidates:
                if not inner:  # selection node: the whole subtree (§6.2.4)
                    self.marks.whole.add(candidate)
                    selected = True
                    continue
                child_snode = (
                    snode.children.get(split_tag(candidate.tag)) if snode is not None else None
                )
                if self.sibling_set(inner, candidate, child_snode):
                    self.marks.containment.add(candidate)
                    selected = True
        return selected

    def sibling_set(
        self, nodes: list[etree._Element], instance: etree._Element, snode: SchemaNode | None
    ) -> bool:
        """Process one sibling set of a containment node against one data instance.

        RFC 6241 §6.2.5: every content match node must match (AND),
        otherwise nothing of this instance is selected, not even the content
        match nodes.  When they all match, the matching leaves are selected;
        containment nodes are processed further and selection nodes select
        their subtrees; and if the set has content match nodes only, the
        whole instance is selected.  Without content match nodes the
        instance is kept only if something below it is selected (§6.3: the
        filter must match down to its innermost element).  Returns whether
        the instance is part of the output.
        """
        content: list[etree._Element] = []
        others: list[etree._Element] = []
        for n in nodes:
            (content if _is_content_match(n) else others).append(n)
        matched: list[etree._Element] = []
        for node in content:
            hits = [c for c in self.matching(node, instance) if _value_matches(node, c, snode)]
            if not hits:
                return False
            matched.extend(hits)
        if content and not others:
            self.marks.whole.add(instance)
            return True
        self.marks.whole.update(matched)
        selected = self.select(others, instance, snode)
        return selected or bool(content)


def _value_matches(
    node: etree._Element, candidate: etree._Element, snode: SchemaNode | None
) -> bool:
    """Exact match of a content match node against a data leaf (§6.2.5).

    Leading and trailing whitespace of the filter text is ignored.  Where
    the schema knows the leaf's type the filter value is put in canonical
    form first, so ``<port>04001</port>`` matches the stored ``4001``
    (data is always rendered canonical).  A content match node names a
    leaf: it never matches a node with children.
    """
    if has_element_children(candidate):
        return False
    wanted = (node.text or "").strip(_XML_SPACE)
    leaf = snode.children.get(split_tag(candidate.tag)) if snode is not None else None
    if leaf is not None and leaf.type is not None:
        wanted = leaf.type.canonical(wanted)
    return (candidate.text or "") == wanted


# -- XPath filters (RFC 6241 §8.9) ------------------------------------------------


MAX_SELECT = 16384
"""Characters of an XPath filter expression; longer ones are refused before
any work (real filters are a few hundred characters)."""
MAX_CHEAP_BRANCHES = 32
MAX_DESCENDANT_PATHS = 4
_COSTLY_AXES = frozenset(
    {
        "ancestor",
        "ancestor-or-self",
        "descendant",
        "descendant-or-self",
        "following",
        "following-sibling",
        "parent",
        "preceding",
        "preceding-sibling",
    }
)


CACHED_SELECT = 1024
"""Characters of the longest XPath expression whose tokens are kept."""


def scan_select(select: str) -> tuple[Any, ...]:
    """pyang's XPath tokens of ``select`` (xpath_lexer.XPathError on a bad
    token), kept for the next request with the same expression: a client
    polls with one, and each filtered <get> scanned it four times (the
    filter's branches, its rewrite, each branch's rewrite, the selection),
    a tenth of the request's work.  Callers only read the tokens.  Only
    expressions of up to CACHED_SELECT characters are kept, 256 of them:
    a client sending many long ones would otherwise pin megabytes."""
    if len(select) > CACHED_SELECT:
        return tuple(xpath_lexer.scan(select))
    return _scan_kept(select)


@functools.lru_cache(maxsize=256)
def _scan_kept(select: str) -> tuple[Any, ...]:
    return tuple(xpath_lexer.scan(select))


def check_select_length(select: str) -> None:
    """Refuse an XPath expression over MAX_SELECT characters (FilterError,
    too-big) before any work: scanning a megabyte of tokens alone takes
    seconds, and every reader of a select (the filter, a subscription's
    filter check, ``selection.preselect``) looks at its length first."""
    if len(select) > MAX_SELECT:
        raise FilterError(
            ConfigError(
                "too-big",
                f"the XPath filter has {len(select)} characters; at most {MAX_SELECT} are accepted",
                type="application",
                info=(("bad-attribute", "select"), ("bad-element", "filter")),
            )
        )


def _xpath_marks(
    holder: etree._Element,
    filter_elem: etree._Element,
    select: str,
    costly: Evaluate | None,
) -> _Marks:
    """Evaluate ``select`` over ``holder`` and mark the nodes it returns
    (its length is checked by the caller).

    RFC 6241 §8.9.1: the namespace declarations are those in scope on the
    ``<filter>`` element, including the default namespace, and the context
    node is the root node, whose children are the datastore's top-level
    nodes.  ``holder`` (a copy of ``<data>``, root of its own document)
    plays that root: absolute paths are rewritten to start below it and it
    is the context node of relative ones.  A result node is selected whole
    and its ancestors are kept as containment; a text or attribute result
    stands for its element.  A result that is not a node-set (a number, a
    string, a boolean) selects nothing.

    Cost: an expression whose union branches are each provably linear in
    the data (``_cheap``) is evaluated here, branch by branch, the union
    taken in Python (libxml2's own union is quadratic); any other goes to
    ``costly``, which runs it where it can be stopped (the daemon's
    ``XPathSandbox``).  Pure callers (tests, small notification documents)
    pass None and evaluate everything here.
    """
    namespaces = {str(p): uri for p, uri in filter_elem.nsmap.items() if p}
    default_prefix: str | None = None
    default_ns = filter_elem.nsmap.get(None)
    if default_ns and default_ns != NC_NS:
        default_prefix = "nf-default"
        while default_prefix in namespaces:
            default_prefix += "-"
        namespaces[default_prefix] = default_ns
    try:
        tokens = scan_select(select)  # xpath_lexer.XPathError on a bad token
        branches = _union_branches(tokens)
        whole = _rewrite_select(select, default_prefix)
        etree.XPath(whole, namespaces=namespaces)  # a syntax error is answered as a whole
        elems = list(holder.iter())
        if costly is None or (
            len(branches) <= MAX_CHEAP_BRANCHES and all(_cheap(b) for b in branches)
        ):
            order = {elem: i for i, elem in enumerate(elems)}
            found: set[int] = set()
            for branch in branches:
                expr = _rewrite_select("".join(t.value for t in branch), default_prefix)
                found.update(positions(holder, expr, namespaces, order))
        else:
            found = set(costly(holder, whole, namespaces))
    except (etree.XPathError, xpath_lexer.XPathError, SyntaxError, XPathFailed) as exc:
        raise FilterError(
            ConfigError(
                "invalid-value",
                f'invalid XPath filter "{select}": {exc}',
                type="protocol",
            )
        ) from exc
    except XPathTooCostly as exc:
        raise FilterError(
            ConfigError(
                "resource-denied",
                f"the XPath filter was stopped: {exc}; narrow the expression "
                "(a union of many branches, descendant steps after the first, "
                "or paths compared with paths inside predicates cost more than "
                "linear time)",
                type="application",
            )
        ) from exc
    marks = _Marks()
    for position in sorted(found):
        elem = elems[position]
        if elem is holder:  # the root node: the whole datastore
            marks.whole.update(element_children(holder))
            continue
        marks.whole.add(elem)
        for ancestor in elem.iterancestors():
            if ancestor is holder:
                break
            marks.containment.add(ancestor)
    return marks


MAX_EVENT_FILTER_NODES = 1000
"""Elements of a subscription's subtree filter."""


def check_event_filter(filter_elem: etree._Element) -> None:
    """Refuse a subscription filter that could make publishing slow.

    A subscription's filter runs on every event as it is published, where
    the relay's own events come from, so its cost is bounded up front: a
    subtree filter of at most MAX_EVENT_FILTER_NODES elements, an XPath
    filter whose union branches are all provably linear (``_cheap``) and at
    most MAX_CHEAP_BRANCHES.  Events are small documents: that keeps every
    check well under a millisecond.  Raises FilterError (resource-denied;
    too-big for an expression over MAX_SELECT characters).
    """

    def refuse(why: str) -> FilterError:
        return FilterError(
            ConfigError(
                "resource-denied",
                f"a notification filter must be cheap to run on every event: {why}",
                type="application",
            )
        )

    kind = _attribute(filter_elem, "type", _NC_TYPE)
    if kind == "xpath":
        select = _attribute(filter_elem, "select", _NC_SELECT) or ""
        check_select_length(select)
        branches = _union_branches(scan_select(select))
        if len(branches) > MAX_CHEAP_BRANCHES:
            raise refuse(f"more than {MAX_CHEAP_BRANCHES} union branches")
        if not all(_cheap(b) for b in branches):
            raise refuse(
                "descendant steps after the first, paths compared with paths or "
                "absolute paths inside predicates, or axes other than child"
            )
        return
    nodes = sum(1 for _ in itertools.islice(filter_elem.iter(), MAX_EVENT_FILTER_NODES + 2))
    if nodes > MAX_EVENT_FILTER_NODES + 1:  # the <filter> element itself is not counted
        raise refuse(f"a subtree filter of more than {MAX_EVENT_FILTER_NODES} elements")


def _union_branches(tokens: Sequence[Any]) -> list[list[Any]]:
    """The top-level ``|`` branches of an expression (outside any bracket)."""
    branches: list[list[Any]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.type in ("LBRACKET", "LPAREN"):
            depth += 1
        elif tok.type in ("RBRACKET", "RPAREN"):
            depth -= 1
        if tok.type == "BAR" and depth == 0:
            branches.append([])
            continue
        branches[-1].append(tok)
    return branches


def _cheap(tokens: list[Any]) -> bool:
    """Whether libxml2 evaluates this union-free expression in time linear
    in the data.  Conservative: False sends it to the sandbox, which still
    evaluates it correctly.

    Linear are: child steps, with ``//`` only where a path starts outside
    predicates (from the root; a descendant step from a large node-set makes
    libxml2 merge node-sets quadratically), at most ``MAX_DESCENDANT_PATHS``
    of them; and predicates, at most two deep,
    holding at most one relative child path each (a path compared with a
    path compares every pair; an absolute path is evaluated again for every
    context node).  No union anywhere, no axis but child, attribute and
    self, no ``..``.
    """
    significant = [t for t in tokens if t.type != "_whitespace"]
    depth = 0
    paths: list[int] = [0]
    previous: str | None = None
    descendant_paths = 0
    for tok in significant:
        kind = tok.type
        if kind in ("BAR", "DOTDOT"):
            return False
        if kind == "axis" and tok.value in _COSTLY_AXES:
            return False
        if kind == "DOUBLESLASH":
            if depth or previous not in _PATH_START_AFTER:
                return False
            descendant_paths += 1
            if descendant_paths > MAX_DESCENDANT_PATHS:
                return False
        if kind == "LBRACKET":
            depth += 1
            if depth > 2:
                return False
            paths.append(0)
        elif kind == "RBRACKET":
            depth -= 1
            paths.pop()
        elif depth and kind in ("SLASH", "DOUBLESLASH") and previous in _PATH_START_AFTER:
            return False  # an absolute path inside a predicate
        elif depth and kind in _STEP_START and previous in _PATH_START_AFTER:
            paths[-1] += 1
            if paths[-1] > 1:
                return False
        previous = kind
    return True


def _rewrite_select(source: str, default_prefix: str | None) -> str:
    """Make ``source`` evaluable over the holder document.

    An absolute path ``/a`` becomes ``/*/a`` (the bare root ``/`` becomes
    ``/*``) because the holder element sits between the document root and
    the top-level data nodes.

    Element name tests without a prefix are in the default namespace of the
    filter element (§8.9.1 counts it among the declarations in scope, where
    plain XPath 1.0 would not): ``default_prefix`` is bound to it.  With no
    such default (or only the NETCONF base namespace, inherited from the
    rpc, where no data node lives) the test could never match anything, so
    it is read as the local name in any namespace (``*[local-name()='a']``),
    the leniency subtree filters give elements without xmlns.  Attribute
    and variable names are left alone.
    """
    tokens = scan_select(source)  # xpath_lexer.XPathError on a bad token
    out: list[str] = []
    previous: str | None = None
    axis: str | None = None
    for i, tok in enumerate(tokens):
        if tok.type == "_whitespace":
            out.append(tok.value)
            continue
        before, previous = previous, tok.type
        if tok.type == "SLASH" and before in _PATH_START_AFTER:
            following = next((t.type for t in tokens[i + 1 :] if t.type != "_whitespace"), None)
            out.append("/*/" if following in _STEP_START else "/*")
            continue
        if tok.type == "axis":
            axis = tok.value
        if (
            tok.type == "name"
            and ":" not in tok.value
            and before not in ("AT", "DOLLAR")
            and not (before == "DOUBLECOLON" and axis in ("attribute", "namespace"))
        ):
            if default_prefix is not None:
                out.append(f"{default_prefix}:{tok.value}")
            else:
                out.append(f"*[local-name()='{tok.value}']")
            continue
        out.append(tok.value)
    return "".join(out)


# -- output ----------------------------------------------------------------------


def _build(
    source: etree._Element, marks: _Marks, schema: SchemaIndex, max_depth: int | None = None
) -> etree._Element:
    """Copy the marked nodes of ``source`` into a new ``<data>`` element."""
    out = etree.Element(source.tag, attrib=_attributes(source), nsmap=_nsmap(source.nsmap))
    _copy_children(source, out, schema.root, marks, (), max_depth)
    return out


def _list_keys(snode: SchemaNode | None) -> tuple[tuple[str, str], ...]:
    return snode.keys if snode is not None and snode.keyword == "list" else ()


def _copy_children(
    source: etree._Element,
    target: etree._Element,
    snode: SchemaNode | None,
    marks: _Marks,
    keys: tuple[tuple[str, str], ...],
    max_depth: int | None = None,
) -> None:
    """Copy the marked children of ``source`` under ``target``, in document order.

    ``keys`` are the key leaves of ``source`` when it is a list entry kept
    as containment: they are copied whether marked or not.  A selected
    node is copied ``max_depth`` levels deep (all of it if None).
    """
    for child in element_children(source):
        qname = split_tag(child.tag)
        if qname in keys:
            _append_copy(target, child, snode.children.get(qname) if snode is not None else None)
        elif child in marks.whole:
            child_snode = snode.children.get(qname) if snode is not None else None
            if max_depth is None:
                _append_copy(target, child, child_snode)
            else:
                _copy_shallow(child, target, child_snode, max_depth)
        elif child in marks.containment:
            child_snode = snode.children.get(qname) if snode is not None else None
            child_keys = _list_keys(child_snode)
            sub = _copy_element(target, child)
            _copy_children(child, sub, child_snode, marks, child_keys, max_depth)


def _copy_shallow(
    source: etree._Element, target: etree._Element, snode: SchemaNode | None, depth: int
) -> None:
    """Append a copy of ``source`` to ``target`` with ``depth`` levels of
    it (``source`` being the first), a list entry's keys always included."""
    sub = _copy_element(target, source)
    sub.text = source.text
    keys = _list_keys(snode)
    if depth <= 1 and not keys:
        return
    for child in element_children(source):
        qname = split_tag(child.tag)
        if qname in keys:
            _append_copy(sub, child, snode.children.get(qname) if snode is not None else None)
        elif depth > 1:
            child_snode = snode.children.get(qname) if snode is not None else None
            _copy_shallow(child, sub, child_snode, depth - 1)


def _append_copy(target: etree._Element, source: etree._Element, snode: SchemaNode | None) -> None:
    """Append a copy of ``source`` (all of it) to ``target``.  A deep copy
    is appended as it is, unless the subtree may hold a value with
    prefixes (an identityref, an instance-identifier such as a NACM rule's
    path): appending a copy reconciles namespaces, and lxml then drops a
    prefix declaration whose namespace an ancestor declares as its
    default, though the value still uses the prefix.  Such a subtree
    (small: NACM rules) is made element by element in place."""
    if snode is None or not _holds_prefixed_values(snode):
        target.append(copy.deepcopy(source))
        return
    sub = _copy_element(target, source)
    sub.text = source.text
    for child in element_children(source):
        _append_copy(sub, child, snode.children.get(split_tag(child.tag)))


def _copy_element(target: etree._Element, source: etree._Element) -> etree._Element:
    """A new child of ``target`` with ``source``'s tag, attributes and the
    namespace declarations ``target`` does not have in scope already; no
    text, no children."""
    declared = {p: uri for p, uri in source.nsmap.items() if target.nsmap.get(p) != uri}
    return etree.SubElement(target, source.tag, attrib=_attributes(source), nsmap=_nsmap(declared))


@functools.lru_cache(maxsize=4096)
def _holds_prefixed_values(snode: SchemaNode) -> bool:
    """Whether a leaf of ``snode``'s subtree has a type whose values carry
    prefixes; once per schema node (a schema is not changed once built)."""
    return (snode.type is not None and snode.type.prefixed) or any(
        _holds_prefixed_values(c) for c in snode.children.values()
    )


def _attributes(elem: etree._Element) -> dict[str, str]:
    return {str(name): str(value) for name, value in elem.attrib.items()}


def _nsmap(mapping: Any) -> Any:
    """Pass an nsmap with a None (default namespace) key; lxml-stubs reject that type."""
    return dict(mapping)

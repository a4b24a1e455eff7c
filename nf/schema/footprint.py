"""What each constraint can read: the static analysis behind incremental validation.

A commit changes a few entries of the lists that are units of change (the
entries of a list directly below a top-level container, or of a top-level
list: ``nf.config.diff``).  Everything inside a changed entry is checked
again; what needs finding is which constraints of *other* entries read
the changed data.  This module answers it from the compiled schema, once
per schema: for every must, when and leafref inside a unit entry it walks
the XPath location paths (``..``, ``current()``, absolute paths,
predicates) over the schema tree and records the schema nodes the
expression reads outside its own entry.

A read of other entries of a list through ``list[p = current()/q]`` (the
usual "no other entry has my port" must) or through a leafref path
(``../../serial-port/name``) is a ``Join``: an entry Y can only be affected
by a change of entry X if some value of ``q`` in Y equals a value of ``p``
in X (before or after the change), so incremental validation looks those Y
up in a value index instead of checking every entry.  An expression whose
reach cannot be bounded (another axis, ``//``, a variable, an unknown
function result) reads everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyang import xpath_parser

from nf.schema.index import SchemaIndex, SchemaNode


@dataclass(frozen=True)
class Join:
    """Entries Y of ``reader`` read entries X of ``source`` only where a value
    of ``rhs`` (in Y) equals a value of ``lhs`` (in X).  Both are XPath
    location paths relative to an entry, with the prefixes of
    ``namespaces``."""

    reader: SchemaNode
    source: SchemaNode
    lhs: str
    rhs: str


@dataclass(frozen=True)
class Read:
    """One schema node read beyond the reader's own entry.  ``whole``: its
    value or subtree is read; else only whether it exists (a step passed)."""

    node: SchemaNode
    whole: bool
    join: Join | None


@dataclass
class UnitReads:
    """What the constraints inside the entries of one unit list read beyond
    their own entry."""

    unit: SchemaNode
    reads: list[Read] = field(default_factory=list)
    unbounded: bool = False
    """Some expression's reach could not be bounded: any change may matter."""
    when_reads: list[Read] = field(default_factory=list)
    when_unbounded: bool = False
    """The same for ``when`` expressions alone: they decide defaults too, so
    a change they read means the instance document must be rebuilt."""
    leafrefs: dict[SchemaNode, Join] = field(default_factory=dict)
    """Leafrefs whose target is a value of other unit entries."""


def unit_lists(schema: SchemaIndex) -> list[SchemaNode]:
    """The lists whose entries are units of change (``nf.config.diff``)."""
    found: list[SchemaNode] = []
    for top in schema.root.children.values():
        if not top.config:
            continue
        if top.keyword == "list":
            found.append(top)
        elif top.keyword == "container":
            found.extend(c for c in top.children.values() if c.keyword == "list" and c.config)
    return found


def unit_of(node: SchemaNode, units: Iterable[SchemaNode]) -> SchemaNode | None:
    """The unit list ``node`` is in (or is), if any."""
    chain = {node, *node.ancestors()}
    return next((u for u in units if u in chain), None)


def touches(read: Read, changed: SchemaNode) -> bool:
    """Can a change of data at ``changed`` (its subtree, or the existence
    of an entry when it is a list) alter what ``read`` reads?"""
    if changed is read.node or changed in read.node.ancestors():
        return True  # the change encloses what is read
    return read.whole and read.node in changed.ancestors()  # what is read encloses it


class _Unbounded(Exception):
    """The expression's reach cannot be bounded."""


@dataclass(frozen=True)
class _At:
    """A set of nodes during the walk: their schema node, whether they are
    still inside the reader's own entry, and the join they were reached by."""

    node: SchemaNode
    own: bool
    join: Join | None


class _Walk:
    def __init__(self, reader: SchemaNode, context: SchemaNode, units: Sequence[SchemaNode]):
        self.reader = reader
        self.context = context
        self.units = units
        self.reads: list[Read] = []

    def start(self) -> _At:
        return _At(self.context, True, None)

    def read(self, at: _At, whole: bool) -> None:
        if not at.own:
            self.reads.append(Read(at.node, whole, at.join))

    # -- expressions -------------------------------------------------------------------
    def expr(self, ast: Any, here: list[_At]) -> None:
        if isinstance(ast, list):  # FilterExpr / RelativeLocationPath
            self.read_all(self.path_expr(ast, here), whole=True)
            return
        kind = ast[0]
        if kind in ("absolute", "relative"):
            self.read_all(self.location(ast, here), whole=True)
        elif kind == "path_expr":
            self.expr(ast[1], here)
        elif kind in ("bool", "comp", "arith"):
            self.expr(ast[2], here)
            self.expr(ast[3], here)
        elif kind == "negative":
            self.expr(ast[1], here)
        elif kind == "union":
            for sub in ast[1]:
                self.expr(sub, here)
        elif kind in ("literal", "number"):
            pass
        elif kind == "function_call":
            if ast[1] == "current":
                self.read_all([self.start()], whole=True)
            for arg in ast[2]:
                self.expr(arg, here)
        else:  # variables, filter expressions with predicates
            raise _Unbounded(kind)

    def read_all(self, found: list[_At], whole: bool) -> None:
        for at in found:
            self.read(at, whole)

    def path_expr(self, ast: list[Any], here: list[_At]) -> list[_At]:
        head, steps = ast[0], ast[1:]
        if head[0] == "function_call" and head[1] == "current" and not head[2]:
            return self.steps(steps, [self.start()])
        if head[0] == "step":
            return self.steps(ast, here)
        raise _Unbounded("path from a function result")

    def location(self, ast: Any, here: list[_At]) -> list[_At]:
        if ast[0] == "absolute":
            root = self.context
            while root.parent is not None:
                root = root.parent
            return self.steps(ast[1], [_At(root, False, None)])
        return self.steps(ast[1], here)

    def steps(self, steps: Sequence[Any], here: list[_At]) -> list[_At]:
        for step in steps:
            _, axis, test, preds = step
            following: list[_At] = []
            for at in here:
                for nxt, own in self.axis(at, axis, test):
                    reached = self.enter(at, nxt, own, preds)
                    self.read(reached, whole=False)
                    for pred in preds:
                        self.expr(pred, [reached])
                    following.append(reached)
            here = following
        return here

    def axis(self, at: _At, axis: str, test: Any) -> list[tuple[SchemaNode, bool]]:
        if axis == "self":
            return [(at.node, at.own)]
        if axis == "parent":
            parent = at.node.parent
            if parent is None:
                return []
            leaving = at.own and at.node is self.reader
            return [(parent, at.own and not leaving)]
        if axis != "child":
            raise _Unbounded(axis)
        if isinstance(test, tuple) and test[0] == "name":
            children = [c for c in at.node.children.values() if c.name == test[2]]
        elif test in ("wildcard", ("node_type", "node")) or (
            isinstance(test, tuple) and test[0] == "has_namespace"
        ):
            children = list(at.node.children.values())
        else:
            raise _Unbounded(str(test))
        return [(c, at.own) for c in children if c.config]

    def enter(self, at: _At, node: SchemaNode, own: bool, preds: Sequence[Any]) -> _At:
        """The state at ``node``: entering another unit entry through a
        predicate ``[p = current()/q]`` makes a join."""
        join = at.join
        if not own and join is not None and node is join.source.parent:
            join = None  # left the joined entry
        if not own and node in self.units and at.node is node.parent and preds:
            join = self.join_of(node, preds[0])
        return _At(node, own, join)

    def join_of(self, source: SchemaNode, pred: Any) -> Join | None:
        if pred[0] != "comp" or pred[1] != "=":
            return None
        for lhs, rhs in ((pred[2], pred[3]), (pred[3], pred[2])):
            p = _child_path(source, lhs)
            q = _current_path(self.reader, self.context, rhs)
            if p is not None and q is not None:
                return Join(self.reader, source, _xpath(p), _xpath(q))
        return None


def _child_path(start: SchemaNode, ast: Any) -> list[SchemaNode] | None:
    """``a/b`` (child steps without predicates) from ``start``, resolved."""
    if not (isinstance(ast, tuple) and ast[0] == "relative"):
        return None
    return _resolve(start, ast[1])


def _resolve(start: SchemaNode, steps: Sequence[Any]) -> list[SchemaNode] | None:
    path: list[SchemaNode] = []
    node = start
    for step in steps:
        _, axis, test, preds = step
        if axis != "child" or preds or not (isinstance(test, tuple) and test[0] == "name"):
            return None
        found = [c for c in node.children.values() if c.name == test[2]]
        if len(found) != 1:
            return None
        node = found[0]
        path.append(node)
    return path


def _current_path(reader: SchemaNode, context: SchemaNode, ast: Any) -> list[SchemaNode] | None:
    """``current()/...`` as child steps from the reader's entry, if it stays in it."""
    if not (isinstance(ast, list) and ast and ast[0] == ("function_call", "current", [])):
        return None
    chain = [context, *context.ancestors()]
    if reader not in chain:
        return None
    down = list(reversed(chain[: chain.index(reader)]))  # reader's entry -> context
    for step in ast[1:]:
        _, axis, _test, preds = step
        if preds:
            return None
        if axis == "parent":
            if not down:
                return None  # leaves the entry
            down.pop()
            continue
        rest = _resolve(down[-1] if down else reader, [step])
        if rest is None:
            return None
        down.extend(rest)
    return down


def _xpath(path: list[SchemaNode]) -> str:
    return "/".join(f"{n.prefix}:{n.name}" for n in path) or "."


def _leafref_join(reader: SchemaNode, leaf: SchemaNode, source: str) -> Join | None:
    """``../../list/leaf`` from a leaf of a unit entry into another unit list."""
    try:
        ast = xpath_parser.parse(source)
    except Exception:
        return None
    if ast[0] != "relative":
        return None
    steps = ast[1]
    node = leaf
    own = True
    i = 0
    while i < len(steps) and steps[i][1] == "parent" and not steps[i][3]:
        if node.parent is None:
            return None
        if node is reader:
            own = False
        node = node.parent
        i += 1
    if own or i == len(steps):
        return None
    into = _resolve(node, steps[i:])
    if not into or into[0].keyword != "list" or into[0].parent is not node:
        return None
    here = _current_path(reader, leaf, [("function_call", "current", [])])
    if here is None:
        return None
    return Join(reader, into[0], _xpath(into[1:]), _xpath(here))


def analyze(schema: SchemaIndex) -> dict[SchemaNode, UnitReads]:
    """Per unit list, what its entries' constraints read beyond the entry."""
    units = unit_lists(schema)
    result: dict[SchemaNode, UnitReads] = {}
    for unit in units:
        found = UnitReads(unit)
        for node in subtree(unit):
            if not node.config:
                continue
            exprs = [(m.expr.source, False) for m in node.musts]
            if node.when is not None:
                exprs.append((node.when.source, True))
            if node.leafref is not None and node.type is not None and node.type.require_instance:
                join = _leafref_join(unit, node, node.type.leafref_path or "")
                if join is not None:
                    found.leafrefs[node] = join
                    found.reads.extend(Read(n, True, join) for n in _joined_nodes(join))
                else:
                    exprs.append((node.type.leafref_path or "", False))
            for source, is_when in exprs:
                walk = _Walk(unit, node, units)
                try:
                    walk.expr(xpath_parser.parse(source), [walk.start()])
                except Exception:  # _Unbounded, or a parse the lexer of pyang refuses
                    found.unbounded = True
                    found.when_unbounded |= is_when
                    continue
                found.reads.extend(walk.reads)
                if is_when:
                    found.when_reads.extend(walk.reads)
        found.reads = list(dict.fromkeys(found.reads))
        found.when_reads = list(dict.fromkeys(found.when_reads))
        result[unit] = found
    return result


def _joined_nodes(join: Join) -> list[SchemaNode]:
    """The nodes a leafref join reads: the target leaf (and the entry's existence)."""
    node = join.source
    path = [node]
    for name in join.lhs.split("/"):
        local = name.split(":")[-1]
        nxt = next((c for c in node.children.values() if c.name == local), None)
        if nxt is None:
            break
        node = nxt
        path.append(node)
    return path


def subtree(node: SchemaNode) -> list[SchemaNode]:
    """``node`` and every schema node below it."""
    found = [node]
    for child in node.children.values():
        found.extend(subtree(child))
    return found

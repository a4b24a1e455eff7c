"""Property tests of the config core over generated configurations.

The strategies live in tests/strategies.py (imported as ``strategies``:
pytest puts this directory on sys.path, as tests/ is not a package).  Each
property is one test; example counts are tuned so that the whole file runs
in about 15 s.

1. XML round trip: render(parse(xml)) is the canonical XML and
   parse(render(tree)) == tree; non-canonical integers parse the same.
2. diff(a, a) == [] and diff(a, b) == [] exactly when a == b.
3. edit-config then diff: the new tree is what the edit steps describe, and
   diff lists exactly the changed entries, deletes first; whole-config
   replace and merge give the configuration's tree.
4. edit never mutates the old tree or the request, with or without errors.
5. Valid configurations validate; complete() is idempotent and its result
   still validates.
6. The port-conflict musts served from the sibling index (XPathExpr) agree
   with plain lxml XPath; so do every other must, when and leafref path.
7. ``nf validate`` accepts exactly what yanglint accepts.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from strategies import (
    CHANNEL,
    ERROR_ACTIONS,
    ERROR_TAGS,
    NS,
    SCHEMA,
    TOP,
    EditStep,
    X,
    any_configs,
    colliding_configs,
    configs_with_edits,
    document,
    edit_config,
    expected_config,
    near_valid_configs,
    standalone_text,
    valid_configs,
    xml_text,
)

from nf.config.codec import NC_NS, load_document, render, split_tag, to_string
from nf.config.diff import Change, diff
from nf.config.edit import edit, edit_partial
from nf.config.errors import ConfigError
from nf.config.tree import ListNode, Node
from nf.config.validate import Instance, complete, validate
from nf.schema import SchemaNode, XPathExpr

ROOT = Path(__file__).resolve().parent.parent
YANG_DIR = ROOT / "yang"
MODULE = YANG_DIR / "nf-serial-over-ip.yang"
KINDS = ("serial-port", "channel")
"""The lists below serial-over-ip, in schema order."""

configs = st.one_of(valid_configs(), near_valid_configs(), any_configs())


def tree_of(cfg: X | None, int_format: Callable[[int], str] = str) -> Node:
    tree, errors = load_document(xml_text(cfg, int_format), SCHEMA)
    assert errors == [], errors
    return tree


def text(tree: Node) -> str:
    return to_string(render(tree, SCHEMA), pretty=False)


def entries(tree: Node, kind: str) -> ListNode:
    top = tree.get(TOP.qname)
    found = top.get((NS, kind)) if isinstance(top, Node) else None
    return found if isinstance(found, ListNode) else ListNode()


# -- 1. XML round trip -------------------------------------------------------------


def _spaced(value: int) -> str:
    return f" \t{value}\n "


def _zero_padded(value: int) -> str:
    return ("-" if value < 0 else "+") + "00" + str(abs(value))


NON_CANONICAL_INTS = st.sampled_from([_spaced, _zero_padded])


@settings(max_examples=100, deadline=None)
@given(cfg=configs, int_format=NON_CANONICAL_INTS)
def test_xml_round_trip_is_identity(cfg: X, int_format: Callable[[int], str]) -> None:
    """render(parse(xml)) is the canonical XML, and parse(render(tree)) == tree,
    also through serialized text; non-canonical integers parse to the same tree."""
    canonical = xml_text(cfg)
    tree, errors = load_document(canonical, SCHEMA)
    assert errors == []
    assert text(tree) == canonical
    assert etree.tostring(render(tree, SCHEMA), method="c14n") == etree.tostring(
        document(cfg), method="c14n"
    )
    again, errors = load_document(to_string(render(tree, SCHEMA)), SCHEMA)
    assert errors == []
    assert again == tree
    loose, errors = load_document(xml_text(cfg, int_format), SCHEMA)
    assert errors == []
    assert loose == tree


# -- 2. diff of equal and different trees -----------------------------------------


@st.composite
def config_pairs(draw: st.DrawFn) -> tuple[X, X]:
    """A configuration and a variant: the same, reordered, with one entry or
    one child of an entry less, or an unrelated one."""
    a = draw(configs)
    kind = draw(st.sampled_from(["same", "reversed", "drop-entry", "drop-child", "other"]))
    children = list(a.children)
    if kind == "reversed":
        return a, X(a.name, children=tuple(reversed(children)))
    if kind == "drop-entry" and children:
        i = draw(st.integers(0, len(children) - 1))
        return a, X(a.name, children=tuple(children[:i] + children[i + 1 :]))
    if kind == "drop-child" and children:
        i = draw(st.integers(0, len(children) - 1))
        entry = children[i]
        leaves = [j for j, c in enumerate(entry.children) if c.name not in ("name", "destination")]
        if leaves:
            j = draw(st.sampled_from(leaves))
            entry = X(entry.name, children=entry.children[:j] + entry.children[j + 1 :])
            return a, X(a.name, children=(*children[:i], entry, *children[i + 1 :]))
    if kind == "other":
        return a, draw(configs)
    return a, a


def _summary(changes: Sequence[Change]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.op, c.kind, c.key) for c in changes]


@settings(max_examples=80, deadline=None)
@given(pair=config_pairs())
def test_diff_is_empty_iff_trees_are_equal(pair: tuple[X, X]) -> None:
    """diff is empty for equal trees (also when not identical, or with list
    entries reordered) and not empty otherwise; diff(b, a) is diff(a, b)
    with creates and deletes swapped."""
    a, b = tree_of(pair[0]), tree_of(pair[1])
    assert diff(a, a, SCHEMA) == []
    assert diff(a, tree_of(pair[0]), SCHEMA) == []  # equal, not identical
    forward, backward = diff(a, b, SCHEMA), diff(b, a, SCHEMA)
    assert (forward == []) == (a == b)
    assert (backward == []) == (a == b)
    swap = {"create": "delete", "delete": "create", "modify": "modify"}
    assert sorted((swap[op], k, key) for op, k, key in _summary(forward)) == sorted(
        _summary(backward)
    )


# -- 3. edit then diff --------------------------------------------------------------


def expected_changes(cfg: X, steps: Sequence[EditStep]) -> list[tuple[str, str, tuple[str, ...]]]:
    """The changes edit-then-diff must report, in apply order: deletes of
    channels then of serial ports (old order), then modifies and creates of
    serial ports then channels (new order: kept entries, then created ones)."""
    by_entry = {(s.kind, s.name): s for s in steps}
    deletes: list[tuple[str, str, tuple[str, ...]]] = []
    upserts: list[tuple[str, str, tuple[str, ...]]] = []
    for kind in reversed(KINDS):
        for entry in cfg.all(kind):
            step = by_entry.get((kind, entry.key))
            if step is not None and step.expected_op == "delete":
                deletes.append(("delete", kind, (entry.key,)))
    for kind in KINDS:
        for entry in cfg.all(kind):
            step = by_entry.get((kind, entry.key))
            if step is not None and step.expected_op == "modify":
                upserts.append(("modify", kind, (entry.key,)))
        upserts.extend(
            ("create", kind, (s.name,)) for s in steps if s.kind == kind and s.action == "create"
        )
    return deletes + upserts


@settings(max_examples=100, deadline=None)
@given(data=configs_with_edits())
def test_edit_then_diff_shows_exactly_the_edited_entries(
    data: tuple[X, list[EditStep]],
) -> None:
    """edit-config (merge a changed leaf or a nested node, replace, create,
    delete, and edits that change nothing) gives the tree the steps describe,
    and diff lists exactly the changed entries with the right op, in apply
    order."""
    cfg, steps = data
    old = tree_of(cfg)
    new = edit(old, edit_config(s.element for s in steps), "merge", SCHEMA)
    assert new == tree_of(expected_config(cfg, steps))
    changes = diff(old, new, SCHEMA)
    assert _summary(changes) == expected_changes(cfg, steps)
    for change in changes:
        assert change.old is entries(old, change.kind).get(change.key)
        assert change.new is entries(new, change.kind).get(change.key)


@settings(max_examples=40, deadline=None)
@given(pair=config_pairs(), whole=st.booleans())
def test_edit_of_a_whole_config(pair: tuple[X, X], whole: bool) -> None:
    """Replacing the datastore (default-operation replace, or operation
    replace on serial-over-ip) by a configuration gives exactly its tree;
    merging it into an empty datastore too; merging it into itself changes
    nothing."""
    old, target = tree_of(pair[0]), tree_of(pair[1])
    request = edit_config(pair[1].children)
    if whole:
        request[0].set(f"{{{NC_NS}}}operation", "replace")
        assert edit(old, request, "merge", SCHEMA) == target
    assert edit(old, request, "replace", SCHEMA) == target
    assert edit(Node(), edit_config(pair[1].children), "merge", SCHEMA) == target
    again = edit(target, edit_config(pair[1].children), "merge", SCHEMA)
    assert again == target
    assert diff(target, again, SCHEMA) == []


# -- 4. edit does not mutate its input ----------------------------------------------


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    data=configs_with_edits(with_errors=True),
    default_operation=st.sampled_from(["merge", "merge", "replace", "none"]),
)
def test_edit_never_mutates_its_input(
    data: tuple[X, list[EditStep]], default_operation: str
) -> None:
    """The old tree and the request are unchanged after edit_partial, also
    when steps fail; with merge, each failing step gives its error-tag."""
    cfg, steps = data
    old = tree_of(cfg)
    before = text(old)
    request = edit_config(s.element for s in steps)
    request_before = etree.tostring(request)
    new, errors = edit_partial(old, request, default_operation, SCHEMA)
    assert text(old) == before
    assert old == tree_of(cfg)
    assert etree.tostring(request) == request_before
    if default_operation == "merge":
        expected = sorted(ERROR_TAGS[s.action] for s in steps if s.action in ERROR_ACTIONS)
        assert sorted(e.tag for e in errors) == expected
    # the edited tree is independent of the old one as well
    after = text(new)
    edit_partial(new, request, default_operation, SCHEMA)
    assert text(new) == after


# -- 5. validate and complete ------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(cfg=valid_configs())
def test_valid_configs_validate_and_complete_is_idempotent(cfg: X) -> None:
    """validate() finds nothing in a valid configuration; complete() adds
    defaults once (a second pass changes nothing) and keeps it valid."""
    tree = tree_of(cfg)
    assert validate(tree, SCHEMA) == []
    full = complete(tree, SCHEMA)
    assert complete(full, SCHEMA) == full
    assert validate(full, SCHEMA) == []
    # defaults only add to what is there: nothing is deleted, and the only
    # thing created is a top-level non-presence container the configuration
    # left out, which exists with its defaults (such as /nacm)
    for change in diff(tree, full, SCHEMA):
        assert change.op == "modify" or (
            change.op == "create"
            and change.key == ()
            and not change.schema.presence
            and tree.get(change.schema.qname) is None
        ), change


@settings(max_examples=40, deadline=None)
@given(cfg=any_configs())
def test_complete_is_idempotent_on_any_config(cfg: X) -> None:
    """complete() is idempotent on invalid configurations too."""
    full = complete(tree_of(cfg), SCHEMA)
    assert complete(full, SCHEMA) == full


# -- 6. indexed must evaluation agrees with plain lxml -----------------------------------


def _xpath_boolean(result: Any) -> bool:
    """XPath boolean() of an lxml result."""
    if isinstance(result, bool):
        return result
    if isinstance(result, float):
        return result == result and result != 0.0
    if isinstance(result, list | str):
        return len(result) > 0
    return bool(result)


REFERENCE_MUSTS = [
    (must, etree.XPath(must.expr.text, namespaces=must.expr.namespaces)) for must in CHANNEL.musts
]
"""Every must of the channel list compiled by plain lxml (no sibling index)."""


@settings(max_examples=180, deadline=None)
@given(cfg=colliding_configs())
def test_indexed_musts_agree_with_plain_xpath(cfg: X) -> None:
    """Every channel must evaluates the same through XPathExpr (sibling scans
    served from a hash index, shared per-run cache or none) as through
    plain lxml; validate() reports exactly the violated ones, and the order
    of the channels changes nothing."""
    scanned = [m for m, _ in REFERENCE_MUSTS if getattr(m.expr, "_scans", ())]
    assert scanned, "no channel must is served from the sibling index any more"
    tree = tree_of(cfg)
    holder = Instance(tree, SCHEMA).holder
    channels = holder.findall(f"{{{NS}}}serial-over-ip/{{{NS}}}channel")
    assert len(channels) == len(cfg.all("channel"))
    cache: dict[Any, Any] = {}
    violated: set[tuple[str, str]] = set()
    for elem in channels:
        name = elem.findtext(f"{{{NS}}}name") or ""
        for must, reference in REFERENCE_MUSTS:
            current: Any = elem  # lxml binds an element as a node-set
            expected = _xpath_boolean(reference(elem, current=current))
            assert must.expr.boolean(elem, elem, cache) == expected, (name, must.expr.source)
            assert must.expr.boolean(elem, elem) == expected, (name, must.expr.source)
            if not expected:
                violated.add((name, must.error_message or must.expr.source))
    # and validate() reports exactly those channel musts
    reported = {
        (e.path.split("'")[1], e.message)
        for e in validate(tree, SCHEMA)
        if e.app_tag == "must-violation"
        and e.path is not None
        and e.path.startswith("/soip:serial-over-ip/soip:channel[")
        and e.path.endswith("]")
    }
    assert reported == violated
    # the order of the channels changes neither the tree nor the errors
    channels_first = X(cfg.name, children=tuple(reversed(cfg.children)))
    reordered = tree_of(channels_first)
    assert reordered == tree
    assert _error_set(validate(reordered, SCHEMA)) == _error_set(validate(tree, SCHEMA))


def _error_set(errors: Sequence[ConfigError]) -> set[tuple[str | None, str, str]]:
    return {(e.path, e.message, e.tag) for e in errors}


_REFERENCE: dict[str, etree.XPath] = {}


def _reference(expr: XPathExpr) -> etree.XPath:
    compiled = _REFERENCE.get(expr.text)
    if compiled is None:
        compiled = etree.XPath(expr.text, namespaces=expr.namespaces)
        _REFERENCE[expr.text] = compiled
    return compiled


def _plain(expr: XPathExpr, elem: etree._Element) -> Any:
    """``expr`` evaluated by plain lxml with current() bound to ``elem``."""
    current: Any = elem  # lxml binds an element as a node-set (lxml-stubs disagree)
    return _reference(expr)(elem, current=current)


def _instance_nodes(holder: etree._Element) -> Iterator[tuple[etree._Element, SchemaNode]]:
    """Every element of an instance document with its schema node."""
    stack = [(child, SCHEMA.root) for child in holder]
    while stack:
        elem, parent = stack.pop()
        if not isinstance(elem.tag, str):
            continue
        sn = parent.children.get(split_tag(elem.tag))
        if sn is None:
            continue
        yield elem, sn
        stack.extend((child, sn) for child in elem)


@settings(max_examples=60, deadline=None)
@given(cfg=st.one_of(colliding_configs(), near_valid_configs(), any_configs()))
def test_every_xpath_agrees_with_plain_xpath(cfg: X) -> None:
    """Every must, when and leafref path of every instance node gives the
    same result through XPathExpr (indexes, caches) as through plain lxml."""
    holder = Instance(tree_of(cfg), SCHEMA).holder
    cache: dict[Any, Any] = {}
    for elem, sn in _instance_nodes(holder):
        for expr in [*(m.expr for m in sn.musts), *([sn.when] if sn.when else [])]:
            expected = _xpath_boolean(_plain(expr, elem))
            assert expr.boolean(elem, elem, cache) == expected, (sn, expr.source)
        if sn.leafref is not None:
            found = _plain(sn.leafref, elem)
            values = {"".join(e.itertext()) for e in found}
            assert sn.leafref.string_values(elem, elem, cache) == values, sn


# -- 7. yanglint agreement ----------------------------------------------------------------

YANGLINT = shutil.which("yanglint")


def _nf_validate(path: Path) -> int:
    from nf.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            return main(["validate", str(path)])
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1


@pytest.mark.skipif(YANGLINT is None, reason="yanglint (libyang2-tools) is not installed")
@settings(max_examples=40, deadline=None)
@given(
    cfg=st.one_of(near_valid_configs(), any_configs(), colliding_configs()),
    int_format=NON_CANONICAL_INTS,
)
def test_validator_agrees_with_yanglint(cfg: X, int_format: Callable[[int], str]) -> None:
    """yanglint and ``nf validate`` accept and reject the same files, with
    integers written canonically and not."""
    assert YANGLINT is not None
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in (str, int_format):
            path = Path(tmp) / "config.xml"
            path.write_text(standalone_text(cfg, fmt), encoding="utf-8")
            proc = subprocess.run(
                [YANGLINT, "-t", "config", "-p", str(YANG_DIR), str(MODULE), str(path)],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            ours = _nf_validate(path)
            assert (ours == 0) == (proc.returncode == 0), (
                path.read_text(encoding="utf-8"),
                proc.stdout + proc.stderr,
            )

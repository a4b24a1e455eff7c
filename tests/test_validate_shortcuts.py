"""The checker's shortcuts (``validate._node_plan``: a leaf with only its
type to check checked inline, ``missing`` called only for a node whose
absence can be an error; a list entry's children grouped once) change no
result: every error, in the same order, as the general way finds them
(``_Checker.fast`` False), over random configurations valid and not, in
full, syntax-only and incremental validation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import any_configs, colliding_configs, document, valid_configs

from nf.config.codec import parse
from nf.config.diff import diff
from nf.config.errors import ConfigError
from nf.config.incremental import check_change
from nf.config.tree import Node
from nf.config.validate import Instance, _Checker, _node_plan, check, check_syntax
from nf.schema import default_schema

SCHEMA = default_schema()


@contextmanager
def general() -> Iterator[None]:
    _Checker.fast = False
    try:
        yield
    finally:
        _Checker.fast = True


def tree(cfg: object) -> Node:
    parsed, _ = parse(document(cfg), SCHEMA)  # type: ignore[arg-type]
    return parsed


def both(run: object) -> tuple[list[ConfigError], list[ConfigError]]:
    assert callable(run)
    fast = run()
    with general():
        slow = run()
    return fast, slow


configs = st.one_of(any_configs(), colliding_configs(), valid_configs())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_full_and_syntax_validation_find_the_same_errors(cfg: object) -> None:
    new = tree(cfg)
    fast, slow = both(lambda: check(new, SCHEMA)[0])
    assert fast == slow
    fast, slow = both(lambda: check_syntax(new, SCHEMA))
    assert fast == slow


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_configs(), configs)
def test_incremental_validation_finds_the_same_errors(before: object, after: object) -> None:
    old, new = tree(before), tree(after)
    if check(old, SCHEMA)[0]:
        return
    changes = diff(old, new, SCHEMA)

    def incremental() -> list[ConfigError]:
        result = check_change(Instance(old, SCHEMA), old, new, changes)
        return [] if result is None else result[0]

    fast, slow = both(incremental)
    assert fast == slow


def test_the_general_way_is_what_the_tests_compare_with() -> None:
    """The switch reaches the plan: no shortcut is taken without it."""
    top = next(iter(SCHEMA.root.children.values()))
    with general():
        plan = _node_plan(top, True, _Checker.fast)
    assert all(required and plain is None for _, _, _, required, plain in plan)

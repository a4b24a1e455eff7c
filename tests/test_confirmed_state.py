"""The confirmed-commit state machine (RFC 6241 §8.4), transition by transition, no I/O."""

from __future__ import annotations

import pytest

from nf.config.errors import ConfigError
from nf.config.tree import Node
from nf.store import confirmed_state as cc
from nf.store.confirmed_state import Apply, CommitRequest, Nothing, Pending, Refuse, Rollback

BEFORE = Node()
"""Running before the first confirmed commit (an empty tree is a fine stand-in)."""
NOW = 1000.0
OTHER_RUNNING = Node({("urn:x", "a"): "1"})


def pending(owner: int = 1, persist: str | None = None, deadline: float = NOW + 600) -> Pending:
    return Pending(BEFORE, owner, persist, deadline)


def refused(decision: cc.Decision, tag: str, element: str) -> ConfigError:
    assert isinstance(decision, Refuse), decision
    error = decision.error
    assert (error.tag, error.type) == (tag, "protocol"), error
    assert dict(error.info)["bad-element"] == element
    return error


# -- commit with nothing pending ---------------------------------------------------


def test_plain_commit_with_nothing_pending_applies() -> None:
    assert cc.commit(None, 1, CommitRequest(), BEFORE, NOW) == Apply(None)


def test_confirmed_commit_starts_with_default_timeout_and_running_as_rollback() -> None:
    decision = cc.commit(None, 3, CommitRequest(confirmed=True), BEFORE, NOW)
    assert decision == Apply(Pending(BEFORE, 3, None, NOW + cc.DEFAULT_TIMEOUT))
    assert cc.DEFAULT_TIMEOUT == 600


def test_confirmed_commit_with_timeout_and_persist() -> None:
    request = CommitRequest(confirmed=True, timeout=2, persist="tok")
    assert cc.commit(None, 3, request, BEFORE, NOW) == Apply(Pending(BEFORE, 3, "tok", NOW + 2))


@pytest.mark.parametrize("persist_id", ["tok", ""])
def test_persist_id_with_nothing_pending_is_invalid_value(persist_id: str) -> None:
    for confirmed in (False, True):
        request = CommitRequest(confirmed=confirmed, persist_id=persist_id)
        refused(cc.commit(None, 1, request, BEFORE, NOW), "invalid-value", "persist-id")


def test_timeout_or_persist_without_confirmed_is_invalid_value() -> None:
    refused(
        cc.commit(None, 1, CommitRequest(timeout=5), BEFORE, NOW),
        "invalid-value",
        "confirm-timeout",
    )
    refused(cc.commit(None, 1, CommitRequest(persist="x"), BEFORE, NOW), "invalid-value", "persist")


# -- commit while a non-persistent confirmed commit is pending -------------------------


def test_extend_by_the_same_session_keeps_the_rollback_point() -> None:
    state = pending(owner=1)
    request = CommitRequest(confirmed=True, timeout=30)
    decision = cc.commit(state, 1, request, OTHER_RUNNING, NOW + 5)
    # running is now the first confirmed config; the rollback is still BEFORE
    assert decision == Apply(Pending(BEFORE, 1, None, NOW + 35))


def test_extend_can_make_it_persistent() -> None:
    request = CommitRequest(confirmed=True, persist="tok")
    decision = cc.commit(pending(owner=1), 1, request, OTHER_RUNNING, NOW)
    assert decision == Apply(Pending(BEFORE, 1, "tok", NOW + 600))


def test_confirming_commit_by_the_owner_ends_it() -> None:
    assert cc.commit(pending(owner=1), 1, CommitRequest(), OTHER_RUNNING, NOW) == Apply(None)


def test_commit_by_another_session_is_in_use_naming_the_owner() -> None:
    for request in (CommitRequest(), CommitRequest(confirmed=True)):
        error = refused(
            cc.commit(pending(owner=1), 2, request, OTHER_RUNNING, NOW), "in-use", "commit"
        )
        assert dict(error.info)["session-id"] == "1"


def test_persist_id_on_a_non_persistent_commit_is_invalid_value() -> None:
    for sid in (1, 2):
        request = CommitRequest(persist_id="tok")
        refused(
            cc.commit(pending(owner=1), sid, request, BEFORE, NOW), "invalid-value", "persist-id"
        )


# -- commit while a persistent confirmed commit is pending ------------------------------


def test_persist_id_on_a_plain_commit_confirms_from_any_session() -> None:
    state = pending(owner=1, persist="tok")
    for sid in (1, 2):
        assert cc.commit(state, sid, CommitRequest(persist_id="tok"), BEFORE, NOW) == Apply(None)


def test_extend_with_persist_id_from_another_session_keeps_the_token() -> None:
    state = pending(owner=1, persist="tok")
    request = CommitRequest(confirmed=True, timeout=9, persist_id="tok")
    assert cc.commit(state, 2, request, BEFORE, NOW) == Apply(Pending(BEFORE, 2, "tok", NOW + 9))


def test_extend_with_persist_id_and_a_new_persist_changes_the_token() -> None:
    state = pending(owner=1, persist="tok")
    request = CommitRequest(confirmed=True, persist="new", persist_id="tok")
    decision = cc.commit(state, 1, request, BEFORE, NOW)
    assert isinstance(decision, Apply) and decision.pending is not None
    assert decision.pending.persist == "new"


def test_wrong_persist_id_is_invalid_value() -> None:
    state = pending(owner=1, persist="tok")
    for confirmed in (False, True):
        request = CommitRequest(confirmed=confirmed, persist_id="nope")
        refused(cc.commit(state, 1, request, BEFORE, NOW), "invalid-value", "persist-id")


def test_missing_persist_id_is_missing_element_even_for_the_issuer() -> None:
    state = pending(owner=1, persist="tok")
    for sid in (1, 2):
        refused(
            cc.commit(state, sid, CommitRequest(), BEFORE, NOW), "missing-element", "persist-id"
        )


# -- cancel-commit -----------------------------------------------------------------------


def test_cancel_with_nothing_pending() -> None:
    refused(cc.cancel(None, 1, None), "operation-failed", "cancel-commit")
    refused(cc.cancel(None, 1, "tok"), "invalid-value", "persist-id")


def test_cancel_by_the_owner_rolls_back() -> None:
    assert cc.cancel(pending(owner=1), 1, None) == Rollback(BEFORE)


def test_cancel_by_another_session_of_a_non_persistent_commit_is_in_use() -> None:
    error = refused(cc.cancel(pending(owner=1), 2, None), "in-use", "commit")
    assert dict(error.info)["session-id"] == "1"
    refused(cc.cancel(pending(owner=1), 1, "tok"), "invalid-value", "persist-id")


def test_cancel_persistent_needs_the_right_persist_id() -> None:
    state = pending(owner=1, persist="tok")
    assert cc.cancel(state, 2, "tok") == Rollback(BEFORE)
    refused(cc.cancel(state, 2, "nope"), "invalid-value", "persist-id")
    refused(cc.cancel(state, 1, None), "missing-element", "persist-id")


# -- session end and timeout ------------------------------------------------------------------


def test_owner_session_end_rolls_back_a_non_persistent_commit() -> None:
    assert cc.session_ended(pending(owner=1), 1) == Rollback(BEFORE)
    assert cc.session_ended(pending(owner=1), 2) == Nothing()
    assert cc.session_ended(None, 1) == Nothing()


def test_session_end_of_a_persistent_commit_does_nothing() -> None:
    assert cc.session_ended(pending(owner=1, persist="tok"), 1) == Nothing()


def test_timeout_rolls_back_only_at_the_deadline() -> None:
    state = pending(deadline=NOW + 2)
    assert cc.expired(state, NOW + 1.999) == Nothing()  # an early or stale timer
    assert cc.expired(state, NOW + 2) == Rollback(BEFORE)
    assert cc.expired(None, NOW + 5) == Nothing()


# -- confirm-timeout ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("1", 1), (" 600 ", 600), ("4294967295", 2**32 - 1)])
def test_timeout_in_range(text: str, value: int) -> None:
    assert cc.parse_timeout(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "4294967296", "", "1.5", "ten", "٣"])
def test_timeout_out_of_range_is_invalid_value(text: str) -> None:
    error = cc.parse_timeout(text)
    assert isinstance(error, ConfigError)
    assert error.tag == "invalid-value"
    assert dict(error.info) == {"bad-element": "confirm-timeout"}

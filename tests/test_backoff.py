"""Retry delays for lost ports and client reconnects: 1 s doubling to 30 s."""

from __future__ import annotations

from nf.protocol.backoff import Backoff


def test_delays_double_from_one_second_up_to_thirty() -> None:
    backoff = Backoff()
    assert [backoff.next() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_success_starts_over_at_one_second() -> None:
    backoff = Backoff()
    for _ in range(10):
        backoff.next()
    backoff.reset()
    assert [backoff.next() for _ in range(3)] == [1, 2, 4]


def test_a_shorter_start_and_limit_double_the_same_way() -> None:
    backoff = Backoff(start=0.05, limit=0.5)
    assert [backoff.next() for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.05

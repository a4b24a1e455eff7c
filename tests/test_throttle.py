"""The login throttle's state machine, on a fake clock: delays grow, refusal
costs no hashing, quiet sources are forgotten, memory and concurrency are
bounded."""

from __future__ import annotations

import itertools

import pytest

from nf.northbound.throttle import Admission, Change, LogLimiter, Policy, Throttle, source_of

A = "192.0.2.1"
B = "192.0.2.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Brute:
    """A client of the throttle behaving as the SSH adapter does: hold the
    attempt for the verdict's wait, then hash (counted) unless refused."""

    def __init__(self, throttle: Throttle, clock: Clock, hash_seconds: float = 0.05) -> None:
        self.throttle = throttle
        self.clock = clock
        self.hash_seconds = hash_seconds
        self.hashes = 0
        self.answered: list[float] = []
        """When each attempt was answered."""

    def login(self, source: str, correct: bool = False, credential: str = "password") -> bool:
        verdict = self.throttle.attempt(source)
        self.clock.now += verdict.wait
        if verdict.refuse:
            self.answered.append(self.clock.now)
            return False
        self.hashes += 1
        self.clock.now += self.hash_seconds
        self.answered.append(self.clock.now)
        if correct:
            self.throttle.succeeded(source)
            return True
        self.throttle.failed(source, credential)  # type: ignore[arg-type]
        return False


def make(policy: Policy | None = None) -> tuple[Throttle, Clock, Brute]:
    clock = Clock()
    throttle = Throttle(policy or Policy(), clock)
    return throttle, clock, Brute(throttle, clock)


def test_first_failures_are_free_then_the_delay_doubles() -> None:
    throttle = make()[0]
    waits = []
    for _ in range(6):
        waits.append(throttle.attempt(A).wait)
        throttle.failed(A, "password")
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0]


def test_fifty_wrong_passwords_are_one_a_second_at_most_after_the_first_few() -> None:
    """The issue's test, on the default policy: after the three free
    failures no two attempts are answered less than a second apart, and
    only the attempts before the refusal are hashed."""
    throttle, clock, brute = make()
    start = clock.now
    for _ in range(50):
        assert not brute.login(A)
    gaps = [b - a for a, b in itertools.pairwise(brute.answered[3:])]
    assert min(gaps) >= 1.0
    assert brute.hashes == Policy().refuse_after
    assert throttle.counters.failed_passwords == Policy().refuse_after
    assert throttle.counters.refused_logins == 50 - Policy().refuse_after
    assert clock.now - start >= 46  # 50 attempts, all but 3 a second apart


def test_refused_source_is_answered_without_hashing_even_with_the_right_password() -> None:
    throttle, clock, brute = make()
    for _ in range(Policy().refuse_after):
        brute.login(A)
    assert throttle.refusing(A)
    hashes = brute.hashes
    assert not brute.login(A, correct=True)
    assert brute.hashes == hashes
    # after the refusal window, one attempt is checked again and succeeds
    clock.now += Policy().refuse_for
    assert not throttle.refusing(A)
    assert brute.login(A, correct=True)
    assert brute.hashes == hashes + 1
    assert throttle.sources() == 0  # success forgives


def test_a_refusal_that_ends_is_renewed_by_the_next_failure() -> None:
    throttle, clock, brute = make()
    for _ in range(Policy().refuse_after):
        brute.login(A)
    clock.now += Policy().refuse_for
    hashes = brute.hashes
    brute.login(A)
    assert brute.hashes == hashes + 1  # one guess per refusal window
    assert throttle.refusing(A)


def test_another_source_is_not_slowed() -> None:
    throttle, _, brute = make()
    for _ in range(Policy().refuse_after):
        brute.login(A)
    assert throttle.attempt(B) == (0.0, False)
    assert brute.login(B, correct=True)


def test_quiet_source_is_forgotten() -> None:
    throttle, clock, brute = make()
    for _ in range(Policy().free_failures + 1):
        brute.login(A)
    assert throttle.attempt(A).wait > 0
    clock.now += Policy().forget_after
    assert throttle.attempt(A) == (0.0, False)
    assert throttle.sources() == 0


def test_failures_that_stop_delay_the_next_attempt_only_what_remains() -> None:
    throttle, clock, brute = make()
    for _ in range(Policy().free_failures + 1):
        brute.login(A)
    clock.now += 1.5  # the delay after the fourth failure is 2 s
    assert throttle.attempt(A).wait == pytest.approx(0.5)


def test_parallel_attempts_of_one_source_take_successive_slots() -> None:
    """Attempts on several connections at once do not multiply the rate."""
    throttle, _, brute = make()
    for _ in range(Policy().free_failures):
        brute.login(A)
    waits = [throttle.attempt(A) for _ in range(4)]
    assert [w.wait for w in waits] == [1.0, 2.0, 3.0, 4.0]
    assert not any(w.refuse for w in waits)


def test_attempts_queued_beyond_the_longest_delay_are_refused_unchecked() -> None:
    throttle, _, brute = make()
    for _ in range(Policy().free_failures + 2):
        brute.login(A)  # the next waits 4 s, then each takes 4 s more
    verdicts = [throttle.attempt(A) for _ in range(4)]
    assert [v.refuse for v in verdicts] == [False, False, True, True]
    assert all(v.wait <= Policy().max_delay for v in verdicts)
    assert throttle.counters.refused_logins == 2


def test_public_key_failures_weigh_less_but_are_counted() -> None:
    throttle, _, brute = make()
    for _ in range(8):  # eight keys offered weigh two passwords
        brute.login(A, credential="publickey")
    assert throttle.counters.failed_public_keys == 8
    assert throttle.attempt(A) == (0.0, False)
    # but a key scan is throttled too, at a quarter of the pace
    for _ in range(4):
        brute.login(A, credential="publickey")
    assert throttle.attempt(A).wait > 0


def test_changes_are_reported_once() -> None:
    throttle, clock, _ = make()
    changes = []
    for _ in range(8):
        clock.now += throttle.attempt(A).wait
        changes.append(throttle.failed(A, "password"))
    assert changes.count(Change.DELAYING) == 1
    assert changes.count(Change.REFUSING) == 1
    assert changes.index(Change.DELAYING) == Policy().free_failures - 1
    assert changes.index(Change.REFUSING) == Policy().refuse_after - 1


def test_table_of_sources_is_bounded_least_recently_active_out() -> None:
    throttle = make(Policy(max_sources=100, free_failures=0))[0]

    def src(i: int) -> str:
        return f"10.0.{i // 256}.{i % 256}"

    def remembered(source: str) -> bool:
        return throttle.attempt(source).wait > 0  # one failure delays by 1 s

    for i in range(100):
        throttle.failed(src(i), "password")
    throttle.failed(src(0), "password")  # the oldest is active again
    throttle.failed(src(100), "password")
    assert throttle.sources() == 100
    assert remembered(src(0)) and remembered(src(100))
    assert not remembered(src(1))
    for i in range(101, 5000):  # a spray of addresses
        throttle.failed(src(i), "password")
        assert throttle.sources() <= 100
    node = throttle.state("ns").get(("ns", "netconf-server"))
    assert node is not None and node.get(("ns", "throttled-sources")) == "100"  # type: ignore[union-attr]


def test_negotiating_connections_are_capped_per_source() -> None:
    throttle = make(Policy(max_unauthenticated=3))[0]
    assert [throttle.connection_opened(A) for _ in range(4)] == [True, True, True, False]
    assert throttle.connection_opened(B)
    assert throttle.counters.refused_connections == 1
    throttle.connection_done(A)
    assert throttle.connection_opened(A)
    for _ in range(3):
        throttle.connection_done(A)
    throttle.connection_done(B)
    assert throttle.negotiating(A) == throttle.negotiating(B) == 0


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0db8:0:0::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_source_of_a_peer(host: str, source: str) -> None:
    assert source_of(host) == source


def test_log_limiter_drops_a_storm_and_says_how_much() -> None:
    clock = Clock()
    limiter = LogLimiter(burst=5, interval=10.0, clock=clock)
    results: list[int | None] = [limiter.allow() for _ in range(100)]
    assert results[:5] == [0] * 5
    assert results[5:] == [None] * 95
    clock.now += 2.0  # one line's worth of budget back
    assert limiter.allow() == 95
    assert limiter.allow() is None


class Waiting:
    """A Waiter that records what became of it."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def test_over_the_cap_connections_wait_and_take_freed_places_in_order() -> None:
    """A station opening more sessions at once than the cap gets them all,
    each in the place of one that is done; the waiting line is bounded, and
    one that waited longer than max_wait is closed when its turn comes."""
    throttle, clock, _ = make(Policy(max_unauthenticated=2, max_waiting=2, max_wait=10.0))
    log: list[str] = []
    admitted = [throttle.admit(A, Waiting(log, str(i))) for i in range(5)]
    assert [a.value for a in admitted] == ["negotiate"] * 2 + ["wait"] * 2 + ["refuse"]
    assert throttle.admit(B, None) is Admission.NEGOTIATE  # another source is not held up
    assert throttle.waiting(A) == 2 and throttle.counters.refused_connections == 1
    throttle.connection_done(A)  # its place goes to the first waiting, in order
    assert log == ["start 2"] and throttle.negotiating(A) == 2 and throttle.waiting(A) == 1
    clock.now += 11  # the second waited too long
    throttle.connection_done(A)
    assert log == ["start 2", "close 3"] and throttle.counters.refused_connections == 2
    assert throttle.negotiating(A) == 1 and throttle.waiting(A) == 0
    throttle.admit(A, Waiting(log, "5"))  # a place is free: at once
    assert throttle.negotiating(A) == 2
    assert throttle.admit(A, Waiting(log, "6")) is Admission.WAIT
    assert [w.name for w in throttle.drain_waiting()] == ["6"]  # type: ignore[attr-defined]
    assert throttle.waiting(A) == 0

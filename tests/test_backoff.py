"""Exponential backoff between restarts, in exact virtual time."""

from __future__ import annotations

import asyncio
import math
import sys

import pytest

from supervisor import Backoff, ChildReady, ChildRestarting, ChildSpec, ChildStopped, Supervisor

from supervisor.testing import settle

from conftest import EventLog, start_all

# A power of two, so that virtual times built from it add up exactly in binary floating point.
EPSILON = 1 / 1024


async def start_with_backoff(clock, probe, backoff):
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("b")],
        max_restarts=100,
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    return supervisor, events


async def crash_and_check_delay(clock, probe, events, expected_delay):
    """Crash child "a" and check it is started again exactly ``expected_delay`` later."""
    restarts_before = events.count(ChildRestarting, "a")
    ready_before = events.count(ChildReady, "a")
    crash_time = clock.now()

    probe.crash("a")
    restarting = await events.wait_for(ChildRestarting, "a", count=restarts_before + 1)
    assert restarting.delay == expected_delay

    clock.advance(expected_delay - EPSILON)
    await settle()
    assert events.count(ChildReady, "a") == ready_before, "restarted before the backoff delay passed"

    clock.advance(EPSILON)
    ready = await events.wait_for(ChildReady, "a", count=ready_before + 1)
    assert events.time_of(ready) == crash_time + expected_delay


async def test_backoff_grows_exponentially_to_maximum(clock, probe):
    """Consecutive restarts wait initial, doubling each time, capped at maximum."""
    backoff = Backoff(initial=0.25, maximum=2.0, multiplier=2.0, jitter=0.0, reset_after=60.0)
    supervisor, events = await start_with_backoff(clock, probe, backoff)

    for expected_delay in (0.25, 0.5, 1.0, 2.0, 2.0):
        await crash_and_check_delay(clock, probe, events, expected_delay)

    assert probe.starts["a"] == 6
    assert probe.starts["b"] == 1
    await supervisor.stop()


async def test_backoff_resets_after_stable_period(clock, probe):
    """A child that stayed up for reset_after seconds starts again from the initial delay."""
    backoff = Backoff(initial=0.25, maximum=2.0, multiplier=2.0, jitter=0.0, reset_after=10.0)
    supervisor, events = await start_with_backoff(clock, probe, backoff)
    for expected_delay in (0.25, 0.5, 1.0):
        await crash_and_check_delay(clock, probe, events, expected_delay)

    clock.advance(10.0)
    await crash_and_check_delay(clock, probe, events, 0.25)

    await supervisor.stop()


async def test_backoff_keeps_growing_when_not_stable(clock, probe):
    """A child that crashes before reset_after seconds keeps its growing delay."""
    backoff = Backoff(initial=0.25, maximum=4.0, multiplier=2.0, jitter=0.0, reset_after=10.0)
    supervisor, events = await start_with_backoff(clock, probe, backoff)
    for expected_delay in (0.25, 0.5, 1.0):
        await crash_and_check_delay(clock, probe, events, expected_delay)

    clock.advance(10.0 - EPSILON)
    await crash_and_check_delay(clock, probe, events, 2.0)

    await supervisor.stop()


async def test_no_backoff_restarts_immediately(clock, probe):
    """Without a backoff the replacement is ready at the same virtual time as the crash."""
    events = EventLog(clock)
    supervisor = Supervisor([probe.spec("a")], clock=clock, on_event=events)
    await start_all(supervisor, events)
    clock.advance(1.5)

    probe.crash("a")
    restarting = await events.wait_for(ChildRestarting, "a")
    ready = await events.wait_for(ChildReady, "a", count=2)

    assert restarting.delay == 0
    assert events.time_of(ready) == 1.5
    await supervisor.stop()


async def test_backoff_jitter_matches_seeded_sequence(clock, probe):
    """With jitter, the supervisor waits the delays a Backoff with the same seed produces."""
    backoff = Backoff(initial=0.25, maximum=8.0, multiplier=2.0, jitter=0.5, seed=1234)
    replay = Backoff(initial=0.25, maximum=8.0, multiplier=2.0, jitter=0.5, seed=1234)
    supervisor, events = await start_with_backoff(clock, probe, backoff)

    for attempt in range(1, 5):
        expected_delay = replay.delay(attempt)
        ready_before = events.count(ChildReady, "a")
        crash_time = clock.now()
        probe.crash("a")
        restarting = await events.wait_for(ChildRestarting, "a", count=attempt)
        assert restarting.delay == expected_delay
        clock.advance(expected_delay)
        ready = await events.wait_for(ChildReady, "a", count=ready_before + 1)
        assert events.time_of(ready) == crash_time + expected_delay

    await supervisor.stop()


def test_backoff_jitter_within_bounds():
    """Each jittered delay lies within jitter of the exponential delay and never above maximum."""
    maximum = 2.0**20
    backoff = Backoff(initial=1.0, maximum=maximum, multiplier=2.0, jitter=0.5, seed=99)

    for attempt in range(1, 40):
        base = min(maximum, 2.0 ** (attempt - 1))
        delay = backoff.delay(attempt)
        assert delay >= base * 0.5, f"attempt {attempt}: {delay} below {base * 0.5}"
        assert delay <= base * 1.5, f"attempt {attempt}: {delay} above {base * 1.5}"
        assert delay <= maximum, f"attempt {attempt}: {delay} above the maximum"


def test_backoff_jitter_varies_delay():
    """Jitter actually changes the delays: not every delay equals the exponential value."""
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.5, seed=5)

    delays = {backoff.delay(1) for _ in range(20)}

    assert len(delays) > 1
    assert max(delays) <= 1.0


def test_backoff_same_seed_same_delays():
    """Two backoffs built with the same seed produce the same delays."""
    first = Backoff(initial=0.1, maximum=10.0, jitter=0.3, seed=42)
    second = Backoff(initial=0.1, maximum=10.0, jitter=0.3, seed=42)

    assert [first.delay(n) for n in range(1, 10)] == [second.delay(n) for n in range(1, 10)]


def test_backoff_without_jitter_is_exact():
    """With jitter=0 the delay is exactly initial * multiplier ** (attempt - 1), capped."""
    backoff = Backoff(initial=0.5, maximum=3.0, multiplier=3.0, jitter=0.0)

    assert [backoff.delay(n) for n in range(1, 5)] == [0.5, 1.5, 3.0, 3.0]


def test_backoff_huge_attempt_stays_at_maximum():
    """A very large attempt number gives the maximum instead of overflowing."""
    backoff = Backoff(initial=1.0, maximum=30.0, jitter=0.0)

    assert backoff.delay(10_000) == 30.0


FLOAT_MAX = sys.float_info.max

# Backoffs that validation accepts at the edges of the float range, where the naive
# maximum / initial or multiplier ** exponent overflows.
EDGE_BACKOFFS = {
    "tiny_initial": dict(initial=1e-300, maximum=1e10, multiplier=2.0),
    "huge_maximum": dict(initial=0.01, maximum=1e308, multiplier=10.0),
    "power_overflows_before_product": dict(initial=1e-300, maximum=1e300, multiplier=10.0),
    "subnormal_initial_tiny_multiplier": dict(initial=5e-324, maximum=FLOAT_MAX, multiplier=1.0000000000000002),
    "huge_multiplier": dict(initial=1.0, maximum=FLOAT_MAX, multiplier=FLOAT_MAX),
    "initial_equals_maximum": dict(initial=1.0, maximum=1.0, multiplier=1e308),
    "multiplier_one": dict(initial=0.5, maximum=FLOAT_MAX, multiplier=1.0),
}

ATTEMPTS = [1, 2, 3, 31, 32, 309, 310, 1_000, 10**6, 10**18, 10**400]


@pytest.mark.parametrize("fields", EDGE_BACKOFFS.values(), ids=EDGE_BACKOFFS.keys())
def test_backoff_edge_delays_stay_in_range(fields):
    """Without jitter, every delay is finite, never decreases, and lies between initial and maximum."""
    backoff = Backoff(**fields, jitter=0.0)

    delays = [backoff.delay(attempt) for attempt in ATTEMPTS]

    assert delays[0] == backoff.initial
    for attempt, delay in zip(ATTEMPTS, delays):
        assert math.isfinite(delay), f"attempt {attempt}: {delay}"
        assert backoff.initial <= delay <= backoff.maximum, f"attempt {attempt}: {delay}"
    assert delays == sorted(delays)
    expected_last = backoff.initial if backoff.multiplier == 1 else backoff.maximum
    assert delays[-1] == expected_last


@pytest.mark.parametrize("fields", EDGE_BACKOFFS.values(), ids=EDGE_BACKOFFS.keys())
def test_backoff_edge_delays_with_full_jitter(fields):
    """With jitter=1, every delay is finite and lies between zero and maximum."""
    backoff = Backoff(**fields, jitter=1.0, seed=3)

    for attempt in ATTEMPTS:
        delay = backoff.delay(attempt)
        assert math.isfinite(delay), f"attempt {attempt}: {delay}"
        assert 0 <= delay <= backoff.maximum, f"attempt {attempt}: {delay}"


@pytest.mark.parametrize(
    ("fields", "attempt", "expected"),
    [
        (EDGE_BACKOFFS["tiny_initial"], 100, 1e-300 * 2.0**99),
        (EDGE_BACKOFFS["tiny_initial"], 1_000, 1e-300 * 2.0**999),
        (EDGE_BACKOFFS["tiny_initial"], 1_100, 1e10),
        (EDGE_BACKOFFS["huge_maximum"], 300, 1e297),
        (EDGE_BACKOFFS["power_overflows_before_product"], 310, 1e9),
        (EDGE_BACKOFFS["power_overflows_before_product"], 600, 1e299),
        (EDGE_BACKOFFS["huge_multiplier"], 2, FLOAT_MAX),
    ],
)
def test_backoff_edge_delay_value(fields, attempt, expected):
    """Near the float limits the delay still equals initial * multiplier ** (attempt - 1), capped."""
    backoff = Backoff(**fields, jitter=0.0)

    assert math.isclose(backoff.delay(attempt), expected, rel_tol=1e-12)


@pytest.mark.parametrize("attempt", [0, -1])
def test_backoff_attempt_below_one_rejected(attempt):
    """delay() raises ValueError, showing the attempt, for an attempt below 1."""
    with pytest.raises(ValueError, match=f"got {attempt}"):
        Backoff().delay(attempt)


def test_backoff_new_random_repeats_seeded_jitter():
    """Each jitter source from a seeded Backoff yields the sequence of a fresh Backoff with that seed."""
    backoff = Backoff(initial=0.1, maximum=10.0, jitter=0.5, seed=42)
    replay = Backoff(initial=0.1, maximum=10.0, jitter=0.5, seed=42)
    attempts = range(1, 10)
    expected = [replay.delay(n) for n in attempts]
    backoff.delay(1)  # draws from the shared generator, which the new sources must not see

    first_source = backoff.new_random()
    first = [backoff.delay(n, first_source) for n in attempts]
    second_source = backoff.new_random()
    second = [backoff.delay(n, second_source) for n in attempts]

    assert first == expected
    assert second == expected
    assert first_source is not second_source


@pytest.mark.parametrize(
    "fields",
    [dict(jitter=0.5), dict(jitter=0.0, seed=42)],
    ids=["jitter_without_seed", "seed_without_jitter"],
)
def test_backoff_new_random_shared_when_nothing_repeats(fields):
    """Without a seed, or without jitter, new_random() returns one shared generator and allocates nothing."""
    backoff = Backoff(**fields)

    assert backoff.new_random() is backoff.new_random()


async def collect_jittered_delays(clock, probe, backoff, restarts):
    """Run children "a" and "b" with ``backoff``, crash each ``restarts`` times, return their delays."""
    events = EventLog(clock)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("b", backoff=backoff)],
        max_restarts=100,
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    delays: dict[str, list[float]] = {"a": [], "b": []}
    for attempt in range(1, restarts + 1):
        for child_id in ("a", "b"):
            ready_before = events.count(ChildReady, child_id)
            probe.crash(child_id)
            restarting = await events.wait_for(ChildRestarting, child_id, count=attempt)
            delays[child_id].append(restarting.delay)
            clock.advance(restarting.delay)
            await events.wait_for(ChildReady, child_id, count=ready_before + 1)
    await supervisor.stop()
    return delays


async def test_seeded_backoff_repeats_per_child_and_run(clock, probe):
    """Every child and every run that uses one seeded Backoff waits the same jittered delays."""
    backoff = Backoff(initial=0.25, maximum=8.0, multiplier=2.0, jitter=0.5, seed=1234)
    replay = Backoff(initial=0.25, maximum=8.0, multiplier=2.0, jitter=0.5, seed=1234)
    expected = [replay.delay(attempt) for attempt in range(1, 4)]

    first_run = await collect_jittered_delays(clock, probe, backoff, 3)
    second_run = await collect_jittered_delays(clock, probe, backoff, 3)

    assert first_run["a"] == expected
    assert first_run["b"] == expected
    assert second_run["a"] == expected
    assert second_run["b"] == expected


async def test_stop_during_backoff_cancels_restart(clock, probe):
    """Stopping the supervisor while a child waits for its backoff means it never starts again."""
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
    supervisor, events = await start_with_backoff(clock, probe, backoff)
    probe.crash("a")
    await events.wait_for(ChildRestarting, "a")

    await supervisor.stop()
    clock.advance(5.0)
    await settle()

    assert probe.starts["a"] == 1
    assert events.count(ChildStopped, "a") == 1
    assert events.count(ChildStopped, "b") == 1


async def test_group_restart_waits_backoff_delay(clock, probe):
    """In a one_for_all restart, the failed child's backoff delay passes between stop and start."""
    events = EventLog(clock)
    backoff = Backoff(initial=0.5, maximum=0.5, jitter=0.0)
    supervisor = Supervisor(
        [probe.spec("a", backoff=backoff), probe.spec("b")],
        strategy="one_for_all",
        clock=clock,
        on_event=events,
    )
    await start_all(supervisor, events)
    probe.log.clear()

    probe.crash("a")
    restarting = await events.wait_for(ChildRestarting, "a")
    await settle()

    assert restarting.delay == 0.5
    assert probe.log == [("crash", "a"), ("stop", "b")]

    clock.advance(0.5 - EPSILON)
    await settle()

    assert probe.log == [("crash", "a"), ("stop", "b")]

    clock.advance(EPSILON)
    ready = await events.wait_for(ChildReady, "b", count=2)

    assert events.time_of(ready) == 0.5
    assert probe.log[2:] == [("start", "a"), ("start", "b")]
    await supervisor.stop()


async def test_unrequested_cancel_in_backoff_restarts(clock, caplog):
    """A child cancelled by someone else during its backoff delay is started, not lost."""
    starts = 0

    async def child():
        nonlocal starts
        starts += 1
        if starts == 1:
            raise RuntimeError("first generation fails")
        await asyncio.Event().wait()

    backoff = Backoff(initial=1.0, jitter=0.0)
    supervisor = Supervisor([ChildSpec("child", child, backoff=backoff)], clock=clock)
    await supervisor.start()
    await settle()
    [waiting] = supervisor.which_children()
    assert waiting.status == "restarting"

    waiting.task.cancel()
    await settle()

    assert "was cancelled while waiting 1.0 s to restart; restarting it now" in caplog.text
    [info] = supervisor.which_children()
    assert info.status == "running"
    assert info.generation == 2
    assert not info.task.done()
    await supervisor.stop()


async def test_stop_during_backoff_starts_nothing(clock):
    """A backoff delay that ends while the supervisor stops does not start the child again."""
    first_starts = 0

    async def first():
        nonlocal first_starts
        first_starts += 1
        if first_starts == 1:
            raise RuntimeError("first generation fails")
        await asyncio.Event().wait()

    async def slow_to_stop():
        try:
            await asyncio.Event().wait()
        finally:
            # Keeps the ordered stop busy past the end of the sibling's backoff delay.
            await clock.sleep(0.5)

    events = EventLog()
    supervisor = Supervisor(
        [
            ChildSpec("first", first, backoff=Backoff(initial=0.1, jitter=0.0)),
            ChildSpec("second", slow_to_stop),
        ],
        clock=clock,
        on_event=events,
    )
    await supervisor.start()
    await settle()
    stopping = asyncio.ensure_future(supervisor.stop())
    await settle()

    await clock.advance_and_settle(1.0)
    await stopping

    assert first_starts == 1
    assert [event.cause for event in events.select(ChildStopped, "first")] == ["shutdown"]
    assert supervisor.which_children()[0].status == "stopped"

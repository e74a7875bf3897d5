"""Background load for the latency benchmarks.

A load level is a number of concurrent *operations* running on the event loop
while a benchmark measures something else on the same loop:

- ``idle``: no operations, so no other tasks;
- ``light``: 10 operations;
- ``heavy``: 100 operations.

An operation is one message bouncing between two tasks over two asyncio.Queue
objects. Whichever task has the message runs one *slice* and passes it on:

1. CPU work: ``SLICE_ITERATIONS`` (64) rounds of ``acc = (acc * 31 + i) & 0xFFFF``
   on Python ints;
2. message passing: ``put_nowait`` of the message into the peer's queue, then
   ``await`` on its own queue's ``get()``, which suspends the task until the peer
   sends the message back.

The waiting peer is woken through ``call_soon``, so it runs in the next pass of
the event loop. Every pass therefore runs exactly one slice per operation, and
an operation never waits on a timer: at ``heavy`` each pass does 100 slices of
work before the loop can look at anything else.

Run ``python -m benchmarks._load`` from the repository root to print the cost of
one slice and of one loop pass at each level on the current machine. On a
2-core shared sandbox (CPython 3.11.7) it printed 2.4 us for the CPU part of a
slice, 4.5 us for a whole slice, and 45 us per loop pass at ``light`` and
0.45 ms at ``heavy``.
"""

import asyncio
import time

LOAD_LEVELS = {"idle": 0, "light": 10, "heavy": 100}
SLICE_ITERATIONS = 64


def _cpu_work(seed):
    acc = seed
    for i in range(SLICE_ITERATIONS):
        acc = (acc * 31 + i) & 0xFFFF
    return acc


class Load:
    """The operations of one load level, run as tasks on the current event loop.

    Use ``async with Load("heavy"):`` or call ``start()`` and ``stop()``.
    ``slices`` counts the slices run so far, across all operations.
    """

    def __init__(self, level):
        if level not in LOAD_LEVELS:
            raise ValueError(f"unknown load level {level!r}; expected one of {sorted(LOAD_LEVELS)}")
        self.level = level
        self.operations = LOAD_LEVELS[level]
        self.slices = 0
        self._tasks = []

    async def _peer(self, inbox, outbox):
        while True:
            message = await inbox.get()
            message = _cpu_work(message)
            self.slices += 1
            outbox.put_nowait(message)

    async def start(self):
        """Start the operations and return once every one has run a slice."""
        if self._tasks:
            raise RuntimeError(f"load {self.level!r} is already running")
        for operation in range(self.operations):
            first, second = asyncio.Queue(), asyncio.Queue()
            self._tasks.append(asyncio.create_task(self._peer(first, second)))
            self._tasks.append(asyncio.create_task(self._peer(second, first)))
            first.put_nowait(operation)

        # Pass 1 starts every task; in pass 2 the task holding each message
        # runs its first slice.
        while self.slices < self.operations:
            await asyncio.sleep(0)

    async def stop(self):
        """Cancel the operations and wait until their tasks have finished."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc_info):
        await self.stop()


def measure_slice_cost(iterations=20_000):
    """Return the seconds one call of the CPU part of a slice takes, without the queues."""
    start = time.perf_counter_ns()
    for i in range(iterations):
        _cpu_work(i)
    return (time.perf_counter_ns() - start) / iterations / 1e9


async def measure_loop_pass(level, duration=1.0):
    """Run ``level`` for ``duration`` seconds; return (seconds per slice, seconds per loop pass).

    Seconds per slice is None at ``idle``, which runs no slices.

    A callback that re-schedules itself with ``call_soon`` runs once per pass
    of the event loop, so the number of passes is the number of its calls.
    """
    loop = asyncio.get_running_loop()
    passes = 0

    def count_pass():
        nonlocal passes
        passes += 1
        handle[0] = loop.call_soon(count_pass)

    async with Load(level) as load:
        first_slice = load.slices
        handle = [loop.call_soon(count_pass)]
        start = time.perf_counter_ns()
        await asyncio.sleep(duration)
        elapsed = (time.perf_counter_ns() - start) / 1e9
        handle[0].cancel()
        slices = load.slices - first_slice

    per_slice = elapsed / slices if slices else None
    return per_slice, elapsed / passes


def main():
    print(f"CPU part of one slice: {measure_slice_cost() * 1e6:.2f} us")
    for level in LOAD_LEVELS:
        per_slice, per_pass = asyncio.run(measure_loop_pass(level))
        slice_text = "-" if per_slice is None else f"{per_slice * 1e6:.2f}"
        print(
            f"{level:>5}: {LOAD_LEVELS[level]:>3} operations, "
            f"{slice_text:>8} us per slice, {per_pass * 1e6:8.1f} us per loop pass"
        )


if __name__ == "__main__":
    main()

"""Soak: a supervision tree under random crashes, normal exits, slow shutdowns and terminations.

The tree is a root supervisor over one plain supervisor of permanent children and several
dynamic supervisors of transient children, all on one virtual clock. Each round the driver
picks distinct live children at random and crashes them, makes them return, or terminates
them at run time (terminated children are restarted or replaced). Some children take virtual
time to clean up after cancellation, and a few ignore it past their shutdown time and are
abandoned, then released a round later. At the end the test checks that no task leaked,
that every permanent child was alive before the final stop, that every event is accounted
for by the driver's own tally, and that memory came back.

The CI configuration (1,000 children, 100,000 restarts) runs as a test. The longer one runs
by hand, from the repository root:

    .venv/bin/python -m tests.test_soak --children 10000 --restarts 1000000

It prints the figures that docs/TREES.md records.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass

from supervisor import (
    ChildExited,
    ChildQuarantined,
    ChildRestarting,
    ChildShutdownTimeout,
    ChildSpec,
    ChildStarted,
    ChildStatus,
    ChildStopped,
    DynamicSupervisor,
    Event,
    IntensityExceeded,
    Supervisor,
    SupervisorStopped,
)
from supervisor.testing import VirtualClock, settle


@dataclass(frozen=True)
class SoakConfig:
    children: int = 1000
    restarts: int = 100_000
    pools: int = 4  # dynamic supervisors; the rest of the children are permanent in one plain supervisor
    permanent_share: float = 0.2
    seed: int = 20240611
    # Per picked child: crash, return normally or be terminated at run time, by weight.
    weights: tuple[float, float, float] = (0.85, 0.1, 0.05)
    # Share of children that take virtual time to clean up, and of those that ignore cancellation.
    slow_share: float = 0.1
    stubborn_share: float = 0.01
    cleanup_seconds: float = 0.01
    shutdown_seconds: float = 0.03
    round_seconds: float = 0.05
    # Allocated blocks (sys.getallocatedblocks()) that may remain after the tree is gone.
    # The tree itself takes tens of thousands; what remains is interpreter caches.
    memory_bound_blocks: int = 2_000


class Leaf:
    """What one child does; the driver reaches it by key to make it exit."""

    __slots__ = ("kind", "exit", "release", "task")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "plain", "slow" or "stubborn"
        self.exit: asyncio.Future[None] | None = None
        self.release: asyncio.Future[None] | None = None
        self.task: asyncio.Task | None = None


class World:
    """The leaves by key, the driver's tally and the clock they share."""

    def __init__(self, config: SoakConfig, clock: VirtualClock) -> None:
        self.config = config
        self.clock = clock
        self.random = random.Random(config.seed)
        self.leaves: dict[str, Leaf] = {}
        self.tally: Counter[str] = Counter()
        self.events: Counter[type] = Counter()
        self.leaf_events: Counter[type] = Counter()
        self.abandoned: list[Leaf] = []

    def on_event(self, event: Event) -> None:
        self.events[type(event)] += 1
        if event.supervisor != "root":
            self.leaf_events[type(event)] += 1

    def new_leaf(self, key: str) -> None:
        draw = self.random.random()
        if draw < self.config.stubborn_share:
            kind = "stubborn"
        elif draw < self.config.stubborn_share + self.config.slow_share:
            kind = "slow"
        else:
            kind = "plain"
        self.leaves[key] = Leaf(kind)


async def leaf_main(world: World, key: str) -> None:
    leaf = world.leaves[key]
    loop = asyncio.get_running_loop()
    leaf.exit = loop.create_future()
    leaf.task = asyncio.current_task()
    world.tally["leaf_starts"] += 1
    try:
        await leaf.exit
    except asyncio.CancelledError:
        if leaf.kind == "slow":
            await world.clock.sleep(world.config.cleanup_seconds)
        elif leaf.kind == "stubborn":
            leaf.release = loop.create_future()
            try:
                await leaf.release
            except asyncio.CancelledError:
                pass
        raise
    finally:
        leaf.exit = None


def build_tree(world: World) -> tuple[Supervisor, Supervisor, list[DynamicSupervisor]]:
    config = world.config
    permanent = int(config.children * config.permanent_share)
    specs = []
    for n in range(permanent):
        key = f"s{n}"
        world.new_leaf(key)
        specs.append(ChildSpec(key, leaf_main, args=(world, key), shutdown=config.shutdown_seconds))
    # Limits far above what the driver injects, so any IntensityExceeded is a bug.
    limits = {"max_restarts": 10 * config.children, "max_seconds": 1.0}
    static = Supervisor(specs, name="static", clock=world.clock, on_event=world.on_event, **limits)
    template = ChildSpec("leaf", leaf_main, args=(world,), restart="transient", shutdown=config.shutdown_seconds)
    pools = [
        DynamicSupervisor(
            template,
            name=f"pool{k}",
            child_max_restarts=1000,
            child_max_seconds=1.0,
            clock=world.clock,
            on_event=world.on_event,
            **limits,
        )
        for k in range(config.pools)
    ]
    root = Supervisor(
        [static.child_spec(), *(pool.child_spec() for pool in pools)],
        name="root",
        clock=world.clock,
        on_event=world.on_event,
        **limits,
    )
    return root, static, pools


class Driver:
    def __init__(self, world: World, static: Supervisor, pools: list[DynamicSupervisor]) -> None:
        self.world = world
        self.static = static
        self.pools = pools
        self.owner: dict[str, tuple[Supervisor, object]] = {}  # key -> (supervisor, child id)
        self.serial = 0

    async def fill_pools(self) -> None:
        permanent = len(self.static.which_children())
        per_pool = (self.world.config.children - permanent) // len(self.pools)
        for info in self.static.which_children():
            self.owner[info.id] = (self.static, info.id)
        for pool in self.pools:
            for _ in range(per_pool):
                await self.start_pooled(pool)

    async def start_pooled(self, pool: DynamicSupervisor) -> None:
        self.serial += 1
        key = f"d{self.serial}"
        self.world.new_leaf(key)
        child_id = await pool.start_child(key)
        self.owner[key] = (pool, child_id)
        self.world.tally["pool_starts"] += 1

    async def terminate(self, key: str) -> None:
        supervisor, child_id = self.owner[key]
        leaf = self.world.leaves[key]
        await supervisor.terminate_child(child_id)
        self.world.tally["terminations"] += 1
        if leaf.task is not None and not leaf.task.done():
            self.world.abandoned.append(leaf)
        if supervisor is self.static:
            await self.static.restart_child(child_id)
            self.world.tally["manual_restarts"] += 1
        else:
            del self.owner[key]
            del self.world.leaves[key]
            await self.start_pooled(supervisor)

    async def round(self) -> None:
        world = self.world
        config = world.config

        # Release the children abandoned last round, so none outlives the run.
        for leaf in world.abandoned:
            if leaf.release is not None and not leaf.release.done():
                leaf.release.set_result(None)
        world.abandoned.clear()

        ready = [key for key, leaf in world.leaves.items() if leaf.exit is not None and not leaf.exit.done()]
        picked = world.random.sample(ready, min(len(ready), config.children // 2))
        actions = world.random.choices(("crash", "return", "terminate"), config.weights, k=len(picked))
        terminations = []
        for key, action in zip(picked, actions):
            leaf = world.leaves[key]
            if action == "crash":
                leaf.exit.set_exception(RuntimeError(f"injected crash of {key}"))
                world.tally["crashes"] += 1
            elif action == "return":
                leaf.exit.set_result(None)
                world.tally["returns"] += 1
                if key.startswith("s"):
                    world.tally["permanent_returns"] += 1
                else:
                    terminations.append(self.replace_returned(key))
            else:
                terminations.append(self.terminate(key))

        # Terminations wait for slow cleanups, which need the virtual clock to move.
        pending = asyncio.ensure_future(asyncio.gather(*terminations))
        await settle()
        while not pending.done():
            await world.clock.advance_and_settle(config.round_seconds)
        await pending
        await world.clock.advance_and_settle(config.round_seconds)

    async def replace_returned(self, key: str) -> None:
        supervisor, _ = self.owner.pop(key)
        # A transient child that returned is not restarted, so its task ends.
        await asyncio.wait([self.world.leaves[key].task])
        del self.world.leaves[key]
        await self.start_pooled(supervisor)


async def stop_tree(root: Supervisor, world: World) -> None:
    stopping = asyncio.create_task(root.stop())
    await settle()
    while not stopping.done():
        for leaf in world.abandoned:
            if leaf.release is not None and not leaf.release.done():
                leaf.release.set_result(None)
        deadline = world.clock.next_deadline()
        step = world.config.round_seconds if deadline is None else max(0.0, deadline - world.clock.now())
        await world.clock.advance_and_settle(step)
    await stopping
    # Release children abandoned during the final stop.
    for leaf in world.leaves.values():
        if leaf.release is not None and not leaf.release.done():
            leaf.release.set_result(None)
    await settle()


async def soak(config: SoakConfig) -> dict[str, object]:
    """Run the soak and return its figures; raise AssertionError if a check fails."""
    logger = logging.getLogger("supervisor")
    level = logger.level
    # Failures are logged at ERROR; a million log records would measure logging, not restarts.
    logger.setLevel(logging.CRITICAL)
    try:
        gc.collect()
        tasks_before = asyncio.all_tasks()
        blocks_before = sys.getallocatedblocks()
        figures = await _drive(config, blocks_before)
    finally:
        logger.setLevel(level)

    # Nothing leaked once the tree is gone: no task, and the memory it took is back.
    gc.collect()
    leaked = asyncio.all_tasks() - tasks_before
    assert not leaked, f"{len(leaked)} tasks leaked, for example {next(iter(leaked))!r}"
    figures["blocks_after_minus_start"] = sys.getallocatedblocks() - blocks_before
    assert figures["blocks_after_minus_start"] < config.memory_bound_blocks, figures
    return figures


async def _drive(config: SoakConfig, blocks_before: int) -> dict[str, object]:
    began = time.perf_counter()

    clock = VirtualClock()
    world = World(config, clock)
    root, static, pools = build_tree(world)
    driver = Driver(world, static, pools)
    await root.start()
    await driver.fill_pools()
    await settle()
    started = time.perf_counter()

    rounds = 0
    peak_blocks = 0
    while world.events[ChildRestarting] < config.restarts:
        await driver.round()
        rounds += 1
        if rounds % 50 == 0:
            peak_blocks = max(peak_blocks, sys.getallocatedblocks())
    peak_blocks = max(peak_blocks, sys.getallocatedblocks())
    driven = time.perf_counter()

    # Every permanent child and every supervisor is alive before the final stop.
    for info in static.which_children():
        assert info.status is ChildStatus.RUNNING, info
        assert info.task is not None and not info.task.done(), info
    for info in root.which_children():
        assert info.status is ChildStatus.RUNNING, info
    live_children = sum(pool.count_children()["active"] for pool in pools) + static.count_children()["active"]

    await stop_tree(root, world)
    stopped = time.perf_counter()

    # Every event matches the driver's tally.
    tally = world.tally
    events = world.events
    leaf_events = world.leaf_events
    exits = tally["crashes"] + tally["returns"]
    assert events[IntensityExceeded] == 0
    assert events[ChildQuarantined] == 0
    assert leaf_events[ChildExited] == exits, (leaf_events, tally)
    assert events[ChildRestarting] == tally["crashes"] + tally["permanent_returns"], (events, tally)
    assert leaf_events[ChildStarted] == tally["leaf_starts"], (leaf_events, tally)
    assert tally["leaf_starts"] == (
        len(static.which_children()) + tally["pool_starts"] + events[ChildRestarting] + tally["manual_restarts"]
    ), tally
    # A child's generation ends with exactly one exit or one stop.
    assert leaf_events[ChildStarted] == leaf_events[ChildExited] + leaf_events[ChildStopped], leaf_events
    assert leaf_events[ChildStopped] == tally["terminations"] + live_children, (leaf_events, tally)
    assert events[SupervisorStopped] == 2 + len(pools)

    figures = {
        "children": live_children,
        "rounds": rounds,
        "restarts": events[ChildRestarting],
        "crashes": tally["crashes"],
        "returns": tally["returns"],
        "terminations": tally["terminations"],
        "abandoned": events[ChildShutdownTimeout],
        "events": sum(events.values()),
        "setup_s": round(started - began, 2),
        "drive_s": round(driven - started, 2),
        "stop_s": round(stopped - driven, 2),
        "us_per_restart": round((driven - started) / events[ChildRestarting] * 1e6, 1),
        "virtual_s": round(clock.now(), 2),
        "peak_blocks_over_start": peak_blocks - blocks_before,
    }
    return figures


async def test_soak_tree_under_random_faults():
    """A 1,000-child tree through 100,000 restarts: no leaked task or memory, every event accounted for."""
    figures = await soak(SoakConfig())
    assert figures["restarts"] >= 100_000
    assert figures["children"] >= 1000
    assert figures["terminations"] > 0
    assert figures["abandoned"] > 0


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the supervision-tree soak and print its figures.")
    parser.add_argument("--children", type=int, default=SoakConfig.children, help="children in the tree")
    parser.add_argument("--restarts", type=int, default=SoakConfig.restarts, help="restarts to reach")
    parser.add_argument("--pools", type=int, default=SoakConfig.pools, help="dynamic supervisors")
    parser.add_argument("--seed", type=int, default=SoakConfig.seed, help="seed of the fault schedule")
    options = parser.parse_args()
    config = SoakConfig(
        children=options.children, restarts=options.restarts, pools=options.pools, seed=options.seed
    )
    figures = asyncio.run(soak(config))
    for name, value in figures.items():
        print(f"{name:>26}: {value}")


if __name__ == "__main__":
    main()

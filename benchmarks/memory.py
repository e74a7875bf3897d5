"""Peak memory of a supervisor with N idle children, beside N bare asyncio tasks."""

import asyncio

from . import _restart


async def _idle_child():
    await asyncio.get_running_loop().create_future()


async def _hold_supervised(children):
    Supervisor, ChildSpec = _restart.require("Supervisor", "ChildSpec")
    specs = [ChildSpec(f"child-{slot}", _idle_child) for slot in range(children)]
    supervisor = Supervisor(specs, name="bench")
    await supervisor.start()
    await supervisor.stop()


async def _hold_bare(children):
    tasks = [asyncio.create_task(_idle_child()) for _ in range(children)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class IdleChildrenMemory:
    """Peak resident memory of the benchmark process holding N idle children.

    asv's ``peakmem_`` reports the process's maximum RSS, which includes the
    interpreter and the imported modules. The memory per child is therefore the
    difference between two sizes divided by the difference in N. 100,000 makes that
    difference large against the process's fixed size, and 1 shows the fixed
    size itself. Children do not signal readiness, so they are ready once their
    task exists, like the bare tasks.
    """

    params = ([1, 10000, 100000],)
    param_names = ("children",)
    timeout = 300
    version = 1

    def setup(self, children):
        # Both benchmarks import the library, so their fixed sizes match.
        _restart.require("Supervisor", "ChildSpec")

    def peakmem_supervisor(self, children):
        asyncio.run(_hold_supervised(children))

    def peakmem_bare_tasks(self, children):
        asyncio.run(_hold_bare(children))

"""DynamicSupervisor: many children of one kind, started at run time from a template spec."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

from ._clock import Clock
from ._errors import InvalidChildSpec, TooManyChildren
from ._events import Event
from ._spec import ChildSpec, _to_finite_float
from ._supervisor import Supervisor

__all__ = ["DynamicSupervisor"]


class DynamicSupervisor(Supervisor):
    """A one_for_one supervisor whose children all come from one template spec.

    This is Erlang/OTP's ``simple_one_for_one`` and Elixir's ``DynamicSupervisor``. It starts
    with no children. ``start_child(*args, **kwargs)`` starts one from ``template``, with
    ``args`` appended to the template's positional arguments and ``kwargs`` merged over its
    keyword arguments. It returns the new child's id, an integer counted from 1 over the
    children it started. A call rejected before a start uses no id, and no id is used twice.

    ``max_children`` (default ``None``, no limit) bounds the number of children, counting
    quarantined ones; ``start_child()`` beyond it raises ``TooManyChildren``. At shutdown every
    child is cancelled at once and each is waited for up to its own shutdown time, so stopping
    takes as long as the slowest child, in no defined order.

    ``child_max_restarts`` and ``child_max_seconds`` give each child its own restart budget
    (default ``None``: none): a child with more than ``child_max_restarts`` restarts within
    ``child_max_seconds`` is quarantined, which means it is not restarted, reported as a
    ``ChildQuarantined`` event and an ERROR log, and listed with status ``quarantined``. Its
    siblings keep running. The supervisor-wide ``max_restarts`` in ``max_seconds`` still
    applies to all children together; a quarantine is not a restart and does not count there.
    A child that reaches the template's ``max_lifetime_restarts`` is quarantined the same way,
    where a plain supervisor would fail.
    A child that exits and is not restarted (a transient one after a normal exit, a temporary
    one after any exit) is removed. ``terminate_child()`` stops a child and removes it, as in
    Elixir; ``restart_child()`` starts a quarantined child again with an empty budget.
    """

    def __init__(
        self,
        template: ChildSpec,
        *,
        max_children: int | None = None,
        child_max_restarts: int | None = None,
        child_max_seconds: float = 5.0,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        clock: Clock | None = None,
        on_event: Callable[[Event], object] | None = None,
    ) -> None:
        super().__init__(
            (),
            strategy="one_for_one",
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            name=name,
            clock=clock,
            on_event=on_event,
        )

        self._check_new_spec(template, (), "template")
        if max_children is not None and (
            not isinstance(max_children, int) or isinstance(max_children, bool) or max_children < 1
        ):
            raise InvalidChildSpec("max_children", max_children, "expected an integer >= 1 or None")
        if child_max_restarts is not None and (
            not isinstance(child_max_restarts, int) or isinstance(child_max_restarts, bool) or child_max_restarts < 0
        ):
            raise InvalidChildSpec("child_max_restarts", child_max_restarts, "expected an integer >= 0 or None")
        rule = "expected a finite number of seconds > 0"
        if _to_finite_float("child_max_seconds", child_max_seconds, rule) <= 0:
            raise InvalidChildSpec("child_max_seconds", child_max_seconds, rule)

        self._template = template
        self._max_children = max_children
        self._budget_max_restarts = child_max_restarts
        self._budget_max_seconds = float(child_max_seconds)
        self._parallel_shutdown = True
        self._forget_exited = True
        self._quarantines = True
        self._next_id = 1

    @property
    def template(self) -> ChildSpec:
        """The spec every child is started from."""
        return self._template

    @property
    def max_children(self) -> int | None:
        return self._max_children

    def __repr__(self) -> str:
        counts = self.count_children()
        limit = "" if self._max_children is None else f"/{self._max_children}"
        return (
            f"<DynamicSupervisor {self.name!r} {self.state} children={counts['specs']}{limit} "
            f"active={counts['active']} restarts={sum(child.restarts for child in self._children.values())}>"
        )

    async def start_child(self, *args: Any, **kwargs: Any) -> Hashable:  # type: ignore[override]
        """Start a child from the template with extra arguments; return its id.

        Waits until the child is ready, as ``Supervisor.start_child()`` does. Raises
        ``TooManyChildren`` at ``max_children``, ``ChildStartError`` if the child fails before
        it is ready (it is then removed), and ``SupervisorNotRunning`` unless the supervisor
        is starting or running. Raises ``InvalidChildSpec`` if a positional argument is a
        ``ChildSpec``, because this method builds each child's spec from the template.
        """
        # Supervisor.start_child() takes a spec, so passing one here is an easy mistake, and
        # the template's start would otherwise receive it as a plain argument.
        for index, argument in enumerate(args):
            if isinstance(argument, ChildSpec):
                raise InvalidChildSpec(
                    f"args[{index}]",
                    argument,
                    "DynamicSupervisor.start_child() takes extra arguments for the template's "
                    "start, not a spec. Start a different spec with Supervisor.start_child(spec), "
                    "or pass a ChildSpec meant for the template's start as a keyword argument",
                )
        self._require_running("start")
        if self._max_children is not None and len(self._children) >= self._max_children:
            raise TooManyChildren(self.name, self._max_children)
        child_id = self._next_id
        template = self._template
        spec = dataclasses.replace(
            template,
            id=child_id,
            args=template.args + args,
            kwargs={**template.kwargs, **kwargs} if kwargs else template.kwargs,
        )
        # Taken only once the spec is valid and the child will be started, so a refused call
        # uses no id. Nothing awaits in between, so no other call can take the same one.
        self._next_id += 1
        await self._add_and_launch(spec)
        return child_id

    async def terminate_child(self, child_id: Hashable) -> None:
        """Stop a child and remove it, whatever its restart type; a pending restart is cancelled."""
        await super().terminate_child(child_id)
        self._children.pop(child_id, None)

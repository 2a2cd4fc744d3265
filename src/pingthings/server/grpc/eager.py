"""Run a call's handler at once, in the turn its request arrived, and make a task only if it waits.

Python 3.11 has no eager task factory, so :func:`start_eager` does by hand what one would: it
sends the first step into the handler's coroutine in a fresh copy of the context. A handler that
finishes without waiting (an Info call) has then replied in the same turn as its request, with no
task, no ``call_soon`` and no done callback. One that waits (an insert waits for its journal
write) yields a future; :class:`Resumed` hands the started coroutine to a task made with that
context, which waits for the future as a task always does and carries on from there: the
handler's remaining steps, cancellation (``task.cancel()`` reaches the coroutine) and exceptions
behave as if the task had run it from the start.

While the first step runs ``asyncio.current_task()`` is None; see
:class:`~.dispatch.Method` for what an eager handler may therefore do before its first await.
Code that needs one (anything of anyio's: it finds its backend through the current task) first
awaits :func:`needs_task`, which suspends once during a first step, so that the rest runs in the
task (``service/convert.py``'s ``blocking`` does).
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

_NOTHING: Any = object()
#: True while :func:`start_eager` runs a first step (steps of one thread never nest).
_in_first_step = False
#: True while that first step is of the only call its connection's read started.
_alone = False


@types.coroutine
def _bare_yield() -> Generator[None, None, None]:
    yield


def first_step_alone() -> bool:
    """Whether the code running now is the first step of the only call one read started.

    A handler may then finish work at once that it would otherwise put off to the end of the
    loop turn to share with the other calls of that turn (the ingest writer journals such an
    insert right away, see ``service/ingest_writer.py``).
    """
    return _alone


async def needs_task() -> None:
    """Suspend once if this is an eager handler's first step (no current task); else nothing.

    The task made for the handler resumes it in the next turn of the event loop.
    """
    if _in_first_step:
        await _bare_yield()


class Resumed(Coroutine[Any, None, None]):
    """A started coroutine, as a task's coroutine: the task's first step resumes it.

    Parameters
    ----------
    coro
        The coroutine, suspended on ``pending``.
    pending
        What its first step yielded (a future, usually); when it is done by the time the task
        first runs, the coroutine is resumed at once instead of being handed to the task.
    before_step, after_step
        Called around every step the task runs (the connection queues the step's writes, then
        writes them).
    """

    __slots__ = ("_after_step", "_before_step", "_coro", "_pending")

    def __init__(
        self,
        coro: Coroutine[Any, None, None],
        pending: Any,
        before_step: Callable[[], None],
        after_step: Callable[[], None],
    ) -> None:
        self._coro = coro
        self._pending = pending
        self._before_step = before_step
        self._after_step = after_step

    def send(self, value: None) -> Any:
        """One step of the task."""
        pending = self._pending
        self._before_step()
        try:
            if pending is not _NOTHING:
                self._pending = _NOTHING
                done = getattr(pending, "done", None)
                if done is None or not done():
                    return pending  # the task waits for it, as if the coroutine had yielded it now
            return self._coro.send(value)
        finally:
            self._after_step()

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        """A step that raises into the coroutine (the task was cancelled)."""
        self._pending = _NOTHING
        self._before_step()
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        finally:
            self._after_step()

    def close(self) -> None:
        """Close the coroutine."""
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:  # pragma: no cover - tasks use send/throw
        raise TypeError("a Resumed coroutine is only run by a task")


def start_eager(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, None, None],
    before_step: Callable[[], None],
    after_step: Callable[[], None],
    alone: bool = False,
) -> asyncio.Task[None] | None:
    """Run ``coro``'s first step now; return the task that carries on, or None if it finished.

    ``alone``: the call is the only one its connection's read started (see :func:`first_step_alone`).

    Raises
    ------
    BaseException
        Whatever the first step raised (a handler's own errors are caught inside ``coro``).
    """
    global _in_first_step, _alone
    context = contextvars.copy_context()
    _in_first_step = True
    _alone = alone
    try:
        pending = context.run(coro.send, None)
    except StopIteration:
        return None
    finally:
        _in_first_step = _alone = False
    return loop.create_task(Resumed(coro, pending, before_step, after_step), context=context)


__all__ = ["Resumed", "first_step_alone", "needs_task", "start_eager"]

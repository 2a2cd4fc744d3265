"""Who runs the sync client's event loop right now: a calling thread, the loop's own thread, or nobody.

The synchronous :class:`~pingthings.timeseries.client.Client` keeps one asyncio loop per client. A loop that
lives on its own thread costs every blocking call two thread wake-ups (the caller wakes the loop thread, the
loop thread wakes the caller), and on a virtual machine a wake-up of an idle CPU costs tens of µs. So the loop
is not pinned to its thread. It is *owned* by at most one thread at a time:

* a **calling thread** that finds the loop unowned runs it itself (``run_until_complete``) for the duration
  of its call: no hand-off, no wake-up, the reply is read by the thread that waits for it;
* the **loop thread** runs it whenever work exists that no caller is waiting on: another thread's call that
  arrived while the loop was busy, a background task (an iteration's pump, a coroutine handed to
  ``run_coroutine_threadsafe``), or a call whose caller was interrupted and is still unwinding. It gives the
  loop up (parks) as soon as none is left;
* **nobody**, between calls: an idle sync client needs no thread at all, since its connections read only
  while a call waits (keepalive pings go out only then too).

One lock orders every change of owner, and work is handed to a running loop only under that lock, so an owner
that is about to give the loop up always sees work that arrived before it let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

LOOP_THREAD = -1
"""The owner value meaning "the loop's own thread" (thread idents are never negative)."""


_OWNERS: weakref.WeakSet[LoopOwner] = weakref.WeakSet()
"""Every live owner, so that a forked child can mark them all as its parent's."""


def _mark_forked() -> None:
    for owner in list(_OWNERS):
        owner.forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


class LoopOwner:
    """The event loop, its own thread, and whoever runs the loop now.

    Holds no reference to the :class:`~pingthings.timeseries.event_loop.ClientEventLoop` that uses it, so
    that object's finalizer can shut the loop down.
    """

    def __init__(self, name: str = "pingthings-client-loop") -> None:
        self.loop = asyncio.new_event_loop()
        #: Tasks created on the loop so far, except callers' own (see :meth:`release`).
        self.tasks_created = 0
        self.loop.set_task_factory(self._new_task)
        self.lock = threading.Lock()
        #: Thread ident of the thread running the loop, :data:`LOOP_THREAD`, or None (parked).
        self.owner: int | None = None
        #: Set once the loop is shutting down: no new work, and the loop thread finishes it off.
        self.closing = False
        #: Set in a forked child: the loop, its sockets and its thread belong to the parent process.
        self.forked = False
        self._shutting_down = False
        self._look_queued = False
        self._wake = threading.Event()
        #: Set while the loop thread is not running the loop (it parked, or never started to).
        self.loop_thread_parked = threading.Event()
        self.loop_thread_parked.set()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        _OWNERS.add(self)

    # ------------------------------------------------------------------ state

    def _new_task(self, loop: asyncio.AbstractEventLoop, coro: Any, context: Any = None) -> asyncio.Task[Any]:
        """The loop's task factory: count every task made through ``loop.create_task``."""
        self.tasks_created += 1
        return asyncio.Task(coro, loop=loop, context=context)

    def busy(self) -> bool:
        """True if the loop has callbacks queued or unfinished tasks (call holding :attr:`lock`, or as owner).

        Reads asyncio's private ``_ready`` queue where the loop has one; a loop without it counts as always
        busy, which only means its thread keeps running it (the behaviour of a loop pinned to a thread).
        """
        ready = getattr(self.loop, "_ready", None)
        if ready is None or ready:
            return True
        return any(not task.done() for task in asyncio.all_tasks(self.loop))

    def runs_here(self) -> bool:
        """True if this thread is running the loop now (as a caller or as the loop thread)."""
        return asyncio._get_running_loop() is self.loop

    # ------------------------------------------------------------------ handing work over

    def try_take(self) -> bool:
        """Become the owner if nobody runs the loop; True if this thread may now run it."""
        with self.lock:
            if self.owner is None and not self.closing:
                self.owner = threading.get_ident()
                return True
            return False

    def release(self, tasks_before: int) -> None:
        """Give the loop up after running it as a caller; the loop thread takes over any work left.

        ``tasks_before`` is :attr:`tasks_created` when the caller took the loop. A caller takes only a loop
        with no unfinished task (whoever gave it up saw none), and makes its own task without the factory;
        so if no task was created meanwhile, none can be unfinished and the costly scan is skipped.
        """
        with self.lock:
            loop = self.loop
            if tasks_before == self.tasks_created and not self.closing:
                ready = getattr(loop, "_ready", None)
                idle = ready is not None and not ready
            else:
                idle = not self.closing and not self.busy()
            if idle:
                self.owner = None
            else:
                self._hand_to_loop_thread()

    def submit(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon, from any thread, in a copy of the caller's context.

        Wakes the loop thread if nobody runs the loop. Raises RuntimeError once the loop is closing.
        """
        with self.lock:
            if self.closing:
                raise RuntimeError("the event loop is closing")
            self.loop.call_soon_threadsafe(callback, *args)
            if self.owner is None:
                self._hand_to_loop_thread()

    def _hand_to_loop_thread(self) -> None:
        """Make the loop thread the owner and wake it (with :attr:`lock` held)."""
        self.owner = LOOP_THREAD
        self.loop_thread_parked.clear()
        self._wake.set()

    def park_if_idle(self) -> None:
        """On the loop: let the loop thread stop running it once no work is left (others ignore this).

        The look happens in a callback of its own, after the callbacks queued now (a finished task's other
        done callbacks, say); at most one such look is queued at a time.
        """
        if self.owner == LOOP_THREAD and not self._look_queued:
            self._look_queued = True
            self.loop.call_soon(self._look)

    def _look(self) -> None:
        self._look_queued = False
        if self.owner != LOOP_THREAD:
            return
        loop = self.loop
        if any(not task.done() for task in asyncio.all_tasks(loop)):
            return  # each task calls park_if_idle when it ends
        ready = getattr(loop, "_ready", None)
        if ready is None:
            return  # a loop that does not show its queue: its thread keeps running it
        if ready:
            self.park_if_idle()  # look again after what is queued now
        else:
            loop.stop()  # the loop thread re-checks under the lock before it parks

    def task_done(self, task: asyncio.Future[Any]) -> None:
        """Done callback of every task the sync facade starts: the loop thread may be idle now."""
        self.park_if_idle()

    # ------------------------------------------------------------------ the loop thread

    def _serve(self) -> None:
        loop = self.loop
        while True:
            self._wake.wait()
            with self.lock:
                self._wake.clear()
                if self.owner != LOOP_THREAD:
                    continue
            while True:
                self.park_if_idle()
                # An error escaping a callback (a task records its own) must not end the loop thread.
                with contextlib.suppress(BaseException):
                    loop.run_forever()
                with self.lock:
                    if self.closing:
                        break
                    if not self.busy():
                        self.owner = None
                        self.loop_thread_parked.set()
                        break
            if self.closing:
                self._shut_down()
                return

    def _stop_serving(self) -> None:
        """On the loop: stop the loop thread's run so it sees :attr:`closing` (not once shutdown began)."""
        if not self._shutting_down:
            self.loop.stop()

    def _shut_down(self) -> None:
        """Cancel what still runs, let it unwind, and close the loop (on the loop thread, as its owner).

        Work handed over before :attr:`closing` was set may still sit in the queue and start tasks as it
        runs, so this repeats until neither tasks nor queued callbacks are left.
        """
        loop = self.loop
        self._shutting_down = True
        try:
            while True:
                tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                elif getattr(loop, "_ready", None):
                    loop.run_until_complete(asyncio.sleep(0))  # run what is queued
                else:
                    break
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def close(self, cancel_running: Callable[[], None]) -> None:
        """Stop taking work, cancel what runs, shut the loop down and wait for the loop thread to end.

        ``cancel_running`` runs on the loop when a caller owns it, so the caller's call ends (cancelled)
        and hands the loop over.
        """
        with self.lock:
            if self.closing:
                return
            self.closing = True
            owner = self.owner
            if owner is None or owner == LOOP_THREAD:
                self.loop.call_soon_threadsafe(self._stop_serving)
                if owner is None:
                    self._hand_to_loop_thread()
            else:
                self.loop.call_soon_threadsafe(cancel_running)
        # Joining is impossible from the loop thread, or from a caller that runs the loop (a finalizer
        # can run anywhere): the loop thread then finishes the shutdown on its own.
        if threading.get_ident() not in (self._thread.ident, owner):
            self._thread.join()

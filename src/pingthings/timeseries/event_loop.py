"""``ClientEventLoop``: the event loop behind the synchronous client.

One asyncio loop per :class:`~pingthings.timeseries.client.Client`, shared by every thread that uses the
client, so the client's single HTTP/2 connection and its concurrency limiter are shared. A blocking call runs
the loop *in the calling thread* when the loop is free, and hands the call to the loop's own thread when
another thread is running it (see :mod:`._loop_owner` for who runs the loop when, and why).

Three ways in:

* :meth:`ClientEventLoop.call` runs an async function and blocks for its result (the sync facade's
  workhorse; an interrupt such as Ctrl-C cancels the call on the loop);
* :meth:`ClientEventLoop.run_coroutine_threadsafe` schedules a coroutine and returns a
  :class:`concurrent.futures.Future`;
* :meth:`ClientEventLoop.iterate` turns an async iterator (or an async context manager yielding one)
  into a plain iterator that pulls one item at a time. The async side runs as one task on the loop,
  so context managers and cancel scopes are entered and left in the same task; leaving the sync
  loop early (``break``, exception, garbage collection) cancels that task and closes the source.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import signal
import sys
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Any, TypeVar, cast, overload

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pingthings.timeseries._loop_owner import LoopOwner
from pingthings.timeseries.exceptions import ClientClosedError, SyncCallFromEventLoopError

CO_RESULT_TYPE = TypeVar("CO_RESULT_TYPE")
T = TypeVar("T")

_ITERATE_BUFFER = 1
"""Items the loop may fetch ahead of the sync consumer (keeps the network busy while it works)."""


def _no_async_library_here() -> bool:
    """True if this thread runs no event loop of any library (so it may run the client's loop itself).

    Libraries other than asyncio (trio) announce themselves through sniffio, which anyio asks too; a
    process that never imported sniffio runs none of them.
    """
    if asyncio._get_running_loop() is not None:
        return False
    sniffio = sys.modules.get("sniffio")
    return sniffio is None or (
        sniffio.thread_local.name is None and sniffio.current_async_library_cvar.get() is None
    )


async def _invoke_then_stop(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``fn(*args, **kwargs)``, awaited if it returns an awaitable; then stop the loop.

    Stopping from inside the task ends the caller's ``run_forever`` in the turn that finishes the call; a
    done callback (``run_until_complete``) would take one more turn of the loop, with its own system call.
    """
    try:
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        return value
    finally:
        loop.stop()


try:  # the C functions under the signal module's, which convert every number to an enum (~5 µs a call)
    from _signal import getsignal as _get_handler
    from _signal import signal as _set_handler
except ImportError:  # pragma: no cover - an interpreter without CPython's _signal
    _get_handler, _set_handler = signal.getsignal, signal.signal


class _InterruptCancels:
    """While the main thread runs the loop, a first Ctrl-C cancels the call instead of striking anywhere.

    Python raises KeyboardInterrupt between any two bytecodes of the main thread, which, while it runs the
    loop, could be in the middle of the transport's bookkeeping. So, while the default handler is in place,
    a first SIGINT only cancels the call's task; the call then raises KeyboardInterrupt. A second SIGINT
    raises at once, as usual.

    A signal that lands just before the loop enters ``epoll_wait`` would only be seen at the next network
    event, so, as asyncio does for its own signal handlers, the loop's self-pipe is made the signal wake-up
    fd meanwhile: the signal writes a byte there and the loop wakes up to run the handler.
    """

    __slots__ = ("_loop", "_previous", "_previous_fd", "_task", "hit")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        self._loop, self._task, self.hit = loop, task, False
        self._previous = _set_handler(signal.SIGINT, self._on_sigint)
        self._previous_fd = -2
        wake = getattr(loop, "_csock", None)  # asyncio's self-pipe (selector loops)
        if wake is not None:
            self._previous_fd = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.hit or self._task.done():
            raise KeyboardInterrupt
        self.hit = True
        self._task.cancel()
        # Stop (and so wake) the loop: a task cancelled before its first step never reaches its own stop.
        self._loop.call_soon_threadsafe(self._loop.stop)

    def restore(self) -> None:
        if self._previous_fd != -2:
            signal.set_wakeup_fd(self._previous_fd)
        _set_handler(signal.SIGINT, self._previous)


def _guard_interrupts(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> _InterruptCancels | None:
    if threading.current_thread() is not threading.main_thread():
        return None  # signals reach only the main thread
    if _get_handler(signal.SIGINT) is not signal.default_int_handler:
        return None  # the application handles Ctrl-C its own way
    return _InterruptCancels(loop, task)


async def _pump(
    source: AsyncIterable[T] | AbstractAsyncContextManager[AsyncIterable[T]],
    send: MemoryObjectSendStream[T],
    eager: bool,
) -> None:
    """Forward every item of ``source`` to ``send``; runs as one task on the loop.

    ``eager`` puts items into a buffer with room without a checkpoint, so that the items a source
    makes without waiting (say, all those of one server message) stay together for the consumer.
    """
    forward = functools.partial(_send_eagerly, send) if eager else send.send
    async with send:
        if isinstance(source, AbstractAsyncContextManager) or (
            hasattr(source, "__aenter__") and not hasattr(source, "__aiter__")
        ):
            async with cast(AbstractAsyncContextManager[AsyncIterable[T]], source) as iterable:
                async for item in iterable:
                    await forward(item)
        else:
            iterator = cast(AsyncIterable[T], source).__aiter__()
            try:
                async for item in iterator:
                    await forward(item)
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()


async def _send_eagerly(send: MemoryObjectSendStream[T], item: T) -> None:
    try:
        send.send_nowait(item)
    except anyio.WouldBlock:
        await send.send(item)


async def _receive_ready(receive: MemoryObjectReceiveStream[T], limit: int) -> list[T]:
    """The next item, and up to ``limit - 1`` more that are already waiting (EndOfStream at the end)."""
    items = [await receive.receive()]
    while len(items) < limit:
        try:
            items.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return items


class _LoopCall:
    """One blocking call handed to a loop that another thread runs: two wake-ups (one each way).

    The function starts in a loop callback that runs in a copy of the calling thread's context (so its
    ``contextvars``, such as timeout scopes, travel with it) and, if it returns an awaitable, continues
    as one asyncio task; the task releases a lock as its last act, which wakes the caller.
    """

    __slots__ = (
        "_args",
        "_awaitable",
        "_done",
        "_error",
        "_fn",
        "_kwargs",
        "_owner",
        "_released",
        "_result",
        "_task",
    )

    def __init__(
        self, owner: LoopOwner, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._owner = owner
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._done = threading.Lock()
        self._done.acquire()
        self._task: asyncio.Task[Any] | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._released = False
        self._awaitable: Awaitable[Any] | None = None

    def submit(self) -> None:
        """Hand the call to the loop (RuntimeError once the loop is closing)."""
        self._owner.submit(self._start)

    def _start(self) -> None:
        try:
            value = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:
            self._error = exc
            self._done.release()
            self._owner.park_if_idle()
            return
        if not (asyncio.iscoroutine(value) or inspect.isawaitable(value)):
            self._result = value
            self._done.release()
            self._owner.park_if_idle()
            return
        self._awaitable = value
        self._task = task = self._owner.loop.create_task(self._drive(value))
        task.add_done_callback(self._owner.task_done)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        """Wake the caller of a task cancelled before its first step (its ``_drive`` never ran)."""
        if not self._released:
            if asyncio.iscoroutine(self._awaitable):
                self._awaitable.close()  # never started: no "never awaited" warning
            self._error = asyncio.CancelledError() if task.cancelled() else task.exception()
            self._released = True
            self._done.release()

    async def _drive(self, awaitable: Awaitable[Any]) -> None:
        """Await the call and wake the caller in the same step of the task that finishes it (a done
        callback would wait one more turn of the loop)."""
        try:
            self._result = await awaitable
        except (KeyboardInterrupt, SystemExit) as exc:
            self._error = exc
            raise  # asyncio stops the loop for these, as it would without the wrapper
        except BaseException as exc:  # the caller raises it, cancellation included
            self._error = exc
        finally:
            self._released = True
            self._done.release()

    def result(self) -> Any:
        """Block until the call finished; return its value or raise its error."""
        self._done.acquire()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._result

    def cancel(self) -> None:
        """Cancel the call on the loop (the caller was interrupted); harmless once it finished.

        Runs after :meth:`_start` on the loop (callbacks keep their order), so the task exists by then.
        """
        with contextlib.suppress(RuntimeError):  # the loop is closing: it cancels everything itself
            self._owner.submit(self._cancel_task)

    def _cancel_task(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """On the loop, run by a caller: cancel every unfinished task (the loop is closing).

    Also stops the caller's run, since a task cancelled before its first step never stops it itself.
    """
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.stop()


class ClientEventLoop:
    """The event loop that runs a client's coroutines, shared by every thread that uses the client.

    Normally created by :func:`pingthings.timeseries.connect`; use it directly only to run your
    own coroutines next to the client's (:meth:`run_coroutine_threadsafe`).
    """

    def __init__(self) -> None:
        self._owner = owner = LoopOwner()
        self._asyncio_loop: asyncio.AbstractEventLoop = owner.loop
        self._closed = False
        self._close_lock = threading.Lock()
        self._finalizer = weakref.finalize(
            self, owner.close, functools.partial(_cancel_all_tasks, owner.loop)
        )

    # ----------------------------------------------------------------------------------- state
    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def in_loop_thread(self) -> bool:
        """True when called from code the loop is running (where blocking calls are impossible)."""
        return self._owner.runs_here()

    def _check_blocking_allowed(self) -> None:
        if self._closed:
            raise ClientClosedError("the client's event loop is closed; connect again")
        if self._owner.forked:
            raise ClientClosedError(
                "this client was created in another process (this one was forked from it), and its "
                "connection belongs to that process; connect again here, or hand the client to the "
                "worker pickled (an unpickled client connects on its first call)"
            )
        if self._owner.runs_here():
            raise SyncCallFromEventLoopError(
                "a synchronous pingthings Client method was called from the client's own event loop "
                "(from async code running on it), where it can never finish; in async code "
                "await the AsyncClient instead (client.get_async_client(), or "
                "await pingthings.timeseries.AsyncClient.connect(...))"
            )

    def _closed_error(self) -> ClientClosedError:
        return ClientClosedError("the client's event loop was closed during the call")

    # ------------------------------------------------------------------------------------ entry points
    def run_coroutine_threadsafe(
        self, coro: Coroutine[Any, Any, CO_RESULT_TYPE]
    ) -> concurrent.futures.Future[CO_RESULT_TYPE]:
        """Schedule ``coro`` on the loop and return a future for its result.

        Cancelling the future cancels the coroutine. Safe to call from any thread, the loop's own
        included (but do not block on the future there).
        """
        future: concurrent.futures.Future[CO_RESULT_TYPE] = concurrent.futures.Future()
        try:
            if self._closed:
                raise RuntimeError("closed")
            self._owner.submit(self._start_task, coro, future, None)
        except RuntimeError:
            coro.close()
            raise ClientClosedError("the client's event loop is closed; connect again") from None
        return future

    def _start_task(
        self,
        coro: Coroutine[Any, Any, T],
        future: concurrent.futures.Future[T],
        started: list[asyncio.Task[Any]] | None,
    ) -> None:
        """On the loop: run ``coro`` as a task whose outcome lands in ``future`` (and the other way round
        for cancellation); the task is appended to ``started`` if given."""
        if future.cancelled():
            coro.close()
            self._owner.park_if_idle()
            return
        task = self._asyncio_loop.create_task(coro)
        if started is not None:
            started.append(task)
        task.add_done_callback(self._owner.task_done)
        task.add_done_callback(functools.partial(_settle, future))
        future.add_done_callback(functools.partial(_cancel_from_future, self._owner, task))

    @overload
    def call(self, async_fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T: ...

    @overload
    def call(self, async_fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def call(self, async_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``async_fn(*args, **kwargs)`` on the loop and block until it returns.

        A plain (non-async) function is run on the loop too, which is how loop-bound state is changed
        safely. The loop runs in this thread when no other thread runs it. If the waiting thread is
        interrupted (e.g. ``KeyboardInterrupt``), the call is cancelled on the loop before the interrupt
        propagates.
        """
        self._check_blocking_allowed()
        owner = self._owner
        if _no_async_library_here() and owner.try_take():
            return self._run_here(async_fn, args, kwargs)
        call = _LoopCall(owner, async_fn, args, kwargs)
        try:
            call.submit()
        except RuntimeError:
            raise ClientClosedError("the client's event loop is closed; connect again") from None
        try:
            return call.result()
        except BaseException as exc:
            call.cancel()
            if isinstance(exc, asyncio.CancelledError) and self._closed:
                raise self._closed_error() from None
            raise

    def _run_here(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the loop in this thread (its owner now) until the call is done, then give the loop up."""
        owner = self._owner
        loop = owner.loop
        guard: _InterruptCancels | None = None
        tasks_before = owner.tasks_created
        try:
            # Not loop.create_task: the owner counts the tasks others make while this call runs.
            task = asyncio.Task(_invoke_then_stop(loop, fn, args, kwargs), loop=loop)
            guard = _guard_interrupts(loop, task)
            try:
                while not task.done():  # a stop from elsewhere (close, Ctrl-C) only ends one run
                    loop.run_forever()
                return task.result()
            except asyncio.CancelledError:
                if guard is not None and guard.hit:
                    raise KeyboardInterrupt from None
                if self._closed:
                    raise self._closed_error() from None
                raise
            except BaseException:
                if not task.done():
                    task.cancel()  # this thread still owns the loop; the loop thread finishes the unwinding
                raise
            finally:
                if guard is not None:
                    guard.restore()
                    if guard.hit and task.done() and not task.cancelled():
                        raise KeyboardInterrupt
        finally:
            owner.release(tasks_before)

    def iterate(
        self,
        source: AsyncIterable[T] | AsyncIterator[T] | AbstractAsyncContextManager[AsyncIterable[T]],
        *,
        read_ahead: int = _ITERATE_BUFFER,
    ) -> Iterator[T]:
        """Pull an async iterator item by item from synchronous code.

        Parameters
        ----------
        source
            An async iterable/iterator, or an async context manager whose value is one (it is
            entered and exited on the loop, in a single task).
        read_ahead
            Items the loop may fetch before the synchronous side asks for them. Above 1, every
            trip to the loop also takes all the items already fetched (up to ``read_ahead``), so a
            source of many small items costs one thread hop per batch rather than per item. At most
            ``2 * read_ahead + 1`` items are held at once (a batch, the buffer, one being sent).

        Returns
        -------
        Iterator
            A generator; closing it early (``break`` out of a ``for`` loop, an exception, or
            garbage collection) cancels the async side and closes ``source``. Errors raised by the
            source are raised from the iterator.
        """
        self._check_blocking_allowed()
        if read_ahead < 1:
            raise ValueError(f"read_ahead must be at least 1, got {read_ahead}")
        send, receive = anyio.create_memory_object_stream[Any](read_ahead)
        eager = read_ahead > 1
        finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        started: list[asyncio.Task[Any]] = []
        # The pump starts in this thread's context, so timeout scopes in force here apply to it.
        pump = _pump(source, send, eager)
        try:
            self._owner.submit(self._start_task, pump, finished, started)
        except RuntimeError:
            pump.close()
            raise ClientClosedError("the client's event loop is closed; connect again") from None
        return self._drain(finished, started, receive, read_ahead)

    def _drain(
        self,
        finished: concurrent.futures.Future[None],
        started: list[asyncio.Task[Any]],
        receive: Any,
        read_ahead: int,
    ) -> Iterator[Any]:
        done = False
        try:
            while True:
                self._check_blocking_allowed()
                try:
                    if read_ahead == 1:
                        items = [self.call(receive.receive)]
                    else:
                        items = self.call(_receive_ready, receive, read_ahead)
                except anyio.EndOfStream:
                    break
                yield from items
            done = True
            finished.result()  # raises the source's error, if it failed
        finally:
            if not self._closed and not self.in_loop_thread():
                # A close from another thread meanwhile cancels the pump itself.
                with contextlib.suppress(ClientClosedError):
                    if not done:
                        # The consumer stopped; wait until the source is closed, whatever it did after that.
                        self.call(_stop_task, started)
                    self.call(receive.close)

    # ---------------------------------------------------------------------------------------- close
    def close(self) -> None:
        """Stop the loop and its thread, cancelling anything still running on it. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            if self._owner.runs_here():
                raise SyncCallFromEventLoopError(
                    "the client's event loop cannot be closed from its own thread"
                )
            self._closed = True
        self._finalizer()

    def __enter__(self) -> ClientEventLoop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<ClientEventLoop {state}>"


def _settle(future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    """Copy a finished task's outcome into the caller's future (unless the caller cancelled it)."""
    if task.cancelled():
        future.cancel()
    if not future.set_running_or_notify_cancel():
        return  # cancelled, by the caller or just above
    if (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())


def _cancel_from_future(
    owner: LoopOwner, task: asyncio.Task[Any], future: concurrent.futures.Future[Any]
) -> None:
    """The caller cancelled its future: cancel the task on the loop (from whatever thread this runs in)."""
    if future.cancelled() and not task.done():
        with contextlib.suppress(RuntimeError):  # the loop is closing and cancels everything itself
            owner.submit(task.cancel)


async def _stop_task(started: list[asyncio.Task[Any]]) -> None:
    """On the loop: cancel an iteration's pump and wait until it has closed its source."""
    if started and not started[0].done():
        started[0].cancel()
        await asyncio.wait(started)

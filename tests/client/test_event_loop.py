"""ClientEventLoop: the portal behind the sync client (no server needed)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest

from pingthings.timeseries.event_loop import ClientEventLoop
from pingthings.timeseries.exceptions import ClientClosedError, SyncCallFromEventLoopError


@pytest.fixture
def loop() -> Iterator[ClientEventLoop]:
    with ClientEventLoop() as event_loop:
        yield event_loop


async def add(a: int, b: int = 0) -> int:
    await anyio.sleep(0)
    return a + b


def test_a_free_loop_runs_in_the_calling_thread(loop: ClientEventLoop) -> None:
    assert loop.call(add, 2, b=3) == 5
    assert loop.call(threading.get_ident) == threading.get_ident()  # no hand-off to another thread
    assert loop.call(lambda: loop.in_loop_thread()) is True
    assert loop.in_loop_thread() is False


def test_a_busy_loop_takes_calls_on_its_own_thread(loop: ClientEventLoop) -> None:
    release = threading.Event()

    async def busy() -> None:
        while not release.is_set():
            await anyio.sleep(0.001)

    future = loop.run_coroutine_threadsafe(busy())  # the loop thread runs the loop while this lasts
    try:
        assert loop.call(threading.get_ident) != threading.get_ident()
        assert loop.call(add, 1, b=2) == 3
    finally:
        release.set()
    assert future.result(timeout=10) is None
    assert loop._owner.loop_thread_parked.wait(10)  # the loop thread lets go once no work is left
    assert loop.call(threading.get_ident) == threading.get_ident()


def test_run_coroutine_threadsafe_returns_a_future(loop: ClientEventLoop) -> None:
    future = loop.run_coroutine_threadsafe(add(40, 2))
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=10) == 42


def test_cancelling_the_future_cancels_the_coroutine(loop: ClientEventLoop) -> None:
    started, finished = threading.Event(), []

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            finished.append(True)

    future = loop.run_coroutine_threadsafe(forever())
    assert started.wait(10)
    future.cancel()
    loop.call(anyio.sleep, 0.01)  # let the loop run the cancellation
    assert loop.call(lambda: list(finished)) == [True]


def test_blocking_call_from_the_loop_thread_is_refused_clearly(loop: ClientEventLoop) -> None:
    async def nested() -> int:
        return loop.call(add, 1)

    with pytest.raises(SyncCallFromEventLoopError, match="AsyncClient"):
        loop.call(nested)


async def numbers(n: int, closed: list[int]) -> AsyncIterator[int]:
    try:
        for i in range(n):
            await anyio.sleep(0)
            yield i
    finally:
        closed.append(n)


def test_iterate_yields_everything(loop: ClientEventLoop) -> None:
    closed: list[int] = []
    assert list(loop.iterate(numbers(50, closed))) == list(range(50))
    assert closed == [50]


def test_breaking_out_closes_the_async_iterator(loop: ClientEventLoop) -> None:
    closed: list[int] = []
    seen = []
    for item in loop.iterate(numbers(1000, closed)):
        seen.append(item)
        if item == 3:
            break
    assert seen == [0, 1, 2, 3]
    assert closed == [1000]
    assert loop.call(add, 1) == 1  # the loop is still healthy


def test_iterate_enters_and_exits_a_context_manager_in_one_task(loop: ClientEventLoop) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def opened() -> AsyncIterator[AsyncIterator[int]]:
        with anyio.CancelScope():  # a scope must be left in the task that entered it
            events.append("enter")
            try:
                yield numbers(10, [])
            finally:
                events.append("exit")

    iterator = loop.iterate(opened())
    assert next(iterator) == 0
    assert next(iterator) == 1
    iterator.close()
    assert events == ["enter", "exit"]


def test_errors_from_the_source_reach_the_consumer(loop: ClientEventLoop) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise KeyError("boom")

    got = []
    with pytest.raises(KeyError, match="boom"):
        for item in loop.iterate(failing()):
            got.append(item)
    assert got == [1]


def test_many_threads_share_one_loop(loop: ClientEventLoop) -> None:
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda i: loop.call(add, i, b=i), range(500)))
    assert results == [2 * i for i in range(500)]


def test_closed_loop_refuses_calls() -> None:
    loop = ClientEventLoop()
    loop.close()
    loop.close()  # idempotent
    assert loop.closed
    with pytest.raises(ClientClosedError):
        loop.call(add, 1)
    coro = add(1)
    with pytest.raises(ClientClosedError):
        loop.run_coroutine_threadsafe(coro)


def test_close_cancels_unfinished_iterations() -> None:
    loop = ClientEventLoop()
    closed: list[int] = []
    iterator = loop.iterate(numbers(10**9, closed))
    assert next(iterator) == 0
    loop.close()  # must not hang on the pending producer
    assert closed == [10**9]


def test_read_ahead_yields_everything_in_order_within_its_bound(loop: ClientEventLoop) -> None:
    produced: list[int] = []

    async def counted(n: int) -> AsyncIterator[int]:
        for i in range(n):
            produced.append(i)
            if i % 7 == 0:
                await anyio.sleep(0)  # sometimes the consumer catches up, sometimes a batch waits
            yield i

    got = []
    for item in loop.iterate(counted(5000), read_ahead=64):
        # Ahead of the consumer: the batch it is working through, the buffer, and the item the producer
        # holds while the buffer is full.
        assert len(produced) - len(got) <= 2 * 64 + 1
        got.append(item)
    assert got == list(range(5000))


def test_read_ahead_passes_errors_on_after_the_items_before_them(loop: ClientEventLoop) -> None:
    async def failing() -> AsyncIterator[int]:
        for i in range(5):
            yield i
        raise KeyError("boom")

    got = []
    with pytest.raises(KeyError, match="boom"):
        for item in loop.iterate(failing(), read_ahead=100):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="read_ahead"):
        loop.iterate(numbers(1, []), read_ahead=0)


def test_breaking_out_of_a_read_ahead_loop_closes_the_source(loop: ClientEventLoop) -> None:
    closed: list[int] = []
    for item in loop.iterate(numbers(10**6, closed), read_ahead=32):
        if item == 40:
            break
    assert closed == [10**6]


def test_interrupting_a_blocking_call_cancels_it_on_the_loop(loop: ClientEventLoop) -> None:
    import signal

    started, cancelled = threading.Event(), threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    def interrupt_when_started() -> None:
        if started.wait(10):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C

    interrupter = threading.Thread(target=interrupt_when_started)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.call(wait_forever)
    finally:
        interrupter.join()
    assert cancelled.wait(10)
    assert loop.call(add, 2, b=3) == 5  # the loop goes on serving calls


def test_plain_functions_and_their_errors_cross_over(loop: ClientEventLoop) -> None:
    assert loop.call(threading.get_ident) == loop.call(lambda: threading.get_ident())
    with pytest.raises(ZeroDivisionError):
        loop.call(lambda: 1 / 0)


def test_a_thread_running_another_event_loop_hands_its_call_over(loop: ClientEventLoop) -> None:
    import trio

    async def from_trio() -> tuple[int, int]:
        # Blocking inside trio is the caller's business; the client's loop must not run inside trio's.
        return loop.call(threading.get_ident), threading.get_ident()

    ran_in, trio_thread = trio.run(from_trio)
    assert ran_in != trio_thread


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_is_told_to_connect_again(loop: ClientEventLoop) -> None:
    import multiprocessing

    assert loop.call(add, 1) == 1  # the parent has used the loop (it could share its sockets)
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()

    def child() -> None:
        try:
            loop.call(add, 2)
        except ClientClosedError as exc:
            child_end.send(str(exc))
        else:
            child_end.send("no error")

    process = ctx.Process(target=child)
    process.start()
    try:
        assert parent_end.poll(30)
        message = parent_end.recv()
    finally:
        process.join(30)
    assert "another process" in message and "connect again" in message
    assert loop.call(add, 3) == 3  # the parent's loop is untouched


def test_closing_while_threads_call_and_iterate_ends_every_call() -> None:
    loop = ClientEventLoop()
    stop, outcomes = threading.Event(), []

    def busy_caller(seed: int) -> None:
        try:
            while not stop.is_set():
                if seed % 2:
                    assert loop.call(add, seed, b=1) == seed + 1
                else:
                    assert list(loop.iterate(numbers(20, []), read_ahead=4)) == list(range(20))
        except ClientClosedError:
            outcomes.append("closed")
        except BaseException as exc:  # anything else is a failure of the close
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=busy_caller, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    assert loop.call(add, 1) == 1
    for _ in range(200):  # let the callers interleave with each other for a while
        loop.call(add, 0)
    loop.close()  # while the others are in the middle of calls and iterations
    stop.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a call was left waiting after close()"
    assert set(outcomes) <= {"closed"}, outcomes

"""What the sync facade's event loop costs per call, with no network: ``python bench/sync_hop.py``.

Times ``ClientEventLoop.call`` of a coroutine that returns at once, three ways:

* from the main thread, the loop free: the caller runs the loop itself (with the Ctrl-C guard);
* from another thread, the loop free: the caller runs the loop itself (no guard: signals reach only
  the main thread);
* from the main thread while a background task keeps the loop's own thread running it: the call is
  handed to that thread and its result handed back (two thread wake-ups), as every call was before the
  loop could run in the calling thread.

Prints the best and median µs per call (wall and process CPU) over ``--repeats`` runs of ``--calls``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable

from pingthings.timeseries.event_loop import ClientEventLoop


async def _noop() -> int:
    return 1


def _measure(calls: int, repeats: int, run_once: Callable[[], None]) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run_once()
        walls.append((time.perf_counter() - wall) / calls * 1e6)
        cpus.append((time.process_time() - cpu) / calls * 1e6)
    return walls, cpus


def _report(name: str, figures: tuple[list[float], list[float]]) -> None:
    walls, cpus = figures
    print(
        f"{name:<46} wall best {min(walls):6.1f} median {statistics.median(walls):6.1f} µs   "
        f"cpu best {min(cpus):6.1f} median {statistics.median(cpus):6.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    calls, repeats = args.calls, args.repeats

    with ClientEventLoop() as loop:

        def calls_in_a_row() -> None:
            for _ in range(calls):
                loop.call(_noop)

        calls_in_a_row()  # warm up
        _report("main thread, loop free (runs it itself)", _measure(calls, repeats, calls_in_a_row))

        other: dict[str, tuple[list[float], list[float]]] = {}
        worker = threading.Thread(target=lambda: other.update(r=_measure(calls, repeats, calls_in_a_row)))
        worker.start()
        worker.join()
        _report("other thread, loop free (runs it itself)", other["r"])

        stop = threading.Event()

        async def keep_busy() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.005)

        busy = loop.run_coroutine_threadsafe(keep_busy())
        try:
            hop_calls = max(1, calls // 4)

            def hops() -> None:
                for _ in range(hop_calls):
                    loop.call(_noop)

            _report("main thread, loop run by its thread (hand-off)", _measure(hop_calls, repeats, hops))
        finally:
            stop.set()
            busy.result(timeout=10)


if __name__ == "__main__":
    main()

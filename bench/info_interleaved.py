"""Client CPU per Info call, every client interleaved round by round: the figure that holds on a busy machine.

Usage: ``python bench/info_interleaved.py [--calls N] [--rounds R] [--endpoint HOST:PORT]``.

``bench/client_info.py`` runs each client's repeats one after the other and prints medians; when other
work shares the machine, a client that happens to run during a busy minute looks worse. Here every round
runs ``N`` Info calls through each client in turn (sync ``Client``, ``AsyncClient`` on asyncio and on
trio, the official ``btrdb`` client), and the script prints, for each, the lowest and the lower-quartile
client CPU µs per call over the ``R`` rounds, and the ratio of the lowest to btrdb's lowest. The lowest
CPU figure is the one least disturbed by other processes (CPU time spent waiting for a core is not
counted, but cache and frequency effects are). Without ``--endpoint`` an embedded server runs in its
own process (see ``client_info.server_process``).
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from collections.abc import Callable

import anyio
import client_info

from pingthings.timeseries import AsyncClient, Client


def _cpu_per_call(calls: int, run: Callable[[], None]) -> float:
    start = time.process_time()
    run()
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="Info calls per client per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (each client once per round)")
    parser.add_argument("--endpoint", help="use this running server instead of starting one")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import btrdb

    calls = args.calls
    with contextlib.ExitStack() as stack:
        endpoint = args.endpoint or stack.enter_context(client_info.server_process())
        conn = stack.enter_context(Client.connect(endpoint=endpoint))
        theirs = btrdb.connect(endpoint)

        async def async_round() -> float:
            async with await AsyncClient.connect(endpoint=endpoint) as client:
                for _ in range(min(calls, 100)):
                    await client.info()
                start = time.process_time()
                for _ in range(calls):
                    await client.info()
                return (time.process_time() - start) / calls * 1e6

        for _ in range(min(calls, 100)):
            conn.info()
            theirs.info()
        results: dict[str, list[float]] = {
            "sync Client": [],
            "AsyncClient asyncio": [],
            "AsyncClient trio": [],
            "btrdb": [],
        }
        for _ in range(args.rounds):
            results["sync Client"].append(_cpu_per_call(calls, lambda: [conn.info() for _ in range(calls)]))
            results["AsyncClient asyncio"].append(anyio.run(async_round, backend="asyncio"))
            results["AsyncClient trio"].append(anyio.run(async_round, backend="trio"))
            results["btrdb"].append(_cpu_per_call(calls, lambda: [theirs.info() for _ in range(calls)]))
        base = min(results["btrdb"])
        print(
            f"Info client CPU per call against {endpoint}: {calls} calls x {args.rounds} interleaved rounds"
        )
        for name, values in results.items():
            values.sort()
            print(
                f"{name:<22} lowest {values[0]:7.1f} µs  lower quartile {values[len(values) // 4]:7.1f} µs"
                f"  lowest / btrdb's lowest {values[0] / base:5.2f}"
            )


if __name__ == "__main__":
    main()

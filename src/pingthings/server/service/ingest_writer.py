"""The ingest writer: inserts journaled in groups, in the event loop or in a thread of its own.

Every insert handler hands its checked and decoded points to the writer and waits for its version.
The writer collects the inserts that arrive during one turn of the event loop and, at the end of
the turn, journals the small ones of all streams with one journal write (``Engine.insert_group``:
a group commit). Where depends on the load:

* a lone insert (the only one of its turn, the writer thread idle) is journaled right there in the
  event loop, without waiting for anything (``wait=False``). A thread hop costs more CPU than
  journaling one small insert (about 140 µs against 40 µs for a 120-point insert, measured on the
  2-core machine), so a client writing one call after another never waits for a thread. When the
  insert's call is the only one its connection's read started (``grpc.eager.first_step_alone``)
  and nothing else waits, it is journaled at once, in the call's first step: the handler then
  replies in the same turn, with no future, no task and no second turn of the loop;
* several inserts in one turn, an insert the engine leaves over (large ones, ones that need a
  merge first, a stream or the journal busy in another thread) and everything that arrives while
  the thread still has inserts go to the writer thread, in arrival order: one thread hop for the
  whole group. There the group is journaled with one write and the leftovers are committed one
  by one (``Engine.insert``). File writes, SQLite and numpy release the GIL, so the event loop
  goes on serving calls meanwhile and a busy server uses both cores; the busier it is, the larger the groups.

A group's results are handed back to the event loop in one callback, which publishes the written
batches to subscribers and wakes the handlers. Only one group is written at a time, nothing is
journaled in the loop while the thread has inserts, and callbacks run first in, first out, so
every stream's inserts are written, acknowledged and published in arrival order.

The write-activity columns of the metadata store are updated off the acknowledgement's path: by
the thread after its group, and for inserts journaled in the event loop in one batch per
:data:`ACTIVITY_DELAY` seconds, sent to the thread. A clean stop waits for them (:meth:`wait`).

The thread is started by the first group and ends after :data:`IDLE_SECONDS` without work. One
writer serves one event loop (the server's). What waits for it is bounded by the calls in flight
(each holds one request's points, itself bounded by the server's insert limit), and one group by
:data:`MAX_GROUP` inserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pingthings.server.engine import GroupInsert, MergePolicy
from pingthings.server.grpc.eager import first_step_alone

log = logging.getLogger("pingthings.server")

#: Most inserts of one loop turn journaled in the event loop itself; more go to the thread.
INLINE_GROUP = 1
#: Seconds without work after which the writer thread ends.
IDLE_SECONDS = 2.0
#: Most inserts the thread journals with one write; more waiting ones form the next group.
MAX_GROUP = 1024
#: Seconds the activity records of inserts journaled in the event loop wait to be sent together.
ACTIVITY_DELAY = 0.2

#: What a written insert reports back: its version, or the error that refused it.
Outcome = int | BaseException
#: One stream write for the activity columns: (uuid, wall-clock ns, points).
ActivityRecord = tuple[bytes, int, int]


@dataclass
class _Job:
    """One insert waiting to be written, with the future its handler awaits."""

    future: asyncio.Future[int]
    uuid: bytes
    times: np.ndarray
    values: np.ndarray
    policy: MergePolicy
    round_bits: int | None

    def grouped(self) -> GroupInsert:
        """The insert as ``Engine.insert_group`` takes it."""
        return GroupInsert(self.uuid, self.times, self.values, self.policy, self.round_bits)


@dataclass
class _Barrier:
    """Set once the thread has done everything handed to it before (see :meth:`IngestWriter.wait`)."""

    future: asyncio.Future[int]


@dataclass
class _Activity:
    """Activity records of inserts journaled in the event loop, for the thread to write."""

    records: list[ActivityRecord]


class IngestWriter:
    """Writes the inserts of one event loop, journaling concurrent small ones together.

    Parameters
    ----------
    engine
        The storage engine (``insert_group`` and ``insert``).
    meta
        The metadata store (``record_writes`` keeps the SQL view's activity columns).
    hub
        The subscription hub every written batch is published to.
    """

    def __init__(self, engine: Any, meta: Any, hub: Any) -> None:
        self._engine = engine
        self._meta = meta
        self._hub = hub
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Job] = []  # inserts of this loop turn, not yet handed on
        self._activity: list[ActivityRecord] = []  # records of inserts journaled in the loop
        self._activity_timer: asyncio.TimerHandle | None = None
        self._in_thread = 0  # inserts handed to the thread and not yet settled
        self._queue: queue.SimpleQueue[list[_Job] | _Barrier | _Activity] = queue.SimpleQueue()
        self._thread_lock = threading.Lock()
        self._thread_running = False

    # ------------------------------------------------------------------ event loop side
    async def insert(
        self, uuid: bytes, times: np.ndarray, values: np.ndarray, policy: MergePolicy, round_bits: int | None
    ) -> int:
        """Write one insert; returns its version once the points are durable."""
        loop = self._loop = asyncio.get_running_loop()
        alone = not self._pending and not self._in_thread and first_step_alone()
        if alone:
            version = self._write_alone(uuid, times, values, policy, round_bits)
            if version is not None:
                return version
        future: asyncio.Future[int] = loop.create_future()
        job = _Job(future, uuid, times, values, policy, round_bits)
        if alone:  # left over by the engine: the thread commits it
            self._hand_over([job])
            return await future
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(job)
        return await future

    def _write_alone(
        self, uuid: bytes, times: np.ndarray, values: np.ndarray, policy: MergePolicy, round_bits: int | None
    ) -> int | None:
        """Journal the lone insert of a call's first step at once (no future, no second loop turn);
        None when the engine leaves it over (see :meth:`_write_here`). Its error is raised."""
        try:
            result = self._engine.insert_one(uuid, times, values, policy, round_bits, wait=False)
        except Exception:  # a bug: fail this call, not the loop
            log.exception("journaling an insert in the event loop failed")
            raise
        if result is None:
            return None
        if isinstance(result, BaseException):
            raise result
        if times.size:
            self._hub.publish(uuid, times, values)
            self._note_activity([(uuid, time.time_ns(), int(times.size))])
        return result

    async def wait(self) -> None:
        """Until every insert handed over so far is written, activity columns included."""
        loop = self._loop = asyncio.get_running_loop()
        self._flush()  # inserts of this turn first (the scheduled flush then finds nothing)
        self._send_activity()
        future: asyncio.Future[int] = loop.create_future()
        self._to_thread(_Barrier(future))
        await future

    def _flush(self) -> None:
        """Write the inserts of the loop turn that just ended (see the module's description)."""
        jobs, self._pending = self._pending, []
        if not jobs:
            return
        if self._in_thread or len(jobs) > INLINE_GROUP:
            self._hand_over(jobs)
        else:
            self._write_here(jobs)

    def _write_here(self, jobs: list[_Job]) -> None:
        """Journal ``jobs`` in the event loop without waiting; hand what is left to the thread."""
        try:
            grouped = self._engine.insert_group([j.grouped() for j in jobs], wait=False)
        except Exception as exc:  # a bug: fail these calls, not the loop
            log.exception("journaling inserts in the event loop failed")
            _settle([(j, exc) for j in jobs])
            return
        done = [(j, r) for j, r in zip(jobs, grouped, strict=True) if r is not None]
        left = [j for j, r in zip(jobs, grouped, strict=True) if r is None]
        if done:
            self._publish(done)
            _settle(done)
            now = time.time_ns()
            self._note_activity([(j.uuid, now, j.times.size) for j, r in done if isinstance(r, int)])
        if left:
            self._hand_over(left)

    def _hand_over(self, jobs: list[_Job]) -> None:
        self._in_thread += len(jobs)
        self._to_thread(jobs)

    def _publish(self, results: Sequence[tuple[_Job, Outcome]]) -> None:
        for job, result in results:
            if isinstance(result, int) and job.times.size:
                self._hub.publish(job.uuid, job.times, job.values)

    def _note_activity(self, records: list[ActivityRecord]) -> None:
        if not records:
            return
        self._activity.extend(records)
        if self._activity_timer is None and self._loop is not None:
            self._activity_timer = self._loop.call_later(ACTIVITY_DELAY, self._send_activity)

    def _send_activity(self) -> None:
        if self._activity_timer is not None:
            self._activity_timer.cancel()
            self._activity_timer = None
        if self._activity:
            records, self._activity = self._activity, []
            self._to_thread(_Activity(records))

    def _settle_from_thread(self, results: list[tuple[_Job, Outcome]]) -> None:
        """The thread's results, in the event loop: publish, wake the handlers."""
        self._in_thread -= len(results)
        self._publish(results)
        _settle(results)

    # ------------------------------------------------------------------ the thread
    def _to_thread(self, item: list[_Job] | _Barrier | _Activity) -> None:
        with self._thread_lock:
            self._queue.put(item)
            if not self._thread_running:
                self._thread_running = True
                threading.Thread(target=self._run, name="pingthings-ingest-writer", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._thread_lock:
                    if self._queue.empty():
                        self._thread_running = False
                        return
                continue
            jobs: list[_Job] = []
            later: list[_Barrier | _Activity] = []
            item: list[_Job] | _Barrier | _Activity | None = first
            while item is not None:  # everything waiting now, within MAX_GROUP inserts
                if isinstance(item, list):
                    jobs.extend(item)
                else:
                    later.append(item)
                item = None
                if len(jobs) < MAX_GROUP:
                    with contextlib.suppress(queue.Empty):
                        item = self._queue.get_nowait()
            if jobs:
                self._write(jobs)
            for extra in later:  # after the group: a barrier also waits for the group
                if isinstance(extra, _Activity):
                    self._record_activity(extra.records)
                else:
                    self._call_in_loop(_settle, [(extra, 0)])

    def _write(self, jobs: list[_Job]) -> None:
        """Journal the group, commit what the engine leaves over, hand the results back, then
        record the activity."""
        results: list[tuple[_Job, Outcome]] = []
        try:
            grouped = self._engine.insert_group([j.grouped() for j in jobs])
            for job, result in zip(jobs, grouped, strict=True):
                if result is None:
                    try:
                        result = int(
                            self._engine.insert(
                                job.uuid, job.times, job.values, merge=job.policy, round_bits=job.round_bits
                            )
                        )
                    except Exception as exc:
                        result = exc
                results.append((job, result))
        except Exception as exc:  # a bug: fail the group's calls rather than the thread
            log.exception("the ingest writer failed")
            results = [(job, exc) for job in jobs]
        self._call_in_loop(self._settle_from_thread, results)
        now = time.time_ns()
        self._record_activity([(j.uuid, now, j.times.size) for j, r in results if isinstance(r, int)])

    def _record_activity(self, records: list[ActivityRecord]) -> None:
        """Write activity records in one metadata transaction (the data is written already: a
        failure only leaves the activity columns behind)."""
        writes = [record for record in records if record[2]]
        if not writes:
            return
        try:
            self._meta.record_writes(writes)
        except Exception:
            log.exception("updating the streams' write-activity columns failed")

    def _call_in_loop(self, callback: Callable[[Any], None], argument: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(callback, argument)


def _settle(results: Sequence[tuple[_Job | _Barrier, Outcome]]) -> None:
    """Set each future (in its loop) unless its caller went away."""
    for item, result in results:
        if item.future.done():
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)

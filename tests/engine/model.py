"""A brute-force reference model of the engine's data semantics, written independently of it.

Each version is a plain sorted list of ``(time, value)`` pairs; queries scan the whole list with numpy.
"""

from __future__ import annotations

import numpy as np

from pingthings.server.engine import MergePolicy
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT


def value_bits(v: float) -> int:
    """The IEEE bit pattern of a float, for bitwise equality."""
    return int(np.float64(v).view(np.int64))


def round_time(t: int, bits: int) -> int:
    """Nearest multiple of 2**bits, ties upwards."""
    step = 1 << bits
    return ((t + step // 2) // step) * step


class Model:
    """Every version of one stream as a list of points."""

    def __init__(self) -> None:
        self.versions: dict[int, list[tuple[int, float]]] = {FIRST_VERSION: []}
        self.latest = FIRST_VERSION

    def seal_for(self, version: int) -> None:
        """Called before every read at ``version``; versions never change here (see BufferedModel)."""

    def seal(self) -> None:
        """Called when the engine is reopened (see BufferedModel)."""

    def points(self, version: int = 0) -> tuple[np.ndarray, np.ndarray]:
        pts = self.versions[version or self.latest]
        return (
            np.array([p[0] for p in pts], dtype=np.int64),
            np.array([p[1] for p in pts], dtype=np.float64),
        )

    def insert(self, times: list[int], values: list[float], policy: MergePolicy, bits: int | None) -> int:
        if not times:
            return self.latest
        if bits:
            times = [round_time(t, bits) for t in times]
        stored = list(self.versions[self.latest])
        batch = list(zip(times, values, strict=True))
        if policy == MergePolicy.NEVER:
            result = stored + batch
        elif policy == MergePolicy.RETAIN:
            seen = {t for t, _ in stored}
            result = list(stored)
            for t, v in batch:
                if t not in seen:
                    seen.add(t)
                    result.append((t, v))
        elif policy == MergePolicy.REPLACE:
            newest: dict[int, float] = {}
            for t, v in batch:
                newest[t] = v
            result = [p for p in stored if p[0] not in newest] + list(newest.items())
        else:
            seen_pairs = {(t, value_bits(v)) for t, v in stored}
            result = list(stored)
            for t, v in batch:
                key = (t, value_bits(v))
                if key not in seen_pairs:
                    seen_pairs.add(key)
                    result.append((t, v))
        result.sort(key=lambda p: p[0])  # stable: stored first, then arrival order
        self.latest += 1
        self.versions[self.latest] = result
        return self.latest

    def delete(self, lo: int, hi: int) -> int:
        kept = [p for p in self.versions[self.latest] if not lo <= p[0] < hi]
        self.latest += 1
        self.versions[self.latest] = kept
        return self.latest

    # ------------------------------------------------------------------ queries
    def raw(self, lo: int, hi: int, version: int = 0) -> tuple[np.ndarray, np.ndarray]:
        t, v = self.points(version)
        keep = (t >= lo) & (t < hi)
        return t[keep], v[keep]

    def count(self, lo: int, hi: int, version: int = 0) -> int:
        return int(self.raw(lo, hi, version)[0].size)

    def aligned_windows(self, start: int, end: int, pw: int, version: int = 0) -> list[tuple]:
        mask = (1 << pw) - 1
        lo = max(start & ~mask, MIN_TIME)
        hi = min(end & ~mask, TIME_LIMIT)
        if lo >= hi:
            return []
        t, v = self.raw(lo, hi, version)
        out = []
        for key in sorted({int(x) >> pw for x in t.tolist()}):
            sel = v[(t >> pw) == key]
            out.append((key << pw, sel.size, sel.min(), sel.mean(), sel.max(), sel.std()))
        return out

    def windows(self, start: int, end: int, width: int, version: int = 0) -> list[tuple]:
        n = (end - start) // width if end > start else 0
        t, v = self.points(version)
        out = []
        for k in range(max(n, 0)):
            a = start + k * width
            sel = v[(t >= a) & (t < a + width)]
            if sel.size:
                out.append((a, sel.size, sel.min(), sel.mean(), sel.max(), sel.std()))
            else:
                out.append((a, 0, 0.0, 0.0, 0.0, 0.0))
        return out

    def nearest(self, time: int, backward: bool, version: int = 0) -> int | None:
        t, _ = self.points(version)
        cand = t[t < time] if backward else t[t >= time]
        if cand.size == 0:
            return None
        return int(cand.max() if backward else cand.min())

    def differing_times(self, a: int, b: int) -> list[int]:
        """Timestamps whose multiset of stored values differs between versions a and b."""

        def groups(version: int) -> dict[int, list[int]]:
            out: dict[int, list[int]] = {}
            for t, v in self.versions[version]:
                out.setdefault(t, []).append(value_bits(v))
            return {t: sorted(vs) for t, vs in out.items()}

        ga, gb = groups(a), groups(b)
        return sorted(t for t in set(ga) | set(gb) if ga.get(t) != gb.get(t))


class BufferedModel(Model):
    """The versions an engine with buffering on gives (see ``pingthings.server.engine.buffering``).

    Inserts of one policy that fit in ``max_points`` share one open version until it is sealed: by an
    insert that would overflow it or has another policy, a delete, a reopen, or a read at the open
    version or latest. Sealing changes no data, only which version the next insert opens.
    """

    def __init__(self, max_points: int) -> None:
        super().__init__()
        self.max_points = max_points
        self.open_policy: MergePolicy | None = None  # None: no open version
        self.open_points = 0

    def seal(self) -> None:
        self.open_policy = None
        self.open_points = 0

    def seal_for(self, version: int) -> None:
        """A read at ``version`` seals the open version when it asks for it or for latest."""
        if version == 0 or version >= self.latest:
            self.seal()

    @staticmethod
    def _prepared_size(times: list[int], values: list[float], policy: MergePolicy) -> int:
        """Points left after resolving duplicates inside one batch."""
        if policy == MergePolicy.NEVER:
            return len(times)
        if policy == MergePolicy.EQUAL:
            return len({(t, value_bits(v)) for t, v in zip(times, values, strict=True)})
        return len(set(times))

    def insert(self, times: list[int], values: list[float], policy: MergePolicy, bits: int | None) -> int:
        if not times:
            return self.latest
        if bits:
            times = [round_time(t, bits) for t in times]
        size = self._prepared_size(times, values, policy)
        if self.open_policy is not None and (
            policy != self.open_policy or self.open_points + size > self.max_points
        ):
            self.seal()
        if size >= self.max_points:
            return super().insert(times, values, policy, None)
        if self.open_policy is None:
            version = super().insert(times, values, policy, None)
            self.open_policy = policy
        else:  # fold the insert into the open version
            version = self.latest
            super().insert(times, values, policy, None)
            self.versions[version] = self.versions.pop(self.latest)
            self.latest = version
        self.open_points += size
        return version

    def delete(self, lo: int, hi: int) -> int:
        self.seal()
        return super().delete(lo, hi)

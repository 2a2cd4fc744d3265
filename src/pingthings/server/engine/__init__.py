"""The storage engine: one copy-on-write statistics tree per stream, persisted in SQLite.

See :class:`Engine` for the API; ``docs/architecture.md`` (section Engine) is the contract.

How it is built (one module per job):

* ``layout``: the fixed bucket geometry (root ``[-2**60, 3 * 2**60)``, 64 children per level, point widths
  56, 50, ..., 2; leaves of up to 1024 points).
* ``node``: internal nodes, 64 slots of child address, generation and count/min/max/sum/M2.
* ``leaf_codec`` and ``codec`` (in :mod:`pingthings.wire.blocks`, shared with the client): leaf
  compression (delta-of-delta times over their common step, or residuals against a fitted grid, see
  ``time_grid``; float32-aware integer deltas of value bits, byte planes, LZ4) and its vectorised
  multi-leaf decoder; leaf groups, one block holding the small leaves
  (< 256 points) of one node, or all the leaves one bulk write makes in it, so dense data (a 240 Hz
  PMU, 1 MHz samples) whose split buckets give 64 leaves of ~16 points costs one row, not 64.
* ``merge``: the four merge policies. ``tree``: copy-on-write insert and delete (and leaf grouping:
  physical only, every leaf keeps its slot, statistics and generation).
* ``query``: raw values, statistics (stopping at the first slot inside one window), nearest, count.
* ``changes``: bucket ranges changed between versions. ``stats``: StatWindows and Chan's combination.
* ``store``: SQLite (WAL) tables for blocks, superblocks and streams; ``blocks``: the decoded-block cache
  (one LRU of nodes, leaves and groups bounded in bytes, ``Engine(cache_bytes=...)``, default 256 MiB;
  blocks are immutable and addresses never reused, so it needs no invalidation) and reads of leaves
  named by (slot address, slot number). Warm raw reads cost a concatenation of cached arrays.
* ``value_transform`` (in :mod:`pingthings.wire.blocks`): decimal and scaled-integer forms of leaf values
  (ALP-like), used by ``leaf_codec``.
* ``stored_reads``: raw reads handed out as stored blocks (uncached) and columns (cached), for RawBlocks;
  ``late_admission``: the background thread that decodes the blocks such a read sent into the cache.
* ``buffering`` and ``journal``: buffered ingest (``Engine(buffering=Buffering(...))``): small inserts
  journaled in an append-only file of their own and merged into the tree as one version by size, age
  or a read.
* ``compaction``: the blocks kept versions reach, for ``Engine.compact`` (``pingthings compact``).
* ``engine``: the public class, validation in ``validate``.

Durability: a version is one SQLite transaction (blocks + superblock + stream row). WAL with
``synchronous=NORMAL`` keeps every acknowledged commit through a process crash (SIGKILL); only a power
loss can drop the last commits (never half of one).
"""

from pingthings.server.engine.buffering import Buffering, GroupInsert
from pingthings.server.engine.engine import Engine
from pingthings.server.engine.merge import MergePolicy
from pingthings.server.engine.stats import StatWindows

__all__ = ["Buffering", "Engine", "GroupInsert", "MergePolicy", "StatWindows"]

"""The step's kernels on several cores: customers split into ranges, one thread each.

Every kernel of :mod:`sim.engine` visits the customers of a range ``[lo, hi)`` and is
compiled without Python's global lock, so the ranges of one step run at the same time
on threads of this process. Results do not depend on the number of threads:

- the draws come from a counter-based generator keyed by the customer, not by the order
  of the loop (:func:`sim.rules.uniform`);
- a kernel writes only its own customers' state, except word of mouth, whose
  conversations are collected per range of speakers and then heard per range of
  listeners, each listener in the order of its speakers (:func:`sim.engine.speak`,
  :func:`sim.engine.listen`);
- sums over customers (money, measures) are taken per chunk of :data:`CHUNK` customers,
  whatever the thread that ran it, and the chunks' sums are added up in order.
"""

from __future__ import annotations

import os
import threading
from itertools import pairwise

#: Customers per chunk: ranges start at whole chunks, and sums are taken per chunk.
CHUNK = 1024

#: Threads take at least this many chunks each; a smaller market runs on fewer threads
#: (handing work to a thread costs tens of microseconds).
MIN_CHUNKS = 4

_default_threads: int | None = None
_crews: dict[int, _Crew] = {}  # by number of helpers, shared by every model of the process
_crews_lock = threading.Lock()


def available_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads a model uses when not told: :func:`set_default_threads`, else every available core."""
    return _default_threads or available_cores()


def set_default_threads(threads: int | None) -> None:
    """Threads models of this process use when not told (``None``: every available core).
    Worker processes of an experiment share the cores this way."""
    global _default_threads
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    _default_threads = threads


def chunks(n: int) -> int:
    """Chunks of a market of ``n`` people."""
    return -(-n // CHUNK)


def threads_for(n: int, threads: int | None = None) -> int:
    """Threads a market of ``n`` people runs on when ``threads`` are asked for (default:
    :func:`default_threads`): at most one per :data:`MIN_CHUNKS` chunks."""
    wanted = default_threads() if threads is None else threads
    if wanted < 1:
        raise ValueError(f"threads must be at least 1, got {wanted}")
    return max(1, min(wanted, chunks(n) // MIN_CHUNKS))


class Split:
    """Customers ``0 .. n-1`` split into contiguous ranges of whole chunks, one per thread.

    ``each(kernel, *args)`` calls ``kernel(*args, lo, hi)`` for every range, the first on
    the calling thread and the others on helper threads that every model of the process
    shares, and returns the results in the order of the ranges. With one range it is a
    plain call; while another thread is using the helpers, the ranges run one after the
    other on the calling thread (same results)."""

    def __init__(self, n: int, threads: int | None = None):
        self.n = n
        self.chunks = chunks(n)
        self.threads = threads_for(n, threads)
        bounds = [self.chunks * k // self.threads for k in range(self.threads + 1)]
        self.ranges = [(min(a * CHUNK, n), min(b * CHUNK, n)) for a, b in pairwise(bounds)]
        self._crew = _crew(self.threads - 1) if self.threads > 1 else None

    def each(self, kernel, *args) -> list:
        crew = self._crew
        if crew is None:
            return [kernel(*args, 0, self.n)]
        if not crew.lock.acquire(blocking=False):
            return [kernel(*args, lo, hi) for lo, hi in self.ranges]
        try:
            for helper, (lo, hi) in zip(crew.helpers, self.ranges[1:]):
                helper.start(kernel, (*args, lo, hi))
            try:
                first = kernel(*args, *self.ranges[0])
            finally:
                rest = [helper.finish() for helper in crew.helpers]  # every helper done before the next call
            for _, error in rest:
                if error is not None:
                    raise error
            return [first, *(result for result, _ in rest)]
        finally:
            crew.lock.release()


class _Helper:
    """A thread that runs one call at a time: :meth:`start` hands it the call, :meth:`finish`
    waits for it. Two plain locks hand the call over and back, which costs a third of what a
    ``concurrent.futures`` pool's queue and future cost (tens of microseconds a step counts
    in a small market)."""

    def __init__(self, name: str):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._call = self._outcome = None
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            kernel, args = self._call
            try:
                self._outcome = (kernel(*args), None)
            except BaseException as error:  # noqa: BLE001 (handed back to the caller by finish())
                self._outcome = (None, error)
            self._call = None
            self._done.release()

    def start(self, kernel, args: tuple) -> None:
        self._call = (kernel, args)
        self._go.release()

    def finish(self) -> tuple:
        """Wait for the call; returns its result and its error (one of them None)."""
        self._done.acquire()
        outcome, self._outcome = self._outcome, None
        return outcome


class _Crew:
    """Helper threads, and the lock that gives one :meth:`Split.each` at a time their use."""

    def __init__(self, helpers: int):
        self.lock = threading.Lock()
        self.helpers = [_Helper(f"loyalty-sim-{k + 1}") for k in range(helpers)]


def _crew(helpers: int) -> _Crew:
    with _crews_lock:
        if helpers not in _crews:
            _crews[helpers] = _Crew(helpers)
        return _crews[helpers]

"""Worker processes that die with their parent.

    pool = ProcessPoolExecutor(max_workers=N, mp_context=spawn, initializer=die_with_parent,
                               initargs=(os.getpid(),))

A process pool's workers wait on a queue fed by their parent. When the parent is killed with
SIGKILL (kill -9, the out-of-memory killer, a scheduler's hard limit) nothing tells them: they finish
the cell they hold and then wait forever, reparented to PID 1, each keeping its memory. Every worker
therefore runs `die_with_parent` first (the pool's initializer):

- on Linux, prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills the worker as soon as its parent
  dies, even while the worker is inside a C call holding the GIL. (The signal follows the parent
  *thread* that started the worker; a pool's workers are started by the thread that submits to it,
  which lives as long as the pool.)
- everywhere, a daemon thread that polls the parent's PID and leaves with os._exit when the worker
  has been reparented: it covers systems without prctl and a parent that died before prctl ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from studio.errors import StudioError

POLL_S = 0.25  # how often the watchdog looks; a worker outlives its parent by at most this


def _parent_death_signal() -> None:
    """Ask the kernel for SIGKILL when the parent dies (Linux only; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl (musl without it, sandboxes): the watchdog suffices
        pass


def _watch(parent_pid: int, poll_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # no cleanup: the parent that would collect our result is gone
        time.sleep(poll_s)


def die_with_parent(parent_pid: int | None = None, poll_s: float = POLL_S) -> None:
    """Make this process end when `parent_pid` (default: the current parent) stops being its parent.

    Call it first thing in a worker (a pool's `initializer`), passing the parent's os.getpid() so that
    a parent that died before this call is noticed too.
    """
    parent_pid = os.getppid() if parent_pid is None else int(parent_pid)
    _parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before prctl was in place
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid, poll_s), name="die-with-parent", daemon=True).start()


class WorkerDied(StudioError, RuntimeError):
    """A worker process of a spawn_pool ended abruptly (killed, or out of memory)."""


@contextlib.contextmanager
def spawn_pool(workers: int, initializer=None, initargs: tuple = ()):
    """`with spawn_pool(n) as pool:` a ProcessPoolExecutor of `workers` spawned processes that die with
    this one (`die_with_parent`), each then running `initializer(*initargs)`: e.g. to receive, once per
    worker, data every task reads.

    Spawned, not forked: a fork of a process whose torch has started its thread pools can deadlock, and a
    spawned worker imports studio afresh, so it inherits the numerics mode through the environment.
    A worker that dies (kill -9, the out-of-memory killer) ends the block with one WorkerDied line
    instead of concurrent.futures' BrokenProcessPool traceback; what finished before is kept by the
    caller's caches, so a rerun resumes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_start, initargs=(os.getpid(), initializer, initargs)
        ) as pool:
            yield pool
    except BrokenProcessPool as e:
        raise WorkerDied(
            f"a worker process died before its task finished ({e}); it was killed or ran out of memory: "
            f"rerun to resume (finished work is cached), or use fewer workers (now {workers})"
        ) from None


def _start(parent_pid: int, initializer, initargs: tuple) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)

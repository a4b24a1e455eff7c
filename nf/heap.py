"""The daemon's C heap (glibc malloc), kept within the RSS budget.

Two things would otherwise keep memory resident for the daemon's life:

* glibc raises its mmap threshold to the size of the largest block freed
  (up to 32 MiB).  After the first scrypt (16 MiB, see
  nf.northbound.auth), later ones come from the heap.  A login's scrypt
  runs in paramiko's thread, whose arena keeps the freed 16 MiB as its top
  chunk; malloc_trim does not return it (measured: +16 MiB RSS after the
  first NETCONF login, for good).  ``bound_large_blocks`` fixes the
  threshold, so such blocks are always mmap'd and unmapped when freed.
* Booting frees a lot (schema compilation, validation) that glibc keeps;
  ``release`` (malloc_trim) hands it back once.

Both are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from typing import Any

LARGE_BLOCK = 1 << 20
"""Blocks at least this large are mmap'd: far above what the relay
allocates per read, far below scrypt's 16 MiB."""
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    glibc = hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")
    return libc if glibc else None  # musl, macOS: nothing to do


_LIBC = _libc()


def bound_large_blocks() -> None:
    """Fix the mmap threshold at LARGE_BLOCK (call before any scrypt)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)


def release() -> None:
    """Give freed heap memory back to the OS (malloc_trim)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic collection while a big batch of lasting objects is made.
    Creating thousands of channels (a data plane's prepare or apply, a
    control plane's validation and model of them) makes objects that all
    survive, and each full collection the allocations set off walks
    everything made so far, freeing nothing: a data-plane boot of 10 000
    channels spent 3 of its 4 s of apply in 12 such passes.  Cyclic
    garbage made meanwhile waits for the next automatic pass.  Overlapping
    pauses (of two threads) do not nest: the collector is enabled again
    when the one that found it enabled ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

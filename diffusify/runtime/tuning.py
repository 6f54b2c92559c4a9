"""Process-wide tuning, for the program that owns the process: the command line calls it, and so may a host
such as a server or a benchmark. The library never calls it by itself (a run changes no process setting)."""

from __future__ import annotations

import sys


def tune_process() -> None:
    """Keep freed frame buffers in the process heap (glibc) instead of returning them to the kernel.

    Every frame allocates tens of megabytes, and so do a model's feature maps; glibc serves such blocks with mmap
    by default, so each one pays for fresh page faults on every page it touches (measured: most of the system
    time of a 1080p run, and a third of the bundled upscaler's time on 2 CPU cores). Queues bound the number of
    live frames, so the heap stays bounded too. Safe to call more than once."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum
        libc.mallopt(m_trim_threshold, 1 << 30)
        libc.mallopt(m_top_pad, 64 << 20)
    except (OSError, AttributeError):
        pass


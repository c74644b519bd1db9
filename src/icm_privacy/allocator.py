"""Keep freed tensor memory in the process instead of handing it back to the kernel after every step.

glibc's malloc serves blocks above its mmap threshold (32 MB at most) with fresh mmaps and unmaps them on
free, so a training step or a coded image whose activations are that large (8 crops x 64 channels x 128^2
floats: 33.5 MB) pays page faults for them again every time. Measured on a 2-core AVX2 CPU beside other
work (2026-12-07, one thread): a training step of the icm network (batch 8 x 256^2) took 1.41 s of system
time and 3.9 s wall, with mmap off and trimming deferred 0.04 s and 2.1 s; coding and decoding a 1.1 Mpx
image with icm-mse 0.94 s of system time and 2.65 s wall, then 0.00 s and 1.79 s. The training CLI and
every workflow job (stages.logged) call keep_freed_memory; without glibc nothing changes.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and keep freed ones for reuse; True where glibc took both settings."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1

"""Atomic file writing: a crash never leaves a partial file under an output's name."""
from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to `final_path` only if the block succeeds.

    The temporary name keeps the final suffix (writers such as Pillow pick the format from it).
    Temporaries of the same file left by a killed writer (SIGKILL, power loss) are removed first:
    the re-run that writes the file again cleans up after the one that was interrupted.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final_path.stem}.partial-"
    for stale in final_path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(final_path.suffix)}"):
        stale.unlink(missing_ok=True)
    temporary = final_path.with_name(f"{prefix}{os.getpid()}{final_path.suffix}")
    try:
        yield temporary
        os.replace(temporary, final_path)
    finally:
        temporary.unlink(missing_ok=True)

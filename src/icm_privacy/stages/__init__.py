"""What each workflow rule does, given its input and output paths: one module per rule file.

`workflow/rules/<stage>.smk` -> `icm_privacy/stages/<stage>.py`, and a rule's function has the rule's
name, as does its script (`workflow/scripts/<rule>.py`, a few lines that call the function). The one
exception in naming is coding: every `code_<label>` rule (one per codec entry) runs `codecs.code`.

Every step takes a shard of images (the prepared originals, or one codec point's decoded images: a
folder of PNGs) and builds its codec or model once. Every output is written atomically, so an
interrupted job never leaves a file that looks complete.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path

from ..allocator import keep_freed_memory


@contextlib.contextmanager
def logged(log_path: str):
    """Send this step's messages and any error (with its traceback) to the rule's log file; large blocks of
    memory freed by one image are kept for the next (allocator.py)."""
    keep_freed_memory()
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
        try:
            yield
        except Exception as error:
            traceback.print_exc(file=log_file)
            print(f"error: {error}", file=sys.stderr)  # the one-line reason, shown by Snakemake too
            raise


def shard_pngs(folder: str | Path) -> list[Path]:
    """The images of one version of a shard, by name (atomic writes' hidden partial files excluded)."""
    return sorted(path for path in Path(folder).glob("*.png") if not path.name.startswith("."))

"""The report's files, written whole or not at all: a report that failed half way (the database
went away, the disk filled) leaves no half file behind, and an older report under the same name
stays as it was."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from orchestrator.domain.report import CSV_COLUMNS, CallLine


@contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """A file that appears at `target` only once all of it is written and synced: written as a
    temp file beside it (the same file system, so the rename is atomic), then renamed over it;
    the temp file is removed if anything fails on the way."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
            out.flush()
            os.fchmod(out.fileno(), 0o644)  # mkstemp's 0600 would hide a report from its readers
            os.fsync(out.fileno())
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def write_calls_csv(lines: Iterable[CallLine], target: Path) -> int:
    """A header, then a row per call as `lines` yields them (never all held at once); the number
    of calls written."""
    written = 0
    with atomic_file(target) as out:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="")
        rows = csv.writer(text)
        rows.writerow(CSV_COLUMNS)
        for line in lines:
            rows.writerow(line.cells())
            written += 1
        text.flush()
        text.detach()  # atomic_file closes the file itself
    return written

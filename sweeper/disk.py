"""Will the store fit? A check made before anything runs; it writes nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from sweeper.errors import StoreError


def check_writable(path: Path, nbytes: int) -> None:
    """Fail before any compute if the store cannot be written or cannot fit.

    Checks the nearest directory that exists on the way to ``path``: the store's
    parents are only made when the store is created.
    """
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StoreError(f"{path}: {existing} is a file, not a directory.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise StoreError(f"{path}: cannot write in {existing} ({exc.strerror}).") from None
    free = shutil.disk_usage(existing).free
    if nbytes > free:
        raise StoreError(
            f"{path}: the results may need up to {format_bytes(nbytes)} "
            f"but only {format_bytes(free)} is free; store fewer outputs (`run.outputs`), "
            f"fewer saved times, or write elsewhere (`--store`)."
        )


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"

"""What `--overwrite` may remove: a sweeper store, and nothing else.

A path is removable only if it is a store this package wrote (its root
``zarr.json`` is a zarr v3 group whose attrs carry ``store_format`` and
``swept_dims``) holding nothing but zarr nodes and the store's own files, and
only if it is not, and does not contain, the working directory, the grid file,
the home directory or ``/``. Everything else is refused with one line before
anything is deleted.

Also cleans up what a killed driver leaves beside a store: ``.NAME.zarr.creating-PID``
(a template being laid out) and ``.NAME.zarr.removing-PID`` (a store being replaced).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import fsspec

from sweeper.errors import StoreError
from sweeper.lease import LEASE, STALE, read_holder

STAGING = re.compile(r"^\.(?P<name>.+)\.(?:creating|removing)-(?P<pid>\d+)$")


def check_removable(where: str | os.PathLike, keep: tuple[str | os.PathLike, ...] = ()) -> None:
    """Raise :class:`StoreError` unless ``where`` is a sweeper store that may be deleted.

    ``keep`` are paths (e.g. the grid file) that must survive the removal.
    """
    where = str(where)
    if "://" in where:
        fs, root = fsspec.core.url_to_fs(where)
        try:
            meta = json.loads(fs.cat_file(f"{root.rstrip('/')}/zarr.json"))
        except (FileNotFoundError, ValueError):
            meta = None
        _check_metadata(where, meta)
        return
    path = Path(where).expanduser()
    target = path.resolve()
    protected = [(Path.cwd().resolve(), "the working directory")]
    protected += [(Path(k).expanduser().resolve(), f"the grid file {k}") for k in keep]
    if target == Path(target.anchor):
        raise StoreError(f"{where}: refusing to remove the filesystem root with `--overwrite`.")
    if target == Path.home().resolve():
        raise StoreError(f"{where}: refusing to remove the home directory with `--overwrite`.")
    for place, what in protected:
        if place == target or target in place.parents:
            raise StoreError(
                f"{where}: refusing to remove it with `--overwrite`: it "
                f"{'is' if place == target else 'contains'} {what}."
            )
    if path.is_symlink() or not path.is_dir():
        raise StoreError(
            f"{where}: not a sweeper store ({'a link' if path.is_symlink() else 'not a directory'}); "
            f"`--overwrite` only replaces a store sweeper made. Remove it yourself or choose another "
            f"`--store`."
        )
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        meta = None
    _check_metadata(where, meta)
    stranger = next((p.name for p in sorted(path.iterdir()) if not _ours(p)), None)
    if stranger is not None:
        raise StoreError(
            f"{where}: holds {stranger!r}, which sweeper did not write; `--overwrite` would delete it. "
            f"Move it out of the store first."
        )


def _check_metadata(where: str, meta: object) -> None:
    attrs = meta.get("attributes", {}) if isinstance(meta, dict) and meta.get("node_type") == "group" else {}
    if not isinstance(attrs, dict) or "store_format" not in attrs or "swept_dims" not in attrs:
        raise StoreError(
            f"{where}: not a sweeper store (no sweeper metadata in its `zarr.json`); `--overwrite` only "
            f"replaces a store sweeper made. Remove it yourself or choose another `--store`."
        )


def _ours(entry: Path) -> bool:
    """An entry at a store's root that sweeper (or zarr for it) wrote."""
    if entry.name == "zarr.json" or entry.name == LEASE or entry.name.startswith(f".{LEASE}."):
        return True
    return entry.is_dir() and not entry.is_symlink() and (entry / "zarr.json").is_file()


def clean_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove the ``.NAME.creating-PID`` / ``.NAME.removing-PID`` folders of dead drivers beside ``path``.

    A folder is left alone while its driver may be alive: the lease inside it (a template
    gets one before it is moved into place) says so; without one, only a folder untouched
    for longer than a stale heartbeat goes.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        match = STAGING.match(entry.name)
        if not match or match["name"] != path.name or entry.is_symlink() or not entry.is_dir():
            continue
        holder = read_holder(entry)
        if holder is not None:
            gone = holder.gone() is not None
        else:
            gone = time.time() - entry.stat().st_mtime > STALE
        if gone:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed

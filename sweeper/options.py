"""The ``[run]`` table of a grid file: where the store goes and how the sweep runs.

None of these options changes a result, except ``outputs`` (which variables are
stored); CLI flags may override the others.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from sweeper.axes import Fail, is_int, is_number, key_path, show

MAX_WORKERS = 10_000  # more is a typo: each worker is a process (a local Ray would fork them all)
# A store is made beside its target as `.NAME.creating-PID` and renamed: NAME may use what is left
# of the 255 bytes a file name may have on common file systems.
MAX_STORE_NAME_BYTES = 255 - len(".") - len(".creating-") - 7
MAX_PATH_BYTES = 4095
RUN_KEYS = ("store", "block_size", "workers", "outputs", "max_attempts", "time_limit")
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class RunOptions:
    store: str
    block_size: int
    workers: int | None
    outputs: tuple[str, ...]
    max_attempts: int
    time_limit: float | None = None  # seconds a point may take (Ray workers only)


def parse_options(
    run: Mapping[str, Any], name: str, kernel: str, declared: Sequence[str], n_points: int, fail: Fail
) -> RunOptions:
    """Validate the ``[run]`` table of grid ``name``; ``declared`` are the kernel's outputs."""
    unknown = [k for k in run if k not in RUN_KEYS]
    if unknown:
        raise fail(f"run.{key_path(unknown[0])}", f"unknown key. Known keys: {', '.join(RUN_KEYS)}.")
    store = run.get("store", f"results/{name}.zarr")
    problem = store_problem(store)
    if problem:
        raise fail("run.store", problem)
    block_size = run.get("block_size", default_block_size(n_points))
    if not is_int(block_size) or block_size < 1:
        raise fail("run.block_size", f"expected a positive integer, got {show(block_size)}.")
    workers = run.get("workers")
    if workers is not None and (not is_int(workers) or workers < 0):
        raise fail("run.workers", f"expected a non-negative integer (0 = in-process), got {show(workers)}.")
    if workers is not None and workers > MAX_WORKERS:
        raise fail(
            "run.workers",
            f"{show(workers)} is more than the {MAX_WORKERS} workers a sweep may start; "
            f"leave it out to start one per CPU.",
        )
    max_attempts = run.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if not is_int(max_attempts) or max_attempts < 1:
        raise fail("run.max_attempts", f"expected a positive integer, got {show(max_attempts)}.")
    time_limit = run.get("time_limit")
    if time_limit is not None and (not is_number(time_limit) or not 0 < time_limit < math.inf):
        raise fail("run.time_limit", f"expected a positive number of seconds, got {show(time_limit)}.")
    outputs = run.get("outputs", list(declared))
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise fail("run.outputs", f"expected a non-empty list of output names, got {show(outputs)}.")
    for i, o in enumerate(outputs):
        if o in outputs[:i]:
            raise fail("run.outputs", f"{show(o)} is listed twice; list each output once.")
        if o not in declared:
            raise fail(
                "run.outputs",
                f"unknown output {show(o)}. Outputs of '{kernel}' here: {', '.join(declared)}.",
            )
    return RunOptions(
        store,
        int(block_size),
        workers,
        tuple(outputs),
        int(max_attempts),
        None if time_limit is None else float(time_limit),
    )


def default_block_size(n_points: int) -> int:
    """About 64 blocks per grid, at most 256 points a block."""
    return max(1, min(256, math.ceil(n_points / 64)))


def refined_block_size(n_points: int) -> int:
    """A refined grid's default: about 16 blocks, at most 1024 points a block (see the parser)."""
    return max(1, min(1024, math.ceil(n_points / 16)))


def store_problem(store: object) -> str | None:
    """What is wrong with ``store`` as a store path or URL, or None; checked before anything is written."""
    if not isinstance(store, str) or not store:
        return f"expected a path, got {show(store)}."
    bad = next((c for c in store if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        return f"{show(store)} has a control character (U+{ord(bad):04X}); choose a plain path."
    if "://" in store:
        return _url_problem(store)
    if len(store.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"the path is {len(store.encode())} bytes long, more than the {MAX_PATH_BYTES} a path may be."
    for part in PurePath(store).parts:
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > MAX_STORE_NAME_BYTES:
            return (
                f"the name {show(part)} is {size} bytes long, more than the {MAX_STORE_NAME_BYTES} "
                f"a store's file name may be; choose a shorter one."
            )
    return None


def _url_problem(url: str) -> str | None:
    import fsspec  # only for a URL

    protocol = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        return (
            f"unknown protocol {show(protocol)} in {show(url)}; "
            f"use a local path or an fsspec URL (s3://, gs://, ...)."
        )
    except ImportError as exc:
        return f"the {show(protocol)} protocol needs a package that is not installed ({exc})."
    return None

"""The zarr store of one grid: template, region writes, status, resume.

The full-size template (coords, attrs, outputs filled with NaN, ``status`` 0 =
pending, 1 = ok, 2 = failed, ``wall_time``, ``finished_at``, ``message``) is
written once; empty chunks cost nothing on disk, so creating it is instant at
any grid size. Results are then written one block (= one chunk) at a time by a
single writer, outputs first and ``status`` last: a point reads as done only
once its outputs are on disk, so a crash at any moment loses no finished point
and leaves a valid store that `xarray.open_zarr` reads.

Only this module knows zarr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.core.sync import sync  # zarr's own bridge to its event loop

from kernels.base import Output
from sweeper.blocks import FAILED, OK, PENDING, BlockResult, BlockTask
from sweeper.errors import StoreError
from sweeper.layout import Layout
from sweeper.spec import GridSpec, declared_outputs

FORMAT_VERSION = 1
BOOKKEEPING = ("status", "wall_time", "finished_at", "message")
PACKAGES = ("sweeper", "numpy", "scipy", "numba", "xarray", "zarr", "ray")


@dataclass(frozen=True)
class Template:
    """Everything the store needs to lay itself out, computed from the spec alone."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    grid_coords: dict[str, np.ndarray]
    case_coords: dict[str, np.ndarray]
    kernel_coords: dict[str, np.ndarray]
    kernel_coord_attrs: dict[str, dict[str, str]]
    outputs: dict[str, Output]
    attrs: dict[str, Any]

    def output_shape(self, name: str) -> tuple[int, ...]:
        return tuple(len(self.kernel_coords[d]) for d in self.outputs[name].dims)

    def nbytes(self) -> int:
        per_point = sum(8 * math.prod(self.output_shape(n)) for n in self.outputs) + 1 + 8 + 8 + 16
        return per_point * math.prod(self.shape)


def make_template(spec: GridSpec) -> Template:
    kernel_class = spec.kernel_class()
    kernel = kernel_class()
    params = spec.base_params()
    outputs = declared_outputs(spec, kernel, params)
    used = {d for o in outputs.values() for d in o.dims}
    kernel_coords = {k: np.asarray(v) for k, v in kernel.coords(params).items() if k in used}
    clash = set(kernel_coords) & set(spec.dims)
    if clash:
        raise StoreError(f"kernel dims {sorted(clash)} clash with the grid's dims {spec.dims}.")
    attrs = {
        "title": spec.description or spec.name,
        "grid_name": spec.name,
        "grid_file": spec.source,
        "grid_text": spec.text,
        "grid_fingerprint": spec.fingerprint(),
        "grid_seed": spec.grid_seed,
        "kernel": spec.kernel,
        "kernel_version": kernel_class.version,
        "fixed_params": json.dumps(_jsonable(_all_fixed(spec, params)), sort_keys=True),
        "swept_dims": list(spec.dims),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status_meanings": "0 pending, 1 ok, 2 failed",
        "store_format": FORMAT_VERSION,
        **{f"kernel_{k}": _jsonable(v) for k, v in kernel.attrs(params).items()},
    }
    return Template(
        dims=spec.dims,
        shape=spec.shape,
        chunks=spec.layout.chunks,
        grid_coords=spec.coords(),
        case_coords=spec.case_coords(),
        kernel_coords=kernel_coords,
        kernel_coord_attrs=kernel.coord_attrs(params),
        outputs=outputs,
        attrs=attrs,
    )


def is_url(where: str | Path) -> bool:
    """An fsspec URL (``s3://bucket/x.zarr``, ``gs://...``, ``memory://...``), not a local path."""
    return "://" in str(where)


def store_exists(where: str | Path) -> bool:
    if is_url(where):
        fs, root = fsspec.core.url_to_fs(str(where))
        return fs.exists(root)
    return Path(where).exists()


def _remove(where: str | Path) -> None:
    if is_url(where):
        fs, root = fsspec.core.url_to_fs(str(where))
        fs.rm(root, recursive=True)
    else:
        shutil.rmtree(where)


class Store:
    """A grid's results on disk, or under an fsspec URL; one writer per store."""

    def __init__(self, path: str | Path, group: zarr.Group):
        self.path = path if is_url(path) else Path(path)
        self.group = group
        self._arrays: dict[str, zarr.AsyncArray] = {}  # handles cached for the hot write path
        self.dims = tuple(group.attrs["swept_dims"])
        status = group["status"]
        self.layout = Layout(tuple(status.shape), tuple(status.chunks))
        self.outputs = [
            k
            for k in group.array_keys()
            if k not in BOOKKEEPING and k not in self.dims and _is_output(group[k], self.dims)
        ]

    # -- creation and opening ---------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, template: Template, overwrite: bool = False) -> Store:
        if store_exists(path) and not overwrite:
            raise StoreError(f"{path} exists; use `--overwrite` to replace it.")
        if is_url(path):  # an object store has no atomic rename: write in place
            if store_exists(path):
                _remove(path)
            _lay_out(str(path), template)
            return cls.open(path)
        path = Path(path)
        check_writable(path, template.nbytes())
        path.parent.mkdir(parents=True, exist_ok=True)
        # Lay the template out beside the target and rename it into place: a kill at any
        # moment leaves either no store or a whole one, never a half-made one.
        staging = path.with_name(f".{path.name}.creating-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _lay_out(str(staging), template)
            if path.exists():
                shutil.rmtree(path)
            os.replace(staging, path)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(f"{path}: cannot create the store ({exc.strerror or exc}).") from None
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r+") -> Store:
        if not store_exists(path):
            raise StoreError(f"{path}: no such store.")
        try:
            with _quiet():
                group = zarr.open_group(str(path), mode=mode, zarr_format=3)
            group.attrs["swept_dims"]
            group["status"]
        except Exception as exc:  # noqa: BLE001 - any failure here means "not our store"
            raise StoreError(f"{path}: not a sweeper store ({type(exc).__name__}: {exc}).") from None
        return cls(path, group)

    @classmethod
    def preflight(cls, path: str | Path, spec: GridSpec, template: Template, overwrite: bool = False) -> None:
        """Every check :meth:`create` or :meth:`open_for` would make, writing nothing."""
        if store_exists(path) and not overwrite:
            cls.open(path, mode="r")._check_resumable(spec)
        elif not is_url(path):  # an object store has no free space to check
            check_writable(Path(path), template.nbytes())

    @classmethod
    def open_for(cls, path: str | Path, spec: GridSpec, template: Template) -> Store:
        """Open an existing store for ``spec``, growing its seeds if ``spec`` adds some."""
        store = cls.open(path)
        new_seeds = store._check_resumable(spec)
        if new_seeds is not None:
            store.grow_seeds(new_seeds, template)
        return store

    def _check_resumable(self, spec: GridSpec) -> tuple[int, ...] | None:
        """Refuse a store of another grid; returns the seeds to grow to, if ``spec`` adds some."""
        path, store = self.path, self
        if store.attrs.get("grid_fingerprint") != spec.fingerprint():
            raise StoreError(
                f"{path} holds results of another grid ({store.attrs.get('grid_file')}, "
                f"kernel {store.attrs.get('kernel')!r}); use `--overwrite` to replace it, "
                f"or `--store` to write elsewhere."
            )
        old_seeds = tuple(int(s) for s in store.group["seed"][:])
        new_seeds = tuple(spec.seeds)
        if new_seeds == old_seeds:
            return None
        if new_seeds[: len(old_seeds)] != old_seeds:
            raise StoreError(
                f"{path} has seeds {list(old_seeds)}; a resubmission may only append seeds "
                f"(got {list(new_seeds)}). Use `--store` for another store or `--overwrite`."
            )
        return new_seeds

    @property
    def attrs(self) -> Mapping[str, Any]:
        return self.group.attrs

    def grow_seeds(self, seeds: tuple[int, ...], template: Template) -> None:
        """Append seeds along the last dim; existing results stay where they are."""
        n = len(seeds)
        with _quiet():
            for key in self.group.array_keys():
                arr = self.group[key]
                dims = tuple(arr.metadata.dimension_names or ())
                if "seed" in dims:
                    axis = dims.index("seed")
                    shape = list(arr.shape)
                    shape[axis] = n
                    arr.resize(tuple(shape))
            zarr.consolidate_metadata(str(self.path))
            # The group caches the consolidated metadata it was opened with: reopen it.
            self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            self._arrays = {}
        self.group["seed"][:] = np.asarray(seeds, dtype=np.int64)
        status = self.group["status"]
        self.layout = Layout(tuple(status.shape), tuple(status.chunks))

    # -- reading -------------------------------------------------------------------------
    def status(self) -> np.ndarray:
        return self.group["status"][...]

    def counts(self) -> dict[str, int]:
        status = self.status()
        return {
            "pending": int((status == PENDING).sum()),
            "ok": int((status == OK).sum()),
            "failed": int((status == FAILED).sum()),
        }

    def todo(self, spec: GridSpec, retry_failed: bool = False) -> list[BlockTask]:
        """The blocks holding points still to compute, with only those points."""
        status = self.status()
        wanted = (status == PENDING) | ((status == FAILED) if retry_failed else False)
        tasks = []
        for block_id in self.layout.block_ids():
            region = self.layout.region(block_id)
            mask = wanted[region].ravel()
            if not mask.any():
                continue
            indices = self.layout.block_points(block_id)[mask]
            points = [spec.point(tuple(i)) for i in indices]
            tasks.append(BlockTask(block_id, indices, [p[0] for p in points], [p[1] for p in points]))
        return tasks

    # -- writing -------------------------------------------------------------------------
    def write(self, result: BlockResult) -> None:
        """Write one block's points: outputs and records together, then status.

        The chunk writes of one block go out concurrently in one trip to zarr's
        event loop (half the driver's cost of one write after the other).
        """
        region = self.layout.region(result.block_id)
        n = len(result.indices)
        values = {name: result.outputs.get(name) for name in self.outputs}
        values["wall_time"] = result.wall_time
        values["finished_at"] = np.full(n, result.finished_at)
        values["message"] = np.asarray(result.messages, dtype=object)
        blocks = {name: self._block(name, v, result) for name, v in values.items()}
        status = self._block("status", result.status, result)

        async def write_all() -> None:
            await asyncio.gather(*(self._array(k).setitem(region, b) for k, b in blocks.items()))
            await self._array("status").setitem(region, status)  # last: the point now reads as done

        sync(write_all())

    def _array(self, name: str) -> zarr.AsyncArray:
        if name not in self._arrays:
            self._arrays[name] = self.group[name]._async_array
        return self._arrays[name]

    def _block(self, name: str, values: np.ndarray | None, result: BlockResult) -> np.ndarray:
        """The chunk's new content: ``values`` of the block's points, in chunk shape."""
        region = self.layout.region(result.block_id)
        shape = self.layout.block_shape(result.block_id)
        extra = tuple(self._array(name).shape[len(shape) :])
        if values is None:
            values = np.full((len(result.indices), *extra), np.nan)
        if len(result.indices) == math.prod(shape):
            return np.asarray(values).reshape(shape + extra)
        # Some points of this chunk are done already: read, patch, write back.
        block = self.group[name][region]
        block[tuple((result.indices - [r.start for r in region]).T)] = values
        return block


# -- template writing ------------------------------------------------------------------------


def _lay_out(where: str, template: Template) -> None:
    with _quiet():
        root = zarr.open_group(where, mode="w", zarr_format=3)
        _write_template(root, template)
        zarr.consolidate_metadata(where)


def _write_template(root: zarr.Group, t: Template) -> None:
    root.attrs.update(t.attrs)
    grid_dims = t.dims
    for dim, values in t.grid_coords.items():
        arr = _array(root, dim, values.shape, (len(values),), values.dtype, (dim,), _fill(values.dtype))
        arr[:] = values
        arr.attrs.update(_coord_attrs(dim))
    for name, values in t.case_coords.items():
        arr = _array(root, name, values.shape, values.shape, values.dtype, ("case",), _fill(values.dtype))
        arr[:] = values
        arr.attrs.update({"long_name": f"{name} of each case"})
    for dim, values in t.kernel_coords.items():
        arr = _array(root, dim, values.shape, values.shape, values.dtype, (dim,), _fill(values.dtype))
        arr[:] = values
        arr.attrs.update(t.kernel_coord_attrs.get(dim, {}))
    coordinates = " ".join(t.case_coords)
    for name, out in t.outputs.items():
        extra = t.output_shape(name)
        arr = _array(root, name, t.shape + extra, t.chunks + extra, np.float64, grid_dims + out.dims, np.nan)
        arr.attrs.update(out.attrs())
        if coordinates:
            arr.attrs["coordinates"] = coordinates
    book = {
        "status": (
            np.int8,
            PENDING,
            {
                "long_name": "status of the point",
                "flag_values": [0, 1, 2],
                "flag_meanings": "pending ok failed",
            },
        ),
        "wall_time": (np.float64, np.nan, {"long_name": "wall time of the point", "units": "s"}),
        "finished_at": (
            np.float64,
            np.nan,
            {"long_name": "time the point finished", "units": "seconds since 1970-01-01"},
        ),
        "message": (str, "", {"long_name": "failure message of the point"}),
    }
    for name, (dtype, fill, attrs) in book.items():
        arr = _array(root, name, t.shape, t.chunks, dtype, grid_dims, fill)
        arr.attrs.update(attrs)
        if coordinates:
            arr.attrs["coordinates"] = coordinates


def _array(root, name, shape, chunks, dtype, dims, fill):
    if np.dtype(dtype).kind in "UO":
        dtype = str  # variable-length UTF-8: the string type zarr v3 specifies
    return root.create_array(
        name,
        shape=tuple(shape),
        chunks=tuple(max(1, c) for c in chunks),
        dtype=dtype,
        fill_value=fill,
        dimension_names=tuple(dims),
    )


def _fill(dtype: np.dtype) -> Any:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iub":
        return 0
    return ""


def _coord_attrs(dim: str) -> dict[str, str]:
    if dim == "seed":
        return {"long_name": "seed of the point (with grid_seed, its random stream)"}
    if dim == "case":
        return {"long_name": "index of the explicit case"}
    return {"long_name": dim}


def _is_output(arr: zarr.Array, grid_dims: tuple[str, ...]) -> bool:
    dims = tuple(arr.metadata.dimension_names or ())
    return dims[: len(grid_dims)] == grid_dims


# -- provenance and disk -------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """The commit of the sweeper checkout that produced the store, if it is one."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def check_writable(path: Path, nbytes: int) -> None:
    """Fail before any compute if the store cannot be written or cannot fit; writes nothing.

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


def _all_fixed(spec: GridSpec, params: Any) -> dict[str, Any]:
    """Every non-swept parameter, defaults included: what a rerun needs."""
    swept = {a.name for a in spec.axes} | (set(spec.cases[0]) if spec.cases else set())
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name not in swept}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class _quiet(warnings.catch_warnings):
    """Silence zarr's note that consolidated metadata is not in the v3 spec yet."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        return self

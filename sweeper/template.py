"""The template of a grid's store, computed from the spec alone, before anything runs.

Like xarray-beam's ``make_template``: the full-size layout (dims, shape, chunks,
coordinates and their attrs, the outputs with their dims) and the provenance
attrs (grid text, kernel name and version, every fixed parameter, package
versions, git commit). The store lays a :class:`Template` out on disk; it never
asks the kernel anything itself.

:func:`kernel_schema` is the only function in the engine that asks a kernel for
its schema.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kernels.base import Kernel, Output, Schema
from sweeper.errors import StoreError

if TYPE_CHECKING:
    from sweeper.spec import GridSpec

FORMAT_VERSION = 2  # 2: the fingerprint's components are stored (attrs["fingerprint"])
PACKAGES = ("sweeper", "numpy", "scipy", "numba", "xarray", "zarr", "ray")


def kernel_schema(kernel: Kernel, params: Any, outputs: Sequence[str] | None = None) -> Schema:
    """The schema ``kernel`` declares for ``params``, kept to ``outputs`` (default: all).

    Every question the engine asks a kernel about its schema goes through here; only the
    dims some kept output uses keep their coordinates.
    """
    schema = kernel.schema(params)
    if outputs is None:
        return schema
    kept = {k: v for k, v in schema.outputs.items() if k in outputs}
    used = {d for o in kept.values() for d in o.dims}
    return dataclasses.replace(
        schema,
        outputs=kept,
        coords={k: v for k, v in schema.coords.items() if k in used},
        coord_attrs={k: v for k, v in schema.coord_attrs.items() if k in used},
    )


@dataclass(frozen=True)
class Template:
    """Everything the store needs to lay itself out."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    grid_coords: dict[str, np.ndarray]  # one per grid dim
    case_coords: dict[str, np.ndarray]  # along `case`: one per parameter the cases set
    kernel_coords: dict[str, np.ndarray]  # the kernel's own dims
    coord_attrs: dict[str, dict[str, str]]  # of every coordinate above
    outputs: dict[str, Output]
    attrs: dict[str, Any]

    def output_shape(self, name: str) -> tuple[int, ...]:
        return tuple(len(self.kernel_coords[d]) for d in self.outputs[name].dims)

    def nbytes(self) -> int:
        per_point = sum(8 * math.prod(self.output_shape(n)) for n in self.outputs) + 1 + 8 + 8 + 16
        return per_point * math.prod(self.shape)


def make_template(spec: GridSpec) -> Template:
    kernel_class = spec.kernel_class()
    params = spec.base_params()
    schema = kernel_schema(kernel_class(), params, spec.options.outputs)
    clash = set(schema.coords) & set(spec.dims)
    if clash:
        raise StoreError(f"kernel dims {sorted(clash)} clash with the grid's dims {spec.dims}.")
    case_coords = spec.case_coords()
    coord_attrs = {
        **{dim: _grid_coord_attrs(dim) for dim in spec.dims},
        **{
            name: {"long_name": name, "description": f"the value of {name} in each case"}
            for name in case_coords
        },
        **{dim: schema.coord_attrs.get(dim, {}) for dim in schema.coords},
    }
    return Template(
        dims=spec.dims,
        shape=spec.shape,
        chunks=spec.layout.chunks,
        grid_coords=spec.coords(),
        case_coords=case_coords,
        kernel_coords=schema.coords,
        coord_attrs=coord_attrs,
        outputs=schema.outputs,
        attrs=provenance(spec, kernel_class, params, schema),
    )


def provenance(spec: GridSpec, kernel_class: type[Kernel], params: Any, schema: Schema) -> dict[str, Any]:
    """The store's attrs: enough to trace a result back to its grid, code and versions, and rerun it."""
    return {
        **grid_attrs(spec),
        "grid_fingerprint": spec.fingerprint(),
        "fingerprint": json.dumps(spec.components(), sort_keys=True),
        "grid_seed": spec.grid_seed,
        "kernel": spec.kernel,
        "kernel_version": kernel_class.version,
        "fixed_params": json.dumps(_jsonable(fixed_params(spec, params)), sort_keys=True),
        "swept_dims": list(spec.dims),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status_meanings": "0 pending, 1 ok, 2 failed",
        "store_format": FORMAT_VERSION,
        **{f"kernel_{k}": _jsonable(v) for k, v in schema.attrs.items()},
    }


def grid_attrs(spec: GridSpec) -> dict[str, str]:
    """The attrs that follow the latest accepted grid file: a resubmission that only edits
    the description, adds seeds or changes how the grid runs rewrites them."""
    return {
        "title": spec.description or spec.name,
        "grid_name": spec.name,
        "grid_file": spec.source,
        "grid_text": spec.text,
    }


def fixed_params(spec: GridSpec, params: Any) -> dict[str, Any]:
    """Every non-swept parameter, defaults included: what a rerun needs."""
    swept = spec.swept_names()
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name not in swept}


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


def _grid_coord_attrs(dim: str) -> dict[str, str]:
    """Short labels for plot axes and legends; the detail in ``description``."""
    if dim == "seed":
        return {"long_name": "seed", "description": "seed of the point (with grid_seed, its random stream)"}
    if dim == "case":
        return {"long_name": "case", "description": "index of the explicit case"}
    return {"long_name": dim, "description": "swept parameter"}


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

"""Record every kernel's numbers before the kernel layout moves (issue 12).

Run once, on the code *before* the move:  python tests/golden/make_golden.py
It writes ``tests/golden/golden.npz``: for each case, the parameters (JSON, under the
kernel names of the new layout) and every output. ``test_golden.py`` reruns the cases
with the moved code and requires bit-equal results.

A kernel whose numbers change on purpose (its ``version`` goes up) re-records its own cases
only, copying every other entry bit for bit:  python tests/golden/make_golden.py --kernel ode
Every `ode` and `meanfield` case also has an ``_euler`` twin (``integrator = "euler"``): the
Euler numbers recorded before the adaptive integrator became the default (`ode` 3, `meanfield`
2), which Euler must still give.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from kernels.registry import get_kernel
from sweeper.grid_file import load_spec

HERE = Path(__file__).resolve().parent
EXPERIMENTS = HERE.parents[1] / "experiments"

# name -> (kernel as of the move, params, seed); "sgd" with mode is renamed below
CASES = {
    "dmft/example": ("dmft", get_kernel("dmft").example, 0),
    "ode/example": ("ode", get_kernel("ode").example, 0),
    "meanfield/example": ("meanfield", get_kernel("meanfield").example, 0),
    "meanfield/example_reduced": ("meanfield", {**get_kernel("meanfield").example, "method": "reduced"}, 1),
    "sgd_online/example": ("sgd", {"mode": "online", "d": 50, "K": 2, "M": 2, "t_max": 1.0, "n_times": 3}, 0),
    "sgd_online/particles": (
        "sgd",
        {
            "mode": "online",
            "d": 40,
            "K": 6,
            "M": 2,
            "t_max": 1.0,
            "n_times": 3,
            "save_particles": 2,
            "n_test": 100,
            "committee": "mean",
        },
        3,
    ),
    "sgd_multipass/example": (
        "sgd",
        {"mode": "multipass", "d": 100, "alpha": 2.0, "lr": 0.1, "t_max": 1.0, "n_times": 3},
        0,
    ),
    "sgd_multipass/two_time": (
        "sgd",
        {
            "mode": "multipass",
            "d": 80,
            "alpha": 3.0,
            "lr": 0.1,
            "algorithm": "psgd",
            "b": 0.5,
            "tau": 1.0,
            "t_max": 1.0,
            "n_times": 3,
            "two_time": True,
            "model": "mixture2",
            "noise": 0.5,
            "loss": "logistic",
        },
        2,
    ),
}

# first and last point of shipped grids, as the grid file states them (the last point of
# meanfield_convergence_reduced, K = 10^4, takes five minutes: its first point only)
GRIDS = {
    name: ("first", "last")
    for name in [
        "quickstart",
        "sgd_online_vs_d",
        "sgd_ridge_vs_dmft",
        "sgd_mixture_fdt",
        "dmft_ridge",
        "saad_solla_plateau",
    ]
} | {"meanfield_convergence_reduced": ("first",)}


def grid_cases():
    out = {}
    for grid, points in GRIDS.items():
        spec = load_spec(EXPERIMENTS / f"{grid}.toml")
        for which in points:
            index = (0,) * len(spec.shape) if which == "first" else tuple(s - 1 for s in spec.shape)
            swept, seed = spec.point(index)
            out[f"{grid}/{which}"] = (spec.kernel, {**spec.fixed, **swept}, list(seed))
    return out


def euler_twins(cases):
    """An ``integrator = "euler"`` twin of every `ode` and `meanfield` case (`ode` 3 and
    `meanfield` 2 made "adaptive" the default)."""
    return {
        f"{case}_euler": (kernel, {**params, "integrator": "euler"}, seed)
        for case, (kernel, params, seed) in cases.items()
        if kernel in ("ode", "meanfield")
    }


def new_name(kernel, params):
    if kernel != "sgd":
        return kernel, params
    params = dict(params)
    return f"sgd_{params.pop('mode')}", params


def record(cases):
    """Run each case; the arrays and the index entries of ``golden.npz``."""
    arrays, index = {}, {}
    for case, (kernel, params, seed) in cases.items():
        k = get_kernel(kernel)()
        start = time.perf_counter()
        result = k.run(k.make_params(**params), seed=seed)
        seconds = time.perf_counter() - start
        name, new_params = new_name(kernel, params)
        index[case] = {
            "kernel": name,
            "params": new_params,
            "seed": seed,
            "ok": result.ok,
            "message": result.message,
            "outputs": sorted(result.outputs),
        }
        for out, value in result.outputs.items():
            arrays[f"{case}|{out}"] = value
        print(f"{case:45s} {name:14s} {seconds:6.2f} s ok={result.ok}")
    return arrays, index


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kernel", help="re-record only this kernel's cases, keeping every other entry")
    args = parser.parse_args()
    cases = {**CASES, **grid_cases()}
    cases |= euler_twins(cases)
    if args.kernel is None:
        arrays, index = record(cases)
    else:
        old = np.load(HERE / "golden.npz")
        index = {c: e for c, e in json.loads(str(old["index"])).items() if e["kernel"] != args.kernel}
        arrays = {key: old[key] for key in old.files if key != "index" and key.split("|")[0] in index}
        new_arrays, new_index = record(
            {c: v for c, v in cases.items() if new_name(v[0], v[1])[0] == args.kernel}
        )
        arrays |= new_arrays
        index |= new_index
    arrays["index"] = np.asarray(json.dumps(index, sort_keys=True))
    np.savez_compressed(HERE / "golden.npz", **arrays)


if __name__ == "__main__":
    main()

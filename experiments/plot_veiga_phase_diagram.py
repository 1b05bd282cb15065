"""Plot the (kappa, delta) phase diagram of experiments/veiga_phase_diagram.toml.

Usage::

    sweeper submit experiments/veiga_phase_diagram.toml
    python experiments/plot_veiga_phase_diagram.py results/veiga_phase_diagram.zarr [--out fig.png]
    python experiments/plot_veiga_phase_diagram.py --small [--out fig.png]   # 8 x 8, in process, ~10 s

Panels: the risk at the last saved time (t = 10^4) over the plane, with the region boundaries of
Veiga et al. 2022 (blue line kappa + delta = 0, orange/red boundary -delta = (kappa + 1) / 2);
the risk against time at one point of each region; and the steps the adaptive integrator took
at each point (Euler at the paper's dt = 1/2000 takes 2e7 everywhere). Failed points are white.
``--small`` runs the grid's parameters on an 8 x 8 grid directly through the kernel (no store).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

HERE = Path(__file__).resolve().parent
REGION_NAMES = {1: "green", 2: "blue", 3: "orange", 4: "red"}
# orange and red follow the same rule (docs/ode.md §2): red dashed over a wide orange line
STYLE = {"green": {}, "blue": {}, "orange": {"lw": 4}, "red": {"ls": "--"}}


def small_dataset(n: int = 8) -> xr.Dataset:
    """The grid's fixed parameters on an ``n x n`` (kappa, delta) grid, run in this process."""
    sys.path.insert(0, str(HERE.parent))
    from kernels.timegrid import saved_times
    from kernels.twolayer.ode import ODEKernel

    fixed = tomllib.loads((HERE / "veiga_phase_diagram.toml").read_text())["params"]
    kernel = ODEKernel()
    kappas, deltas = np.linspace(0.0, 1.0, n), np.linspace(-1.0, 0.5, n)
    times = saved_times(kernel.make_params(**fixed))
    risk = np.full((n, n, len(times)), np.nan)
    region, steps = np.zeros((n, n)), np.full((n, n), np.nan)
    for i, kappa in enumerate(kappas):
        for j, delta in enumerate(deltas):
            result = kernel.run(kernel.make_params(**fixed, kappa=kappa, delta=delta), seed=0)
            risk[i, j] = result.outputs["risk"]
            region[i, j] = result.outputs["region"]
            steps[i, j] = result.outputs.get("accepted_steps", np.nan)
    return xr.Dataset(
        {
            "risk": (("kappa", "delta", "time"), risk),
            "region": (("kappa", "delta"), region),
            "accepted_steps": (("kappa", "delta"), steps),
        },
        coords={"kappa": kappas, "delta": deltas, "time": times},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", help="path of the zarr store")
    parser.add_argument("--small", action="store_true", help="8 x 8 grid in process, no store")
    parser.add_argument("--out", default="veiga_phase_diagram.png")
    args = parser.parse_args()
    if args.small == (args.store is not None):
        parser.error("give a store path or --small")
    ds = small_dataset() if args.small else xr.open_zarr(args.store)
    if "seed" in ds.dims:
        ds = ds.isel(seed=0)
    kappa, delta = ds["kappa"].values, ds["delta"].values

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    final = np.log10(ds["risk"].isel(time=-1).transpose("delta", "kappa"))
    mesh = ax.pcolormesh(kappa, delta, final, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=f"log10 risk at t = {float(ds['time'][-1]):g}")
    k = np.linspace(0, 1, 50)
    ax.plot(k, -k, "w-", lw=1.5, label="blue line: kappa + delta = 0")
    ax.plot(k, -(k + 1) / 2, "w--", lw=1.5, label="orange / red: -delta = (kappa + 1)/2")
    ax.set_ylim(delta.min() - 0.5 * (delta[1] - delta[0]), delta.max() + 0.5 * (delta[1] - delta[0]))
    ax.set_xlabel("kappa (p ~ d^kappa)")
    ax.set_ylabel("delta (gamma = gamma_0 d^-delta)")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title("final risk")

    ax = axes[1]
    region = ds["region"].values
    for code, name in REGION_NAMES.items():
        where = np.argwhere(region == code)
        if len(where):
            i, j = where[len(where) // 2]
            r = ds["risk"].isel(kappa=i, delta=j)
            ax.loglog(
                ds["time"][1:],
                r[1:],
                color=name,
                **STYLE[name],
                label=f"{name}: kappa={kappa[i]:.2f}, delta={delta[j]:.2f}",
            )
    ax.set_xlabel("time (each point's own unit)")
    ax.set_ylabel("risk")
    ax.legend(fontsize=7)
    ax.set_title("risk against time, one point a region")

    ax = axes[2]
    steps = ds["accepted_steps"].transpose("delta", "kappa")
    mesh = ax.pcolormesh(kappa, delta, steps, shading="nearest", cmap="magma")
    fig.colorbar(mesh, ax=ax, label="accepted steps")
    ax.set_xlabel("kappa")
    ax.set_ylabel("delta")
    ax.set_title("adaptive steps a point (Euler at dt = 1/2000: 2e7)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

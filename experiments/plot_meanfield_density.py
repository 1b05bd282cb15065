"""Plot a `meanfield` store: the density rho_t(m, q) at a few times, and the risk vs K.

Usage::

    sweeper submit experiments/meanfield_convergence.toml
    python experiments/plot_meanfield_density.py results/meanfield_convergence.zarr [--out fig.png]

The density panels show the largest K (averaged over seeds, teacher unit 0); the last panel
shows the risk against time for every K (mean over seeds, band = one standard deviation).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="path of the zarr store")
    parser.add_argument("--out", default="meanfield_density.png")
    parser.add_argument("--times", type=float, nargs="*", help="times to show (default: 4 spread out)")
    args = parser.parse_args()

    ds = xr.open_zarr(args.store)
    dens = ds["density"].isel(teacher=0)
    if "K" in dens.dims:
        dens = dens.sel(K=dens["K"].max())
    if "seed" in dens.dims:
        dens = dens.mean("seed")
    times = ds["time"].values
    if args.times:
        shown = [float(times[np.argmin(np.abs(times - t))]) for t in args.times]
    else:
        shown = [float(times[i]) for i in np.linspace(0, len(times) - 1, 4).round().astype(int)]

    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(4 * (len(shown) + 1), 3.6))
    vmax = float(dens.sel(time=shown).max())
    for ax, t in zip(axes, shown, strict=False):
        d = dens.sel(time=t)
        ax.pcolormesh(
            d["m_bin"], d["q_bin"], d.transpose("q_bin", "m_bin"), vmin=0, vmax=vmax, shading="auto"
        )
        ax.set_title(f"t = {t:g}")
        ax.set_xlabel("m (overlap with teacher unit 0)")
        ax.set_ylabel("q = |w|^2 / d")

    ax = axes[-1]
    risk = ds["risk"]
    ks = risk["K"].values if "K" in risk.dims else [None]
    for K in ks:
        r = risk.sel(K=K) if K is not None else risk
        mean = r.mean("seed") if "seed" in r.dims else r
        std = r.std("seed") if "seed" in r.dims else 0 * r
        ax.plot(times, mean, label=f"K = {K}")
        ax.fill_between(times, mean - std, mean + std, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel(f"time [{ds['time'].attrs.get('units', '')}]")
    ax.set_ylabel("risk")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Plot a `meanfield` store: the density rho_t(m, q) at a few times, and the risk vs K.

Usage::

    sweeper submit experiments/meanfield_convergence.toml
    python experiments/plot_meanfield_density.py results/meanfield_convergence.zarr [--out fig.png]

The density panels show the largest K (averaged over seeds, teacher unit 0); then the risk
against time for every K (mean over seeds, band = one standard deviation), and the spread of
the risk across seeds at the middle saved time against K, with a K^(-1/2) guide.
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

    fig, axes = plt.subplots(1, len(shown) + 2, figsize=(4 * (len(shown) + 2), 3.6))
    vmax = float(dens.sel(time=shown).max())
    for ax, t in zip(axes, shown, strict=False):
        d = dens.sel(time=t)
        ax.pcolormesh(
            d["m_bin"], d["q_bin"], d.transpose("q_bin", "m_bin"), vmin=0, vmax=vmax, shading="auto"
        )
        ax.set_title(f"t = {t:g}")
        ax.set_xlabel("m (overlap with teacher unit 0)")
        ax.set_ylabel("q = |w|^2 / d")

    ax = axes[-2]
    risk = ds["risk"]
    ks = risk["K"].values if "K" in risk.dims else [None]
    for K in ks:
        r = risk.sel(K=K) if K is not None else risk
        mean = r.mean("seed") if "seed" in r.dims else r
        std = r.std("seed") if "seed" in r.dims else 0 * r
        ax.plot(times, mean, label=f"K = {K}")
        ax.fill_between(times, mean - std, mean + std, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("time")
    ax.set_title(ds["time"].attrs.get("units", ""), fontsize=7)
    ax.set_ylabel("risk")
    ax.legend(fontsize=8)

    ax = axes[-1]
    if "K" in risk.dims and "seed" in risk.dims:
        mid = risk.isel(time=len(times) // 2)
        spread = mid.std("seed")
        ks = np.asarray(risk["K"].values, dtype=float)
        ax.loglog(ks, spread, "o-", label="std over seeds")
        ax.loglog(ks, float(spread[0]) * (ks / ks[0]) ** -0.5, "k--", label="K^(-1/2)")
        ax.set_xlabel("K (particles)")
        ax.set_title(f"risk spread at t = {float(mid['time']):g}", fontsize=9)
        ax.legend(fontsize=8)
    else:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Plot experiments/overparam_phase_retrieval.toml: success against alpha for each width K.

Usage::

    sweeper submit experiments/overparam_phase_retrieval.toml
    python experiments/plot_overparam_phase_retrieval.py results/overparam_phase_retrieval.zarr --out f.png

Left: the fraction of seeds whose ``matrix_error`` = |S - S*|_F / |S*|_F is below ``--threshold``
at the last saved time, against alpha, one line per K, with alpha = 2 (the landscape threshold
of K >= d as d -> infinity, docs/singlelayer.md §12.3) marked. Right: the seed median of
``matrix_error`` against time for the widest K, one line per alpha: a plateau below alpha = 2,
an algebraic decay above it.
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def plot(ds: xr.Dataset, threshold: float, out: str) -> None:
    fixed = json.loads(ds.attrs["fixed_params"])
    error = ds["matrix_error"].where(ds["ok"])
    final = error.isel(time=-1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for hidden in ds.hidden.values:
        success = (final.sel(hidden=hidden) < threshold).mean("seed")
        left.plot(ds.alpha, success, "o-", label=f"K = {int(hidden)}")
    left.axvline(2.0, color="grey", ls=":", label="alpha = 2")
    left.set(
        xlabel="alpha = n / d",
        ylabel=f"fraction with matrix_error < {threshold:g} at t = {float(ds.time[-1]):g}",
        title=f"{fixed['algorithm']}, d = {fixed['d']}",
        ylim=(-0.05, 1.05),
    )
    left.legend()
    widest = ds.hidden.values.max()
    times = ds.time.values[1:]
    for alpha, color in zip(ds.alpha.values, plt.cm.viridis(np.linspace(0, 1, ds.sizes["alpha"]))):
        median = error.sel(hidden=widest, alpha=alpha).median("seed").values[1:]
        right.loglog(times, median, color=color, label=f"alpha = {alpha:g}")
    right.loglog(times, 3.0 / times, "k--", lw=0.8, label="1/t")
    right.set(xlabel="t", ylabel="median matrix_error", title=f"K = {int(widest)}")
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--out", default="overparam_phase_retrieval.png")
    parser.add_argument("--threshold", type=float, default=0.1)
    args = parser.parse_args()
    import sweeper

    plot(sweeper.open(args.store), args.threshold, args.out)


if __name__ == "__main__":
    main()

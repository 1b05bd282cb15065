"""The classical limit gamma -> 0 at small d (Loureiro 2023, lecture III: d = 5, 10, 50).

At fixed d and width, one-pass SGD with a vanishing learning rate gamma follows the gradient flow
of the population risk (Robbins & Monro): the talk's "classical limit". Here gamma is the
per-step learning rate `lr` (no scalings: eta = lr, docs/twolayer.md §2.2) and the flow is the
`ode` kernel with `quadratic_terms = false`, the overlap ODE without its lr^2 and noise terms,
which is the population gradient flow of those K units exactly, at any d (docs/ode.md §2,
docs/meanfield.md §2.3), in flow time lr * t. Each SGD point is paired with the flow started
from its own initial weights.

Numbers, per d and lr:
- the seed mean of R_sgd - R_flow in units of its standard error (the paired difference's spread
  over seeds), RMS and largest over the saved times at which the flow's risk is above 1e-6;
- the per-seed RMS over those times of (R_sgd - R_flow) / R_flow, seed mean: SGD's noise moves
  the overlaps by O(sqrt(lr)) around the flow, so it should fall by about sqrt(10) from
  lr = 0.1 to 0.01.
"""

from __future__ import annotations

import numpy as np

from analysis import twolayer
from gallery.figure import Figure

FLOOR = 1e-6  # below it the flow is in its final exponential approach; relative errors blow up


def _paired(datasets):
    return datasets["classical_gf"].risk, datasets["classical_sgd"].risk


def analyse(datasets):
    flow, sgd = _paired(datasets)
    mean, z = twolayer.deviation_in_errors(flow, sgd)
    mask = flow.mean("seed") > FLOOR
    z = z.where(mask)
    z_rms = np.sqrt((z**2).mean("time"))
    z_max = np.abs(z).max("time")
    dev = twolayer.paired_deviation(flow, sgd, relative=True, floor=FLOOR)
    dev_mean, dev_err = twolayer.mean_and_error(dev)
    lrs = sorted(flow["lr"].values.tolist())
    ratio = dev_mean.sel(lr=lrs[-1]) / dev_mean.sel(lr=lrs[0])

    def table(da):
        return {f"{lr:g}": da.sel(lr=lr).values.tolist() for lr in lrs}

    return {
        "d": flow["d"].values.tolist(),
        "lr": lrs,
        "z_rms": table(z_rms),
        "z_max": table(z_max),
        "relative_deviation": table(dev_mean),
        "relative_deviation_error": table(dev_err),
        "deviation_ratio_largest_to_smallest_lr": ratio.values.tolist(),
    }


def draw(datasets, numbers):
    import matplotlib.pyplot as plt

    flow, sgd = _paired(datasets)
    ds = flow["d"].values
    lrs = numbers["lr"]
    fig, axes = plt.subplots(1, len(ds) + 1, figsize=(5 * (len(ds) + 1), 4.6))
    colours = {lr: f"C{i + 1}" for i, lr in enumerate(lrs)}
    for ax, d in zip(axes, ds, strict=False):
        for lr in lrs:
            tau = flow["time"] * lr
            f_mean, _ = twolayer.mean_and_error(flow.sel(d=d, lr=lr))
            s_mean, s_err = twolayer.mean_and_error(sgd.sel(d=d, lr=lr))
            if lr == lrs[0]:
                ax.loglog(tau[1:], f_mean[1:], "k-", lw=2, label="gradient flow (ODE without lr^2 terms)")
            z = numbers["z_rms"][f"{lr:g}"][list(ds).index(d)]
            ax.loglog(
                tau[1:], s_mean[1:], color=colours[lr], lw=1, label=f"SGD lr = {lr:g} (RMS {z:.1f} s.e.)"
            )
            ax.fill_between(
                tau[1:], (s_mean - s_err)[1:], (s_mean + s_err)[1:], color=colours[lr], alpha=0.25
            )
        ax.set_ylim(1e-7, 0.3)
        ax.set_xlim(0.01, float(flow["time"][-1]) * lrs[0])
        ax.axhline(FLOOR, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("flow time lr * t")
        ax.set_ylabel("risk (seed mean, band: its standard error)")
        ax.set_title(f"d = {d}", fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
    ax = axes[-1]
    for i, d in enumerate(ds):
        means = [numbers["relative_deviation"][f"{lr:g}"][i] for lr in lrs]
        errors = [numbers["relative_deviation_error"][f"{lr:g}"][i] for lr in lrs]
        ax.errorbar(lrs, means, errors, fmt="o-", label=f"d = {d}")
    lr = np.array(lrs)
    first = numbers["relative_deviation"][f"{lrs[0]:g}"][0]
    ax.loglog(lr, first * np.sqrt(lr / lr[0]), "k--", lw=1, label="sqrt(lr)")
    ax.set_xlabel("lr (gamma)")
    ax.set_ylabel("RMS over t of (R_sgd - R_flow) / R_flow")
    ax.set_title("SGD -> gradient flow as lr -> 0 (seed mean)", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle("Classical limit gamma -> 0 at fixed small d, p = k = 2 (after Loureiro 2023)")
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="classical_limit",
    title="Classical limit gamma -> 0 at d = 5, 10, 50: SGD vs the population gradient flow (Loureiro 2023)",
    grids=("classical_gf", "classical_sgd"),
    analyse=analyse,
    draw=draw,
    small_note="6 seeds, flow time up to 300 at lr = 0.01",
)

"""Saad-Solla plateau (Loureiro 2023, lecture III): plateau height and escape time against the
learning rate, and the ODE against finite-d one-pass SGD as d grows.

Numbers:
- plateau height: the flattest point of log R against log t after the first descent
  (:func:`analysis.twolayer.plateau`), per lr (seed mean), and its lr -> 0 limit from a quadratic
  fit in lr against the closed form 0.011611 (docs/twolayer.md §8.1);
- escape time: the first time after that point at which R falls below half the plateau height,
  interpolated in (log t, log R) between saved times (:func:`analysis.twolayer.escape_time`);
  lr * t_escape should be roughly constant (time is steps / d, the ODE's learning term is lr);
- ODE against SGD: per seed, the RMS over saved times t <= 60 (the first descent and the
  plateau, before any escape: at lr = 0.5 the escape is near t = 200) of (R_sgd - R_ode) / R_ode,
  both started from the same weights (relative, so that the plateau, 30 times lower than the
  start, weighs as much as the descent); its seed mean against d, with a power-law fit. During the escape
  the two differ by an O(1) shift of the escape time that does not shrink with d (both the initial
  symmetry breaking and the SGD noise are O(d^-1/2)), so the escape is outside the window.
"""

from __future__ import annotations

import numpy as np

from analysis import twolayer
from gallery.figure import Figure

K = 2
DEVIATION_T_MAX = 60.0
LR_SGD = 0.5


def analyse(datasets):
    lr_runs = datasets["saad_solla_lr"].risk
    found = twolayer.plateaus(lr_runs)
    height, height_err = twolayer.mean_and_error(found.height)
    escape, escape_err = twolayer.mean_and_error(found.t_escape)
    lrs = lr_runs["lr"].values
    # plateau(lr) = R0 + a lr + b lr^2 (the lr^2 term of the ODE raises it smoothly)
    small = lrs <= 0.5
    coeffs = np.polyfit(lrs[small], height.values[small], 2)
    product = (escape * escape["lr"]).values

    ode = datasets["saad_solla_ode_d"].risk
    sgd = datasets["saad_solla_sgd_d"].risk
    dev = twolayer.paired_deviation(ode, sgd, t_max=DEVIATION_T_MAX, relative=True)
    dev_mean, dev_err = twolayer.mean_and_error(dev)
    fit = twolayer.fit_power_law(dev_mean["d"].values, dev_mean.values, dev_err.values)
    return {
        "lr": lrs.tolist(),
        "plateau_height": height.values.tolist(),
        "plateau_height_error": height_err.values.tolist(),
        "plateau_limit_fit": float(coeffs[-1]),
        "plateau_limit_closed_form": twolayer.saad_solla_plateau_risk(K),
        "escape_time": escape.values.tolist(),
        "escape_time_error": escape_err.values.tolist(),
        "lr_times_escape": product.tolist(),
        "lr_times_escape_max_over_min": float(np.max(product) / np.min(product)),
        "d": dev_mean["d"].values.tolist(),
        "deviation": dev_mean.values.tolist(),
        "deviation_error": dev_err.values.tolist(),
        "deviation_slope": fit.slope,
        "deviation_slope_error": fit.slope_error,
        "deviation_prefactor": fit.prefactor,
    }


def draw(datasets, numbers):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    lr_runs = datasets["saad_solla_lr"].risk
    colours = plt.cm.viridis(np.linspace(0, 0.9, lr_runs.sizes["lr"]))
    limit = numbers["plateau_limit_closed_form"]

    ax = axes[0, 0]
    for c, lr in zip(colours, lr_runs["lr"].values, strict=True):
        for s in lr_runs["seed"].values:
            r = lr_runs.sel(lr=lr, seed=s)
            ax.loglog(r["time"][1:], r[1:], color=c, lw=1, label=f"lr = {lr:g}" if s == 0 else None)
    ax.axhline(limit, color="k", ls=":", lw=1, label=f"lr -> 0 plateau {limit:.5f}")
    ax.set_ylim(1e-4, 1)
    ax.set_xlabel("t = steps / d")
    ax.set_ylabel("risk")
    ax.set_title("ODE, K = M = 2, every seed", fontsize=10)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    lrs = np.array(numbers["lr"])
    ax.errorbar(
        lrs, numbers["plateau_height"], numbers["plateau_height_error"], fmt="o", label="plateau height"
    )
    grid = np.linspace(0, lrs.max(), 50)
    small = lrs <= 0.5
    coeffs = np.polyfit(lrs[small], np.array(numbers["plateau_height"])[small], 2)
    ax.plot(grid, np.polyval(coeffs, grid), "C0-", lw=0.8, label=f"quadratic fit, lr -> 0: {coeffs[-1]:.5f}")
    ax.plot([0], [limit], "k*", ms=10, label=f"closed form {limit:.5f}")
    ax.set_xlabel("lr")
    ax.set_ylabel("plateau risk")
    ax.set_title("plateau height (flattest point, seed mean)", fontsize=10)
    ax.legend(fontsize=7)

    ax = axes[0, 2]
    ax.errorbar(lrs, numbers["escape_time"], numbers["escape_time_error"], fmt="o", label="escape time")
    c = float(np.mean(numbers["lr_times_escape"]))
    ax.loglog(lrs, c / lrs, "k--", lw=1, label=f"{c:.0f} / lr")
    ax.set_xlabel("lr")
    ax.set_ylabel("t_escape (R < plateau / 2)")
    ax.set_title(
        f"escape time ~ 1/lr (lr t_esc within a factor {numbers['lr_times_escape_max_over_min']:.2f})",
        fontsize=10,
    )
    ax.legend(fontsize=7)

    ode, sgd = datasets["saad_solla_ode_d"].risk, datasets["saad_solla_sgd_d"].risk
    ds = ode["d"].values
    colours = plt.cm.plasma(np.linspace(0, 0.8, len(ds)))
    ax = axes[1, 0]
    for c, d in zip(colours, ds, strict=True):
        ax.loglog(sgd["time"][1:], sgd.sel(d=d, seed=0)[1:], color=c, lw=1, label=f"SGD d = {d}")
        ax.loglog(ode["time"][1:], ode.sel(d=d, seed=0)[1:], color=c, lw=1.5, ls="--")
    ax.axvline(DEVIATION_T_MAX, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("t = steps / d")
    ax.set_ylabel("risk")
    ax.set_title(f"lr = {LR_SGD}: SGD (solid) and ODE from the same weights (dashed), seed 0", fontsize=10)
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    diff = np.sqrt((((sgd - ode) / ode) ** 2).mean("seed"))
    for c, d in zip(colours, ds, strict=True):
        ax.loglog(diff["time"][1:], diff.sel(d=d)[1:], color=c, lw=1, label=f"d = {d}")
    ax.axvline(DEVIATION_T_MAX, color="grey", lw=0.8, ls=":", label="end of the deviation window")
    ax.set_xlabel("t")
    ax.set_ylabel("RMS over seeds of (R_sgd - R_ode) / R_ode")
    ax.set_title("the difference in time", fontsize=10)
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    ax.errorbar(ds, numbers["deviation"], numbers["deviation_error"], fmt="o", label="seed mean, t <= 60")
    fit = twolayer.PowerLaw(
        numbers["deviation_slope"], numbers["deviation_slope_error"], numbers["deviation_prefactor"]
    )
    ax.loglog(ds, fit(ds), "C0-", lw=1, label=f"fit: slope {fit.slope:.2f} ± {fit.slope_error:.2f}")
    ax.loglog(ds, fit(ds[0]) * (ds / ds[0]) ** -0.5, "k--", lw=1, label="d^(-1/2)")
    ax.set_xlabel("d")
    ax.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels on a short log axis
    ax.set_ylabel("RMS over t <= 60 of (R_sgd - R_ode) / R_ode")
    ax.set_title("ODE against SGD: deviation shrinks like d^(-1/2)", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle("Saad-Solla plateau of an erf committee, K = M = 2 (after Loureiro 2023)")
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="saad_solla_plateau",
    title="Saad-Solla plateau: height and escape time vs lr; ODE against SGD as d grows (Loureiro 2023)",
    grids=("saad_solla_lr", "saad_solla_ode_d", "saad_solla_sgd_d"),
    analyse=analyse,
    draw=draw,
    small_note="2 seeds per lr; SGD at d = 100...1600 to t = 60 only",
)

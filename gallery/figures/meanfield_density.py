"""Mean-field density of a wide two-layer network (Loureiro 2023, lecture III; Arnaboldi et al. 2023).

The units of a wide erf committee move as particles in the field of their own empirical
distribution (docs/meanfield.md §1-§3); Arnaboldi et al. describe the same flow by the law
rho_t(m, q) of each unit's teacher overlap and norm, the reduced dynamics (docs/meanfield.md §4),
which replaces each pair's angle by its average. The figure shows rho_t(m, q) at a few times and
the risk against time as the number of particles K (the talk's p) grows.

Numbers (both methods integrated with error control, so that what differs is the method: with
Euler at dt = 0.1 the two differ by ~3e-4 of the risk whatever K, a floor that hides the K law):
- per unit: the first 50 units' teacher overlaps m_j(t) in the two methods, RMS over units and
  saved times t > 0, seed mean against K with a power-law fit. Each unit feels the actual angles
  of its K partners where the reduced dynamics has their average: a sum of K zero-mean terms
  divided by K, so K^(-1/2), the p^(-1/2) of Arnaboldi et al.'s bound;
- the risk: per seed, the RMS over saved times t > 0 of (R_particles - R_reduced) / R_reduced,
  fitted likewise. The risk averages those unit deviations, which are uncorrelated across units,
  and the pair angles enter it as a degenerate U-statistic (given one unit, the average over its
  partner's direction is the angle average), so it should fall faster, towards K^(-1);
- the spread of the particle risk over seeds at the middle saved time against K (the empirical
  measure of K i.i.d. units fluctuates like K^(-1/2), docs/meanfield.md §7).
"""

from __future__ import annotations

import numpy as np

from analysis import twolayer
from gallery.figure import Figure

SHOWN_TIMES = (0.0, 2.0, 5.0, 10.0)


def analyse(datasets):
    particles = datasets["meanfield_particles"].risk
    reduced = datasets["meanfield_reduced"].risk
    after = particles["time"] > 0
    dev = twolayer.paired_deviation(reduced.sel(time=after), particles.sel(time=after), relative=True)
    dev_mean, dev_err = twolayer.mean_and_error(dev)
    ks = dev_mean["K"].values
    fit = twolayer.fit_power_law(ks, dev_mean.values, dev_err.values)
    m_part = datasets["meanfield_particles"].m.sel(time=after)
    m_red = datasets["meanfield_reduced"].m.sel(time=after)
    unit = np.sqrt(((m_part - m_red) ** 2).mean(("time", "unit", "teacher")))
    unit_mean, unit_err = twolayer.mean_and_error(unit)
    unit_fit = twolayer.fit_power_law(ks, unit_mean.values, unit_err.values)
    mid = particles.isel(time=particles.sizes["time"] // 2)
    spread = mid.std("seed", ddof=1)
    spread_fit = twolayer.fit_power_law(ks, spread.values)
    final, final_err = twolayer.mean_and_error(particles.isel(time=-1))
    return {
        "K": ks.tolist(),
        "deviation": dev_mean.values.tolist(),
        "deviation_error": dev_err.values.tolist(),
        "deviation_slope": fit.slope,
        "deviation_slope_error": fit.slope_error,
        "deviation_prefactor": fit.prefactor,
        "unit_deviation": unit_mean.values.tolist(),
        "unit_deviation_error": unit_err.values.tolist(),
        "unit_slope": unit_fit.slope,
        "unit_slope_error": unit_fit.slope_error,
        "unit_prefactor": unit_fit.prefactor,
        "spread_time": float(mid["time"]),
        "spread": spread.values.tolist(),
        "spread_slope": spread_fit.slope,
        "spread_slope_error": spread_fit.slope_error,
        "spread_prefactor": spread_fit.prefactor,
        "final_risk": final.values.tolist(),
        "final_risk_error": final_err.values.tolist(),
    }


def _density_panel(ax, density, vmax, title):
    ax.pcolormesh(
        density["m_bin"],
        density["q_bin"],
        density.transpose("q_bin", "m_bin"),
        vmin=0,
        vmax=vmax,
        shading="auto",
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("m (overlap with the teacher)")
    ax.set_ylabel("q = |w|^2 / d")


def draw(datasets, numbers):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    particles, reduced = datasets["meanfield_particles"], datasets["meanfield_reduced"]
    k_max = int(particles["K"].max())
    dens = particles["density"].isel(teacher=0).sel(K=k_max).mean("seed")
    dens_red = reduced["density"].isel(teacher=0).sel(K=k_max).mean("seed")
    times = [float(particles["time"].sel(time=t, method="nearest")) for t in SHOWN_TIMES]
    vmax = float(dens.sel(time=times).max())
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.4))
    for ax, t in zip(axes[0], times, strict=True):
        _density_panel(ax, dens.sel(time=t), vmax, f"particles, K = {k_max}: rho_t(m, q) at t = {t:g}")
    _density_panel(
        axes[1, 0], dens_red.sel(time=times[-1]), vmax, f"reduced dynamics, K = {k_max}, t = {times[-1]:g}"
    )

    ax = axes[1, 1]
    risk = particles["risk"]
    colours = plt.cm.viridis(np.linspace(0, 0.9, risk.sizes["K"]))
    for c, k in zip(colours, risk["K"].values, strict=True):
        mean, err = twolayer.mean_and_error(risk.sel(K=k))
        std = risk.sel(K=k).std("seed")
        ax.plot(mean["time"], mean, color=c, label=f"particles K = {k}")
        ax.fill_between(mean["time"], mean - std, mean + std, color=c, alpha=0.2)
    red_mean, _ = twolayer.mean_and_error(reduced["risk"].sel(K=k_max))
    ax.plot(red_mean["time"], red_mean, "k--", lw=1, label=f"reduced K = {k_max}")
    ax.set_yscale("log")
    ax.set_xlabel("t (flow time)")
    ax.set_ylabel("risk (seed mean, band: one std)")
    ax.set_title("risk against time as K grows", fontsize=9)
    ax.legend(fontsize=7)

    ks = np.array(numbers["K"], float)
    ax = axes[1, 2]
    fit = twolayer.PowerLaw(
        numbers["deviation_slope"], numbers["deviation_slope_error"], numbers["deviation_prefactor"]
    )
    unit = twolayer.PowerLaw(numbers["unit_slope"], numbers["unit_slope_error"], numbers["unit_prefactor"])
    ax.errorbar(
        ks, numbers["deviation"], numbers["deviation_error"], fmt="o", color="C0", label="risk, relative"
    )
    ax.loglog(ks, fit(ks), "C0-", lw=1, label=f"fit: slope {fit.slope:.2f} ± {fit.slope_error:.2f}")
    ax.errorbar(
        ks,
        numbers["unit_deviation"],
        numbers["unit_deviation_error"],
        fmt="s",
        color="C1",
        label="m_j, 50 units",
    )
    ax.loglog(ks, unit(ks), "C1-", lw=1, label=f"fit: slope {unit.slope:.2f} ± {unit.slope_error:.2f}")
    ax.loglog(ks, unit(ks[0]) * (ks / ks[0]) ** -0.5, "k--", lw=1, label="K^(-1/2)")
    ax.loglog(ks, fit(ks[0]) * (ks / ks[0]) ** -1.0, "k:", lw=1, label="K^(-1)")
    ax.set_xlabel("K (particles)")
    ax.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels on a short log axis
    ax.set_ylabel("RMS over t of the difference (seed mean)")
    ax.set_title("particles against the reduced dynamics, same units", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[1, 3]
    spread = twolayer.PowerLaw(
        numbers["spread_slope"], numbers["spread_slope_error"], numbers["spread_prefactor"]
    )
    ax.loglog(ks, numbers["spread"], "o", label="std over seeds")
    ax.loglog(ks, spread(ks), "C0-", lw=1, label=f"fit: slope {spread.slope:.2f} ± {spread.slope_error:.2f}")
    ax.loglog(ks, spread(ks[0]) * (ks / ks[0]) ** -0.5, "k--", lw=1, label="K^(-1/2)")
    ax.set_xlabel("K (particles)")
    ax.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels on a short log axis
    ax.set_ylabel("std of the risk over seeds")
    ax.set_title(f"seed spread of the particle risk at t = {numbers['spread_time']:g}", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(
        "Mean-field particle flow of an erf committee, d = 20, M = 1 (after Loureiro 2023, Arnaboldi 2023)"
    )
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="meanfield_density",
    title="Mean-field density rho_t(m, q), risk as K grows, particles vs reduced dynamics (Arnaboldi 2023)",
    grids=("meanfield_particles", "meanfield_reduced"),
    analyse=analyse,
    draw=draw,
    small_note="K = 50...400, 4 seeds",
)

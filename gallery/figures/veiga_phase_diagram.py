"""The (kappa, delta) phase diagram of one-pass SGD (Veiga et al. 2022; Loureiro 2022).

A width p ~ d^kappa and a learning rate gamma ~ d^-delta split the plane into regions
(docs/twolayer.md §2.3): green (kappa + delta > 0, the learning terms dominate: perfect learning
as d -> infinity, a noise-limited risk R_inf ~ lr Delta d^-(kappa + delta) at finite d,
docs/twolayer.md §8.4; the talk's d^-delta at kappa = 0), the blue line (everything O(1), the
Saad-Solla phenomenology), orange (only the SGD-noise terms at d -> infinity: M frozen, the risk
does not decrease) and red (outside the description).

Numbers:
- the kernel's `region` output against the region conditions written out independently
  (:func:`analysis.twolayer.expected_region`): the fraction of points where they agree;
- the final risk (t = 10^4) per region: median, smallest and largest;
- green: R_inf (mean of the last 5 saved times, t >= 3200, where the drift ODE has settled)
  against d at kappa = 0, delta = 0.25 and 0.5, fitted slope against -delta; one-pass SGD at
  d = 50 (and 100) beside it, the ratio of their R_inf;
- orange (kappa = 0, delta = -3/8, d = 1000, Delta = 1e-3, the talk's point): the final risk of
  SGD (seed mean), of the finite-d drift ODE and of the d -> infinity ODE.
"""

from __future__ import annotations

import numpy as np

from analysis import twolayer
from gallery.figure import Figure

# orange and red follow the same rule (docs/ode.md §2): red dashed over a wide orange line
STYLE = {"green": {}, "blue": {}, "orange": {"lw": 4}, "red": {"ls": "--"}}
SGD_DELTA = 0.5  # the delta of experiments/gallery/veiga_green_sgd.toml


def _one_seed(ds):
    return ds.isel(seed=0, drop=True) if "seed" in ds.dims else ds


def analyse(datasets):
    diagram = _one_seed(datasets["veiga_phase_diagram"])
    region = diagram.region.transpose("kappa", "delta").values
    kk, dd = np.meshgrid(diagram.kappa.values, diagram.delta.values, indexing="ij")
    expected = twolayer.expected_region(kk, dd)
    final = diagram.risk.isel(time=-1).transpose("kappa", "delta").values
    per_region = {}
    for code, name in twolayer.REGIONS.items():
        values = final[region == code]
        if len(values):
            per_region[name] = {
                "points": int(len(values)),
                "median": float(np.median(values)),
                "min": float(values.min()),
                "max": float(values.max()),
            }

    green = datasets["veiga_green_ode"].risk
    r_inf, r_inf_err = twolayer.mean_and_error(twolayer.asymptotic_risk(green))
    fits = {}
    for delta in green["delta"].values:
        r = r_inf.sel(delta=delta)
        fits[f"{delta:g}"] = twolayer.fit_power_law(r["d"].values, r.values).as_dict()
    sgd = datasets["veiga_green_sgd"].risk
    sgd_inf, sgd_inf_err = twolayer.mean_and_error(twolayer.asymptotic_risk(sgd))
    ode_at = r_inf.sel(delta=SGD_DELTA, d=sgd_inf["d"].values)

    orange_ode = datasets["veiga_orange_ode"].risk.isel(time=-1)
    orange_sgd = datasets["veiga_orange_sgd"].risk.isel(time=-1)
    sgd_final, sgd_final_err = twolayer.mean_and_error(orange_sgd)
    limit, _ = twolayer.mean_and_error(orange_ode.sel(region_terms=True))
    drift, _ = twolayer.mean_and_error(orange_ode.sel(region_terms=False))
    return {
        "region_points": int(region.size),
        "region_agreement": float(np.mean(region == expected)),
        "final_risk_by_region": per_region,
        "max_accepted_steps": float(diagram.accepted_steps.max()) if "accepted_steps" in diagram else None,
        "green_d": green["d"].values.tolist(),
        "green_r_inf": {f"{x:g}": r_inf.sel(delta=x).values.tolist() for x in green["delta"].values},
        "green_fit": fits,
        "green_sgd_delta": SGD_DELTA,
        "green_sgd_d": sgd_inf["d"].values.tolist(),
        "green_sgd_r_inf": sgd_inf.values.tolist(),
        "green_sgd_r_inf_error": sgd_inf_err.values.tolist(),
        "green_sgd_over_ode": (sgd_inf / ode_at).values.tolist(),
        "orange_d": sgd_final["d"].values.tolist(),
        "orange_sgd_final": sgd_final.values.tolist(),
        "orange_sgd_final_error": sgd_final_err.values.tolist(),
        "orange_drift_ode_final": drift.values.tolist(),
        "orange_limit_ode_final": limit.values.tolist(),
    }


def draw(datasets, numbers):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    diagram = _one_seed(datasets["veiga_phase_diagram"])
    kappa, delta = diagram["kappa"].values, diagram["delta"].values
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    k = np.linspace(0, 1, 50)
    half = 0.5 * (delta[1] - delta[0])

    def boundaries(ax, colour):
        ax.plot(k, -k, "-", color=colour, lw=1.5, label="blue line: kappa + delta = 0")
        ax.plot(k, -(k + 1) / 2, "--", color=colour, lw=1.5, label="orange / red: -delta = (kappa + 1)/2")
        ax.set_ylim(delta.min() - half, delta.max() + half)
        ax.set_xlabel("kappa (p ~ d^kappa)")
        ax.set_ylabel("delta (gamma ~ d^-delta)")

    ax = axes[0, 0]
    final = np.log10(diagram["risk"].isel(time=-1).transpose("delta", "kappa"))
    mesh = ax.pcolormesh(kappa, delta, final, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=f"log10 risk at t = {float(diagram['time'][-1]):g}")
    boundaries(ax, "w")
    ax.legend(loc="upper right", fontsize=7)
    steps = numbers["max_accepted_steps"]
    ax.set_title(f"final risk (ODE, p = 8, k = 4; at most {steps:.0f} adaptive steps a point)", fontsize=9)

    ax = axes[0, 1]
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["green", "tab:blue", "orange", "red"])
    region = diagram["region"].transpose("delta", "kappa")
    ax.pcolormesh(kappa, delta, region, shading="nearest", cmap=cmap, vmin=0.5, vmax=4.5)
    boundaries(ax, "k")
    ax.set_title(
        f"the kernel's `region`: the conditions hold at {100 * numbers['region_agreement']:.0f}% of points",
        fontsize=9,
    )

    ax = axes[0, 2]
    region = diagram["region"].values
    for code, name in twolayer.REGIONS.items():
        where = np.argwhere(diagram["region"].transpose("kappa", "delta").values == code)
        if len(where):
            i, j = where[len(where) // 2]
            r = diagram["risk"].isel(kappa=i, delta=j)
            ax.loglog(
                r["time"][1:],
                r[1:],
                color=name,
                **STYLE[name],
                label=f"{name}: kappa={kappa[i]:.2f}, delta={delta[j]:.2f}",
            )
    ax.set_xlabel("time (each point's own unit)")
    ax.set_ylabel("risk")
    ax.legend(fontsize=7)
    ax.set_title("risk against time, one point a region (d -> infinity terms)", fontsize=9)

    green = datasets["veiga_green_ode"].risk
    sgd = datasets["veiga_green_sgd"].risk
    ds = green["d"].values
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(ds)))
    ax = axes[1, 0]
    for c, d in zip(colours, ds, strict=True):
        r = green.sel(delta=0.5, d=d).isel(seed=0)
        ax.loglog(r["time"], r, color=c, lw=1, label=f"ODE d = {d}")
        if d in sgd["d"].values:
            mean, err = twolayer.mean_and_error(sgd.sel(d=d))
            ax.loglog(mean["time"], mean, color=c, lw=0, marker=".", ms=5, label=f"SGD d = {d} (seed mean)")
    ax.set_ylim(1e-7, 0.1)
    ax.set_xlabel("time (steps / d^(1 + kappa + delta))")
    ax.set_ylabel("risk")
    ax.set_title("green, kappa = 0, delta = 0.5, K = M = 4, Delta = 1e-3: finite-d drift", fontsize=9)
    ax.legend(fontsize=6, ncol=2)

    ax = axes[1, 1]
    for i, (name, fit) in enumerate(numbers["green_fit"].items()):
        values = numbers["green_r_inf"][name]
        law = twolayer.PowerLaw(fit["slope"], fit["slope_error"], fit["prefactor"])
        ax.loglog(ds, values, "o", color=f"C{i}", label=f"ODE delta = {name}")
        ax.loglog(
            ds,
            law(ds),
            "-",
            color=f"C{i}",
            lw=0.8,
            label=f"slope {fit['slope']:.3f} ± {fit['slope_error']:.3f} (expected {-float(name):g})",
        )
    ax.errorbar(
        numbers["green_sgd_d"],
        numbers["green_sgd_r_inf"],
        numbers["green_sgd_r_inf_error"],
        fmt="s",
        color="C1",
        mfc="none",
        label="SGD delta = 0.5",
    )
    ax.set_xlabel("d")
    ax.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels on a short log axis
    ax.set_ylabel("R_inf (mean of the last 5 saved times)")
    ax.set_title("green: R_inf ~ d^-(kappa + delta) (talk: d^-delta at kappa = 0)", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    ode = datasets["veiga_orange_ode"].risk
    osgd = datasets["veiga_orange_sgd"].risk
    styles = {1000: "-", 10000: "--"}
    ax.loglog(
        ode["time"][1:],
        ode.sel(region_terms=True).isel(d=0, seed=0)[1:],
        "k-",
        lw=2,
        label="ODE, d -> infinity terms",
    )
    for d in osgd["d"].values:
        ls = styles.get(int(d), ":")
        for s in osgd["seed"].values:
            ax.loglog(
                osgd["time"][1:],
                osgd.sel(d=d, seed=s)[1:],
                color="orange",
                lw=0.8,
                ls=ls,
                label=f"SGD d = {d}" if s == 0 else None,
            )
        ax.loglog(
            ode["time"][1:],
            ode.sel(region_terms=False, d=d).isel(seed=0)[1:],
            color="C0",
            lw=1,
            ls=ls,
            label=f"ODE finite-d drift, d = {d}",
        )
    ax.set_xlabel("time (steps / d^(1 + 2 (kappa + delta)))")
    ax.set_ylabel("risk")
    ax.set_title("orange, kappa = 0, delta = -3/8, Delta = 1e-3: strong finite-size effects", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle("Phase diagram of one-pass SGD in two-layer networks (after Veiga et al. 2022)")
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="veiga_phase_diagram",
    title="(kappa, delta) phase diagram: regions, final risk, R_inf ~ d^-delta, orange at finite d (Veiga)",
    grids=(
        "veiga_phase_diagram",
        "veiga_green_ode",
        "veiga_green_sgd",
        "veiga_orange_ode",
        "veiga_orange_sgd",
    ),
    analyse=analyse,
    draw=draw,
    small_note="8 x 8 diagram; one ODE seed, SGD at d = 50 (green) and d = 1000 (orange), 2 seeds",
)

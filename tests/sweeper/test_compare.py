"""sweeper.compare and `sweeper compare`: theory against simulation, point by point."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import sweeper
from sweeper import api, comparison
from sweeper.cli import main
from sweeper.errors import SweeperError
from sweeper.grid_file import parse_spec

RELAX = """
kernel = "relaxation"
name = "{name}"
seeds = {seeds}
[params]
t_max = 2.0
n_times = 5
{noise}
x0 = {x0}
[sweep]
rate = [0.5, 1.0]
{extra}
[run]
workers = 0
"""


def relax(tmp_path, name, seeds=1, noise=0.0, x0=1.0, extra=""):
    fixed = "" if "noise" in extra else f"noise = {noise}"
    text = RELAX.format(name=name, seeds=seeds, noise=fixed, x0=x0, extra=extra)
    spec = parse_spec(text).with_options(store=str(tmp_path / f"{name}.zarr"))
    api.sweep(spec, progress=False)
    return spec.options.store


@pytest.fixture(scope="module")
def relax_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("relax")
    return {
        "theory": relax(tmp, "theory"),  # noiseless: the exact curve, one seed, zero error
        # `noise`: an axis of the simulation only (the theory fixes it to 0)
        "sim": relax(tmp, "sim", seeds=8, noise=0.0, extra="noise = [0.1, 0.2]"),
        "wrong": relax(tmp, "wrong", x0=2.0),
    }


def test_side_by_side_with_errors_and_deviation(relax_pair):
    ds = sweeper.compare(relax_pair["theory"], relax_pair["sim"])
    assert list(ds.kernel.values) == ["relaxation (theory)", "relaxation (sim)"]  # same kernel: grid names
    assert ds.x.dims == (
        "kernel",
        "rate",
        "time",
        "noise",
    )  # the theory broadcast along the simulation's `noise`
    assert (ds.n_seeds.sel(kernel="relaxation (sim)") == 8).all()
    sim = sweeper.open(relax_pair["sim"])
    np.testing.assert_allclose(ds.x.isel(kernel=1), sim.x.mean("seed").transpose("rate", "time", "noise"))
    sem = sim.x.std("seed", ddof=1) / np.sqrt(8)
    np.testing.assert_allclose(ds.x_error.isel(kernel=1), sem.transpose("rate", "time", "noise"))
    assert (ds.x_error.isel(kernel=0) == 0).all()  # one noiseless seed, no declared error
    expected = (ds.x.isel(kernel=0) - ds.x.isel(kernel=1)) / ds.x_error.isel(kernel=1)
    np.testing.assert_allclose(ds.x_deviation_sigma, expected)
    # noise 0.1 around the exact curve: t-statistics with 7 dof on 40 points; |t| > 5 has p = 0.2%
    assert float(abs(ds.x_deviation_sigma).max()) < 5
    wrong = sweeper.compare(relax_pair["wrong"], relax_pair["sim"])
    # x0 1.3 against 1.0 at t = 0: 0.3 / (0.1 / sqrt(8)) = 8.5 sigma at the least
    assert float(abs(wrong.x_deviation_sigma).max()) > 8
    assert "x0 2.0 vs 1.0" in wrong.attrs["notes"]


def test_select_a_simulation_only_axis(relax_pair):
    ds = sweeper.compare(relax_pair["theory"], relax_pair["sim"], select={"noise": 0.2})
    assert "noise" not in ds.dims and json.loads(ds.attrs["select"]) == {"noise": 0.2}


def test_outputs_on_one_side_kept_with_a_note(relax_pair):
    theory = sweeper.open(relax_pair["theory"]).drop_vars("final")
    ds = sweeper.compare(theory, relax_pair["sim"])
    assert json.loads(ds.attrs["only_in_simulation"]) == ["final"]
    assert "kernel" not in ds.final.dims and ds.final.notnull().all()
    assert "only in the simulation" in ds.final.attrs["note"]
    assert "final_deviation_sigma" not in ds


def test_stores_that_do_not_pair_are_refused(relax_pair):
    shifted = sweeper.open(relax_pair["theory"]).assign_coords(rate=[0.5, 2.0])
    with pytest.raises(SweeperError, match=r"do not pair point by point: `rate` is \[0.5, 2.0\]"):
        sweeper.compare(shifted, relax_pair["sim"])


def test_a_single_seed_simulation_has_no_sigma(relax_pair):
    one_seed = sweeper.open(relax_pair["sim"]).isel(seed=[0])
    ds = sweeper.compare(relax_pair["theory"], one_seed)
    assert ds.x_deviation_sigma.isel(time=slice(1, None)).isnull().all()  # unknown error, not zero
    assert ds.x_deviation_relative.notnull().all()
    assert "sigma n/a" in comparison.describe(ds)


def test_no_output_in_common_is_refused(relax_pair):
    theory = sweeper.open(relax_pair["theory"]).rename({"x": "y", "modes": "w", "final": "z"})
    with pytest.raises(SweeperError, match="no output in common"):
        sweeper.compare(theory, relax_pair["sim"])


def test_cli_prints_the_worst_deviation_and_where(relax_pair):
    runner = CliRunner()
    result = runner.invoke(main, ["compare", relax_pair["wrong"], relax_pair["sim"], "--select", "noise=0.1"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("x "))
    assert "sigma at rate=" in line and ", time=" in line and "; relative" in line
    assert "x0 2.0 vs 1.0" in result.output
    failing = runner.invoke(main, ["compare", relax_pair["wrong"], relax_pair["sim"], "--max-sigma", "5"])
    assert failing.exit_code == 1
    bad = runner.invoke(main, ["compare", relax_pair["wrong"], relax_pair["sim"], "--select", "noise"])
    assert bad.exit_code == 1 and "expected DIM=VALUE" in bad.output


# -- a shipped theory/simulation pair, reduced ------------------------------------------------

# experiments/dmft_ridge.toml and experiments/sgd_ridge_vs_dmft.toml with t_max 5 -> 2, 11 saved
# times, 4000 trajectories in 2 blocks (from 20000 in 4), d = 1000 only.
RIDGE = """
kernel = "{kernel}"
name = "{name}"
seeds = 4
[params]
model = "glm"
teacher = "linear"
loss = "square"
ridge = 0.5
lr = {lr}
init = "warm"
m0 = 0.2
q0 = 1.04
t_max = 2.0
n_times = 11
{extra}
[[cases]]
algorithm = "gd"
b = 1.0
[[cases]]
algorithm = "sgd"
b = 0.5
[sweep]
alpha = [1.5, 3.0]
{sweep}
[run]
block_size = 4
workers = 0
"""
DMFT = {"kernel": "dmft", "extra": "n_traj = 4000\nn_blocks = 2", "sweep": ""}
SGD = {"kernel": "sgd_multipass", "extra": "", "sweep": "d = [1000]"}


def ridge(tmp_path, name, lr, **kind):
    spec = parse_spec(RIDGE.format(name=name, lr=lr, **kind)).with_options(
        store=str(tmp_path / f"{name}.zarr")
    )
    api.sweep(spec, progress=False)
    return spec.options.store


@pytest.mark.slow
def test_dmft_against_sgd_flags_the_wrong_theory_only(tmp_path):
    sim = ridge(tmp_path, "sim", 0.1, **SGD)
    right = sweeper.compare(ridge(tmp_path, "theory", 0.1, **DMFT), sim, select={"d": 1000})
    # lr 0.2 instead of 0.1: the same saved times t = step * lr, half the steps
    wrong = sweeper.compare(ridge(tmp_path, "wrong", 0.2, **DMFT), sim, select={"d": 1000})
    outputs = ["m", "Q", "train_loss", "train_error", "test_error"]
    assert set(json.loads(right.attrs["compared"])) == set(outputs)
    assert set(json.loads(right.attrs["only_in_theory"])) == {"nu", "passes", "residual"}
    assert list(right.kernel.values) == ["dmft", "sgd_multipass"]
    assert "lr 0.2 vs 0.1" in wrong.attrs["notes"] and not right.attrs["notes"]
    # dmft declares its Monte-Carlo error: for sgd its m_mc_error enters the combined error
    assert (right.m_error.sel(kernel="dmft", case="sgd") > 0).all()
    # The right theory: deviation_sigma is a t-statistic with 3 dof (4 seeds) over 88 points per
    # output, plus the O(1/d) finite-size bias of d = 1000 (about 1-3% relative here, of the order
    # of the seed error); measured worst 3.5 sigma (test_error at t = 0, where the theory is exact
    # and the simulation's Q(0) fluctuates). 6 sigma leaves room, and the runs are deterministic.
    for name in outputs:
        assert float(abs(right[f"{name}_deviation_sigma"]).max()) < 6, name
    # The wrong one (lr 0.2): 14 sigma or more on every output, 55 on the training loss (measured).
    for name in outputs:
        assert float(abs(wrong[f"{name}_deviation_sigma"]).max()) > 10, name
    assert comparison.worst_sigma(wrong) > 30 > 6 > comparison.worst_sigma(right)


def test_a_declared_error_of_zero_falls_back_to_the_spread_over_seeds():
    """`dmft` with one Monte-Carlo block a point declares m_mc_error = 0 (it knows no error of its
    own); seeds run as independent blocks then carry the error in their spread."""
    import numpy as np
    import xarray as xr

    from sweeper.comparison import seed_stats

    m = np.array([[0.5, 0.7, 0.6], [0.1, 0.1, 0.1]])  # (alpha, seed)
    declared = np.array([[0.0, 0.0, 0.0], [0.02, 0.02, 0.02]])
    ds = xr.Dataset(
        {"m": (("alpha", "seed"), m), "m_mc_error": (("alpha", "seed"), declared)},
        coords={"alpha": [1.0, 2.0], "seed": [0, 1, 2]},
    )
    mean, error = seed_stats(ds, "m")
    np.testing.assert_allclose(mean.values, [0.6, 0.1])
    np.testing.assert_allclose(error.values[0], np.std(m[0], ddof=1) / np.sqrt(3))  # the spread
    np.testing.assert_allclose(error.values[1], np.sqrt(3 * 0.02**2) / 3)  # the declared errors

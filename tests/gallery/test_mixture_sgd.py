"""The Gaussian-mixture figure, --small: DMFT learning curves within the simulations' error bars."""

import pytest

from gallery import make
from gallery.figure import grid_path
from gallery.figures.mixture_sgd import FIGURE
from sweeper.grid_file import load_spec


@pytest.mark.slow
def test_mixture_sgd_small(tmp_path):
    made = make(FIGURE, small=True, results=tmp_path, progress=False)
    assert made.png.stat().st_size > 20_000
    for d, agreement in made.numbers["agreement"].items():
        # m, Q, train loss: 60 correlated comparisons each (3 algorithms x 20 times) against 8 seeds
        # and 3 DMFT blocks; the O(1/N) bias is below the errors at N = 500 (full figure: <= 1.1 %)
        for name in ("m", "Q", "train_loss"):
            assert abs(agreement[name]["worst_sigma"]) < 4, (d, name, agreement[name])
            assert agreement[name]["within_2_sigma"] >= 0.8, (d, name, agreement[name])
        # the test error is a function of (m, Q): within 1.5 % (measured <= 1 %)
        assert abs(agreement["test_error"]["worst_relative"]) < 0.015, (d, agreement["test_error"])
        # the 0-1 training error is ~1 %, i.e. 10-20 misclassified samples at N = 500: its finite-size
        # bias is large in relative terms (measured 13-22 %), so only its scale is checked
        assert abs(agreement["train_error"]["worst_relative"]) < 0.4, (d, agreement["train_error"])
    final = made.numbers["final"]
    # persistent SGD keeps the largest training error (the figure's ordering), in the DMFT and the
    # N = 500 simulation alike: measured 40-70 % above SGD and GD at t = 20 (SGD vs GD, 3-20 %,
    # is not resolved at this size)
    for side in (0, 1):
        errors = {case: values[side] for case, values in final["train_error"].items()}
        assert errors["psgd"] > 1.2 * max(errors["sgd"], errors["gd"]), (side, errors)


def test_mixture_sgd_grids_load():
    # quick: the full and --small grids parse, and the small ones are the same grids reduced
    for stem in FIGURE.grids:
        full, small = load_spec(grid_path(stem)), load_spec(grid_path(stem, small=True))
        assert full.name == small.name == stem and full.kernel == small.kernel
        assert small.n_points <= full.n_points

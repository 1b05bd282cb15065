"""The classical-limit figure, --small: SGD at small lr follows the population gradient flow."""

import pytest

from gallery import make
from gallery.figures.classical_limit import FIGURE


@pytest.mark.slow
def test_classical_limit_small(tmp_path):
    made = make(FIGURE, small=True, results=tmp_path, progress=False)
    assert made.png.stat().st_size > 20_000
    n = made.numbers
    # At lr = 0.01 the seed-mean difference SGD - flow is within its standard error: with 6
    # paired seeds each time's ratio is t-distributed with 5 degrees of freedom (RMS 1.3), so an
    # RMS over the saved times below 2.5 (measured 1.2-1.8 at d = 5, 10, 50); a flow missing a
    # term (e.g. the lr^2 one at lr = 0.1, or a wrong time unit) is off by tens of errors.
    for z in n["z_rms"]["0.01"]:
        assert z < 2.5, n["z_rms"]
    # SGD's fluctuation around the flow is O(sqrt(lr)): the relative deviation falls by about
    # sqrt(10) = 3.2 from lr = 0.1 to 0.01 (measured 3.1, 6.5, 4.0); above 2 at every d rules out
    # a deviation that does not vanish with lr (the classical limit failing).
    for ratio in n["deviation_ratio_largest_to_smallest_lr"]:
        assert ratio > 2.0, n["deviation_ratio_largest_to_smallest_lr"]
    assert max(n["relative_deviation"]["0.01"]) < 0.05  # measured at most 2.1%

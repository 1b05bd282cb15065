"""A theory kernel and its simulation counterpart label every shared quantity the same way.

Each family declares its dims and shared outputs once (``kernels/<family>/schema.py``);
the kernels of a family pick from those declarations, so a pair cannot drift apart:
``xr.concat([theory, simulation], dim="kernel")`` lines up name by name.
"""

import pytest

from kernels.registry import get_kernel
from kernels.singlelayer import schema as singlelayer
from kernels.singlelayer.amp import schema as amp
from kernels.singlelayer.amp.params import GLMInferenceParams
from kernels.singlelayer.model import SingleLayerParams
from kernels.twolayer import schema as twolayer
from kernels.twolayer.model import TwoLayerParams

PAIRS = [
    ("dmft", "sgd_multipass", singlelayer, SingleLayerParams),
    ("ode", "sgd_online", twolayer, TwoLayerParams),
    ("meanfield", "sgd_online", twolayer, TwoLayerParams),
    ("amp", "gamp", amp, GLMInferenceParams),
]


@pytest.mark.parametrize("theory, simulation, family, family_params", PAIRS)
def test_pairs_share_the_family_declarations(theory, simulation, family, family_params):
    a, b = get_kernel(theory), get_kernel(simulation)
    shared = set(a.outputs) & set(b.outputs)
    assert shared, "a pair shares outputs"
    for name in shared:
        # same dims everywhere; the family's declaration wherever the family declares the name
        assert a.outputs[name].dims == b.outputs[name].dims, name
        if name in family.OUTPUTS and name not in ("R",):  # R: the kick conventions differ, described
            assert a.outputs[name] == family.OUTPUTS[name] == b.outputs[name], name
    for dim in {d for n in shared for d in a.outputs[n].dims}:
        assert a.dims[dim].long_name == b.dims[dim].long_name == family.DIMS[dim].long_name, dim
    # the shared parameter names mean the same: both inherit them from the family's class
    assert issubclass(a.Params, family_params) and issubclass(b.Params, family_params)

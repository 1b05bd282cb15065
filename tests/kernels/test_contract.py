"""One contract suite over every registered kernel: schema, parameters, determinism, failure."""

import dataclasses

import numpy as np
import pytest

from kernels.base import Kernel, ParameterError, Result
from kernels.registry import BUILTIN, get_kernel

NAMES = sorted(BUILTIN) + ["relaxation"]


@pytest.fixture(params=NAMES)
def kernel_class(request) -> type[Kernel]:
    return get_kernel(request.param)


def test_declares_name_version_params(kernel_class):
    assert kernel_class.name in NAMES
    assert kernel_class.version
    assert dataclasses.is_dataclass(kernel_class.Params)
    params = kernel_class.make_params()
    assert kernel_class.shape_params <= set(kernel_class.parameter_names())
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.__setattr__(kernel_class.parameter_names()[0], None)


def test_unknown_parameter_lists_known_ones(kernel_class):
    with pytest.raises(
        ParameterError, match=r"Unknown parameter 'no_such_knob' for kernel .*Known parameters: "
    ):
        kernel_class.make_params(no_such_knob=1)


def test_example_runs_to_declared_schema_deterministically(kernel_class):
    kernel = kernel_class()
    params = kernel_class.make_params(**kernel_class.example)
    outputs = kernel.outputs(params)
    coords = kernel.coords(params)
    assert outputs, "a kernel declares at least one output"
    for name, out in outputs.items():
        assert out.long_name, f"{name} has no long_name"
        assert all(d in coords for d in out.dims), f"{name}: dims {out.dims} lack coords"
    first = kernel.run(params, seed=(0, 1))
    assert isinstance(first, Result)
    assert first.ok, first.message
    for name, out in outputs.items():
        assert first.outputs[name].shape == tuple(len(coords[d]) for d in out.dims)
    again = kernel_class().run(params, seed=(0, 1))
    for name in outputs:
        np.testing.assert_array_equal(first.outputs[name], again.outputs[name])

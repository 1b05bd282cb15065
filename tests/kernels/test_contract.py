"""One contract suite over every registered kernel: schema, parameters, determinism, failure.

(a) the declared schema does not change when any non-shape parameter does (so
``shape_params`` is honest: only those may not be swept); (b) a numerical failure comes
back as a failed ``Result``; (c) the example runs to the declared schema, deterministically;
(d) an unknown parameter is refused with the known ones listed.
"""

import dataclasses
import typing

import numpy as np
import pytest

from kernels.base import Kernel, ParameterError, Result
from kernels.describe import describe, parameter_meanings
from kernels.registry import BUILTIN, get_kernel

NAMES = sorted(BUILTIN) + ["relaxation", "replicas"]


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
    schema = kernel.schema(params)
    assert schema.outputs, "a kernel declares at least one output"
    for name, out in schema.outputs.items():
        assert out.long_name, f"{name} has no long_name"
        assert all(d in schema.coords for d in out.dims), f"{name}: dims {out.dims} lack coords"
    for dim, attrs in schema.coord_attrs.items():
        assert attrs["long_name"], f"dim {dim} has no long_name"
    first = kernel.run(params, seed=(0, 1))
    assert isinstance(first, Result)
    assert first.ok, first.message
    for name in schema.outputs:
        assert first.outputs[name].shape == schema.shape(name)
    again = kernel_class().run(params, seed=(0, 1))
    for name in schema.outputs:
        np.testing.assert_array_equal(first.outputs[name], again.outputs[name])


WITH_PARTS = ["dmft", "replicas"]  # the kernels whose points are combinations of parts


def test_the_kernels_with_parts_are_those_listed():
    assert sorted(n for n in NAMES if get_kernel(n).parts is not None) == WITH_PARTS


@pytest.mark.parametrize("name", WITH_PARTS)
def test_parts_combine_to_the_whole_point(name):
    """A point made of parts is their combination, whatever order they were computed in."""
    kernel_class = get_kernel(name)
    kernel = kernel_class()
    params = kernel_class.make_params(**kernel_class.example)
    assert kernel.n_parts(params) >= 2, "the example has parts to combine"
    whole = kernel.run(params, seed=(0, 1))
    parts = [kernel.run_part(params, (0, 1), part) for part in reversed(range(kernel.n_parts(params)))]
    combined = kernel.combine(params, parts[::-1])
    assert combined.ok and whole.ok
    for name, value in whole.outputs.items():
        np.testing.assert_array_equal(combined.outputs[name], value)


def test_every_parameter_and_output_is_described(kernel_class):
    # `sweeper kernels` prints each parameter's meaning from its numpydoc entry
    meanings = parameter_meanings(kernel_class.Params)
    undocumented = [n for n in kernel_class.parameter_names() if not meanings.get(n)]
    assert not undocumented, f"no `Parameters` entry for {undocumented}"
    text = describe(kernel_class)
    for name, out in kernel_class.outputs.items():
        assert f"{name}({', '.join(out.dims)})" in text
        assert out.when is None or out.when in kernel_class.shape_params, (
            f"{name}: `when` must be a shape parameter"
        )


def test_numerical_failure_is_a_failed_result(kernel_class):
    assert kernel_class.failing_example is not None, "declare `failing_example`"
    result = kernel_class().run(kernel_class.make_params(**kernel_class.failing_example), seed=0)
    assert isinstance(result, Result)
    assert not result.ok and result.message


def _other_values(value, hint):
    """Candidate values of a parameter's type other than ``value`` (a grid could sweep to them)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return []  # a grid file has no None: such a parameter is either unset or set to a number
    if origin in (typing.Union, type(int | None)):
        inner = [a for a in args if a is not type(None)]
        return [v for a in inner for v in _other_values(value, a)]
    if origin is typing.Literal:
        return [a for a in args if a != value]
    if hint is bool:
        return [not value]
    if hint is int:
        return [value + 1, 2 * value, max(1, value - 1), 1, 3]
    if hint is float:
        return [1.5 * value, 0.5 * value, value + 0.25, value - 0.25, 0.5, 2.0, 0.0]
    return []  # strings and tuples: not swept in practice


def test_schema_depends_on_shape_parameters_only(kernel_class):
    # each non-shape parameter moved to another valid value leaves dims, coordinates, labels,
    # outputs and attrs as they were: a grid may sweep exactly the non-shape parameters
    kernel = kernel_class()
    base = kernel_class.make_params(**kernel_class.example)
    reference = kernel.schema(base)
    hints = typing.get_type_hints(kernel_class.Params)
    checked = []
    for f in dataclasses.fields(base):
        if f.name in kernel_class.shape_params:
            continue
        value = getattr(base, f.name)
        for other in _other_values(value, hints[f.name]):
            try:
                changed = kernel_class.make_params(**{**kernel_class.example, f.name: other})
            except ParameterError:
                continue
            assert kernel.schema(changed).same_as(reference), f"{f.name}: {value!r} -> {other!r}"
            checked.append(f.name)
    assert checked, "no non-shape parameter could be varied"


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), 10**400])
def test_non_finite_numbers_are_refused(kernel_class, bad):
    # every float parameter of every kernel: an absurd value is one line naming the field
    hints = typing.get_type_hints(kernel_class.Params)
    floats = [n for n in kernel_class.parameter_names() if hints[n] in (float, float | None)]
    assert floats
    for name in floats:
        with pytest.raises(ParameterError, match=rf"^{name}: expected a finite number, got "):
            kernel_class.make_params(**{name: bad})


@pytest.mark.parametrize(
    "name, values, field",
    [
        ("ode", dict(dt=1e-300), "dt"),
        ("meanfield", dict(dt=1e-300), "dt"),
        ("dmft", dict(lr=1e-300), "lr"),
        ("dmft", dict(dt=1e-300), "dt"),
        ("sgd_multipass", dict(lr=1e-300), "lr"),
        ("sgd_online", dict(d=10**9, t_max=1e4), "t_max"),
    ],
)
def test_astronomical_step_counts_are_refused_with_the_figure(name, values, field):
    # dt = 1e-300 used to overflow the sub-step count and store the result of another dt as ok
    with pytest.raises(ParameterError, match=rf"^{field}: .* is [0-9.e+]+ steps, more than the 1e\+12"):
        get_kernel(name).make_params(**values)


# The two-layer `teacher` (how the teacher's weights are drawn) shares its name with the
# teacher-unit dim: a grid sweeping it must leave out the outputs on that dim (the grid parser
# says so). No other sweepable parameter may share a name with a dim or an output.
SHARED_NAMES = {("ode", "teacher"), ("meanfield", "teacher"), ("sgd_online", "teacher")}


def test_sweepable_parameters_are_not_named_like_dims_or_outputs(kernel_class):
    sweepable = set(kernel_class.parameter_names()) - kernel_class.shape_params
    clash = sweepable & (set(kernel_class.dims) | set(kernel_class.outputs))
    assert {(kernel_class.name, n) for n in clash} <= SHARED_NAMES, clash

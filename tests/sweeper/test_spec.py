"""Grid files: parsing, point enumeration, and the wording of every friendly error."""

import dataclasses
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import registry
from kernels.registry import available, get_kernel
from sweeper.errors import SpecError
from sweeper.grid_file import load_spec, parse_spec
from sweeper.parser import RESERVED_NAMES

BASE = """
kernel = "relaxation"
name = "g"
seeds = 2
[params]
n_times = 4
"""


def test_axes_forms_and_dims():
    spec = parse_spec(
        BASE
        + """
[sweep]
rate = [0.5, 1, 2]
x0 = {linspace = [0, 1, 5]}
noise = {logspace = [-3, -1, 3]}
"""
    )
    assert spec.dims == ("rate", "x0", "noise", "seed")
    assert spec.shape == (3, 5, 3, 2)
    assert spec.n_points == 90
    np.testing.assert_allclose(spec.coords()["noise"], [1e-3, 1e-2, 1e-1])
    assert spec.coords()["rate"].dtype == np.float64  # ints coerced to the kernel's float
    swept, seed = spec.point((2, 4, 0, 1))
    assert swept == {"rate": 2.0, "x0": 1.0, "noise": 1e-3}
    assert seed == (0, 1)


def test_range_seeds_list_and_cases():
    spec = parse_spec(
        """
kernel = "relaxation"
seeds = [3, 7]
grid_seed = 11
[params]
t_max = 2.0
[sweep]
x0 = {range = [1, 4]}
[[cases]]
rate = 1.0
noise = 0.0
[[cases]]
rate = 2.0
noise = 0.5
"""
    )
    assert spec.dims == ("case", "x0", "seed")
    assert spec.shape == (2, 3, 2)
    assert list(spec.coords()["seed"]) == [3, 7]
    np.testing.assert_array_equal(spec.case_coords()["noise"], [0.0, 0.5])
    swept, seed = spec.point((1, 2, 1))
    assert swept == {"rate": 2.0, "noise": 0.5, "x0": 3.0}
    assert seed == (11, 7)


def test_name_defaults_to_file_stem(grid_file):
    spec = load_spec(grid_file(BASE.replace('name = "g"\n', ""), name="my_grid.toml"))
    assert spec.name == "my_grid"
    assert spec.options.store == "results/my_grid.zarr"


def test_fingerprint_ignores_seeds_description_name_and_run_options():
    a = parse_spec(BASE + "[sweep]\nrate = [1, 2]\n")
    b = parse_spec(
        BASE.replace("seeds = 2", "seeds = 5").replace('name = "g"', 'name = "h"\ndescription = "new words"')
        + "[sweep]\nrate = [1, 2]\n[run]\nblock_size = 3\nworkers = 7\nmax_attempts = 5\ntime_limit = 9\n"
    )
    c = parse_spec(BASE + "[sweep]\nrate = [1, 3]\n")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_fingerprint_covers_resolved_defaults_not_how_they_are_written():
    implicit = parse_spec(BASE)
    explicit = parse_spec(BASE + "noise = 0.0\nx0 = 1\n")  # the defaults, written out (x0 as an int)
    negative_zero = parse_spec(BASE + "noise = -0.0\n")
    assert implicit.fingerprint() == explicit.fingerprint() == negative_zero.fingerprint()
    components = implicit.components()
    assert components["params"]["noise"] == 0.0 and components["params"]["crash"] == "never"
    assert set(components) == {"kernel", "kernel_version", "params", "axes", "cases", "grid_seed", "outputs"}


def test_fingerprint_follows_a_default_and_the_kernel_version(monkeypatch, relaxation_kernel):
    before = parse_spec(BASE)
    old, old_fingerprint = before.components(), before.fingerprint()  # as the first submit stored them

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Noisier(relaxation_kernel.Params):
        noise: float = 0.2

    monkeypatch.setattr(relaxation_kernel, "Params", Noisier)
    after = parse_spec(BASE)
    assert after.fingerprint() != old_fingerprint
    assert after.changes_from(old, before.text) == ["params.noise 0.0 -> 0.2 (a default changed)"]
    written = parse_spec(BASE + "noise = 0.2\n")  # the grid now sets it: no longer "a default"
    assert written.changes_from(old, before.text) == ["params.noise 0.0 -> 0.2"]
    monkeypatch.setattr(relaxation_kernel, "version", "2")
    assert parse_spec(BASE).changes_from(old, before.text) == [
        "kernel 'relaxation' version 1 -> 2",
        "params.noise 0.0 -> 0.2 (a default changed)",
    ]


def test_changes_name_the_fields_that_differ():
    old = parse_spec(BASE + "[sweep]\nrate = [1, 2]\nx0 = [0, 1]\n")
    assert parse_spec(BASE + "[sweep]\nrate = [1, 3]\nx0 = [0, 1]\n").changes_from(old.components()) == [
        "sweep.rate[1] 2.0 -> 3.0"
    ]
    assert parse_spec(BASE + "[sweep]\nrate = [1, 2, 3]\nx0 = [0, 1]\n").changes_from(old.components()) == [
        "sweep.rate 2 values -> 3 values"
    ]
    moved = parse_spec(BASE + "x0 = 0.5\n[sweep]\nrate = [1, 2]\n")
    assert moved.changes_from(old.components()) == ["params.x0 (swept) -> 0.5", "axes (rate, x0) -> (rate)"]
    other = parse_spec(BASE.replace("seeds = 2", "grid_seed = 4") + '[run]\noutputs = ["final", "x"]\n')
    assert other.changes_from(parse_spec(BASE).components()) == [
        "grid_seed 0 -> 4",
        "outputs ['final', 'modes', 'x'] -> ['final', 'x']",
    ]
    same = parse_spec(BASE + '[run]\noutputs = ["x", "final"]\n')
    assert same.fingerprint() == parse_spec(BASE + '[run]\noutputs = ["final", "x"]\n').fingerprint()


def test_a_long_axis_is_recorded_compactly_and_still_compared():
    spec = parse_spec(BASE + "[sweep]\nrate = {linspace = [1, 2, 1000]}\n")
    record = spec.components()["axes"][0][1]
    assert record["n"] == 1000 and record["first"] == 1.0 and record["last"] == 2.0
    nudged = parse_spec(BASE + "[sweep]\nrate = {linspace = [1, 2.5, 1000]}\n")
    assert nudged.fingerprint() != spec.fingerprint()
    assert nudged.changes_from(spec.components()) == ["sweep.rate values differ"]


# -- errors: each names the file, the key path, what was expected and what was found --------

ERRORS = [
    ("kernel = 'relaxation'\nseeds = \n", r"invalid TOML"),
    ("name = 'x'\n", r"kernel: missing: name the kernel to run"),
    ("kernel = 'nope'\n", r"kernel: Unknown kernel 'nope'\. Known kernels: .*'relaxation'"),
    ("kernel = 3\n", r"kernel: expected a string, got 3\."),
    ("kernel = 'relaxation'\nsweeps = {}\n", r"sweeps: unknown key\. Known top-level keys: kernel, name"),
    (
        "kernel = 'relaxation'\n[params]\nrat = 1.0\n",
        r"params\.rat: unknown parameter 'rat' for kernel 'relaxation'\. Known parameters: t_max, .*rate",
    ),
    ("kernel = 'relaxation'\n[params]\nrate = 'fast'\n", r"params\.rate: expected a number, got 'fast'\."),
    ("kernel = 'relaxation'\n[params]\nn_times = 2.5\n", r"params\.n_times: expected an integer, got 2\.5\."),
    ("kernel = 'relaxation'\n[params]\nnoise = -1.0\n", r"params: noise: must be non-negative, got -1\.0\."),
    ("kernel = 'relaxation'\n[params]\nshape = 'exp'\n", r"params\.shape: unknown parameter"),
    (
        "kernel = 'relaxation'\n[params]\ncrash = 'sometimes'\n",
        r"params\.crash: expected one of 'never', 'always', 'once', 'hang', got 'sometimes'\.",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = []\n",
        r"sweep\.rate: empty list; an axis needs at least one value\.",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = ['a', 'b']\n",
        r"sweep\.rate\[0\]: expected a number, got 'a'\.",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = {linspace = [0.1, 2.0]}\n",
        r"sweep\.rate: `linspace` expects \[start, stop, num\], got \[0\.1, 2\.0\]\.",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = {linspace = [0, 1, 0]}\n",
        r"sweep\.rate: `linspace` num must be a positive integer, got 0\.",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = {logspace = [0, 1, 2.5]}\n",
        r"`logspace` num must be a positive integer, got 2\.5\.",
    ),
    ("kernel = 'relaxation'\n[sweep]\nrate = {range = [0.5, 3]}\n", r"sweep\.rate: `range` expects integers"),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = {range = [3, 1]}\n",
        r"sweep\.rate: `range` \[3, 1\] is empty\.",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = {geomspace = [1, 2, 3]}\n",
        r"sweep\.rate: expected a list or one of \{linspace",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = 1.0\n",
        r"sweep\.rate: expected a list of values or a \{linspace = \.\.\.\} table, got 1\.0\.",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = [1, 2, 1]\n",
        r"sweep\.rate: duplicate values in \[1\.0, 2\.0, 1\.0\]",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nrate = [[1, 2]]\n",
        r"sweep\.rate\[0\]: expected a number, string or boolean",
    ),
    (
        "kernel = 'relaxation'\n[sweep]\nn_times = [3, 5]\n",
        r"sweep\.n_times: `n_times` sets the shape of the kernel's outputs, so it cannot be swept; fix it in \[params\]",
    ),
    (
        "kernel = 'relaxation'\n[params]\nrate = 1.0\n[sweep]\nrate = [1, 2]\n",
        r"sweep\.rate: `rate` is both fixed in \[params\] and swept",
    ),
    ("kernel = 'relaxation'\n[sweep]\nseed = [1, 2]\n", r"sweep\.seed: `seed` is a reserved dim name"),
    ("kernel = 'relaxation'\n[sweep]\nrate = [1]\nrate = [2]\n", r"invalid TOML"),
    ("kernel = 'relaxation'\nseeds = 0\n", r"seeds: expected a positive count or a list of seeds, got 0\."),
    ("kernel = 'relaxation'\nseeds = [1, 1]\n", r"seeds: duplicate seeds in \[1, 1\]\."),
    (
        "kernel = 'relaxation'\nseeds = 'many'\n",
        r"seeds: expected a positive count or a list of non-negative integers, got 'many'\.",
    ),
    ("kernel = 'relaxation'\ngrid_seed = -1\n", r"grid_seed: expected a non-negative integer, got -1\."),
    ("kernel = 'relaxation'\nparams = 3\n", r"params: expected a table `\[params\]`, got 3\."),
    (
        "kernel = 'relaxation'\n[[cases]]\nrate = 1.0\n[[cases]]\nx0 = 1.0\n",
        r"cases\[1\]: sets \['x0'\], but cases\[0\] sets \['rate'\]",
    ),
    ("kernel = 'relaxation'\n[[cases]]\nn_modes = 3\n", r"cases\[0\]\.n_modes: `n_modes` sets the shape"),
    (
        "kernel = 'relaxation'\n[run]\nblock_size = 0\n",
        r"run\.block_size: expected a positive integer, got 0\.",
    ),
    (
        "kernel = 'relaxation'\n[run]\nworkers = -2\n",
        r"run\.workers: expected a non-negative integer \(0 = in-process\), got -2\.",
    ),
    ("kernel = 'relaxation'\n[run]\nspeed = 1\n", r"run\.speed: unknown key\. Known keys: store, block_size"),
    (
        "kernel = 'relaxation'\n[run]\noutputs = ['y']\n",
        r"run\.outputs: unknown output 'y'\. Outputs of 'relaxation' here: x, modes, final\.",
    ),
    (
        "kernel = 'relaxation'\nname = '../up'\n",
        r"name: expected a plain name usable as a file name, got '\.\./up'\.",
    ),
    (
        "kernel = 'relaxation'\nseeds = 100000\n[sweep]\nrate = {linspace = [1, 2, 100000]}\n",
        r"sweep: 1e\+10 points is more than",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_name_file_key_and_problem(grid_file, text, message):
    path = grid_file(text)
    with pytest.raises(SpecError, match=message) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_file_level_errors(tmp_path):
    with pytest.raises(SpecError, match=r"missing\.toml: no such file\."):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(SpecError, match=r": is a directory, expected a grid file"):
        load_spec(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"kernel = 'relaxation'\nname = '\xe9t\xe9'\n")
    with pytest.raises(SpecError, match=r"not UTF-8 text \(byte 0xe9 on line 2\)\."):
        load_spec(bad)


def test_hostile_files_are_refused_before_they_are_read(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("kernel = 'relaxation'\n#" + "x" * 2**20 + "\n")
    with pytest.raises(SpecError, match=r"big\.toml: 1\.0 MiB is more than the 1 MiB a grid file may be"):
        load_spec(big)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(SpecError, match=r"fifo\.toml: not a regular file, expected a grid file"):
        load_spec(fifo)
    with pytest.raises(SpecError, match=r"^a\\nb\.toml: no such file\.$"):  # the message stays one line
        load_spec("a\nb.toml")


def test_overrides_are_checked_like_the_file():
    spec = parse_spec(BASE)
    with pytest.raises(SpecError, match=r"^--store: 'a\\x00b' has a control character \(U\+0000\)"):
        spec.with_options(store="a\x00b")
    with pytest.raises(SpecError, match=r"^--workers: 100000 is more than the 10000"):
        spec.with_options(workers=100000)
    assert spec.with_options(store="elsewhere.zarr", workers=2).options.store == "elsewhere.zarr"


def test_negative_zero_is_zero_everywhere():
    spec = parse_spec(BASE + "noise = -0.0\n[sweep]\nx0 = [-0.0, 1]\n[[cases]]\nrate = -0.0\n")
    assert math.copysign(1, spec.fixed["noise"]) == 1
    assert math.copysign(1, spec.axes[0].values[0]) == 1
    assert math.copysign(1, spec.cases[0]["rate"]) == 1


def test_a_kernel_dim_may_be_swept_when_no_stored_output_uses_it():
    grid = "kernel = 'ode'\n[params]\nd = 10\nt_max = 1.0\nn_times = 3\n[sweep]\nteacher = ['orthogonal', 'gaussian']\n"
    with pytest.raises(
        SpecError, match=r"sweep\.teacher: `teacher` is also a dim of kernel 'ode' \(of M, P\)"
    ):
        parse_spec(grid)
    spec = parse_spec(grid + "[run]\noutputs = ['risk', 'Q']\n")
    assert spec.dims == ("teacher", "seed")


def test_the_reserved_names_cover_the_store_s_own_variables():
    from sweeper.store import BOOKKEEPING

    assert set(BOOKKEEPING) | {"seed", "case"} <= set(RESERVED_NAMES)


def test_no_kernel_names_anything_like_a_store_variable():
    """Else a store of that kernel would hold two variables under one name."""
    for name in available():
        kernel = get_kernel(name)
        for kind, names in (("dim", kernel.dims), ("output", kernel.outputs)):
            assert not set(names) & set(RESERVED_NAMES), (
                f"kernel {name!r} has a {kind} named like a store variable"
            )


def test_a_parameter_named_like_a_store_variable_cannot_be_swept(monkeypatch, relaxation_kernel):
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class WithStatus(relaxation_kernel.Params):
        status: float = 0.0

    class Bookkept(relaxation_kernel):
        name = "bookkept"
        Params = WithStatus

    monkeypatch.setitem(registry._registered, "bookkept", Bookkept)
    with pytest.raises(
        SpecError, match=r"sweep\.status: `status` names a variable every store keeps \(status, wall"
    ):
        parse_spec("kernel = 'bookkept'\n[sweep]\nstatus = [1, 2]\n")
    with pytest.raises(SpecError, match=r"cases\[0\]\.status: `status` names a variable every store keeps"):
        parse_spec("kernel = 'bookkept'\n[[cases]]\nstatus = 1\n")
    assert parse_spec("kernel = 'bookkept'\n[params]\nstatus = 1\n").fixed == {"status": 1.0}


def test_a_parameter_named_like_one_of_the_kernels_outputs_cannot_be_swept(monkeypatch, relaxation_kernel):
    # no built-in kernel has one any more (the contract suite keeps it so: dmft's `iterations`
    # output became `passes`); a plug-in kernel may
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class WithFinal(relaxation_kernel.Params):
        final: float = 0.0

    class Clashing(relaxation_kernel):
        name = "clashing"
        Params = WithFinal

    monkeypatch.setitem(registry._registered, "clashing", Clashing)
    message = r"`final` is also an output of kernel 'clashing', and one store cannot hold both"
    with pytest.raises(SpecError, match=r"sweep\.final: " + message):
        parse_spec("kernel = 'clashing'\n[sweep]\nfinal = [1, 2]\n")
    with pytest.raises(SpecError, match=r"cases\[0\]\.final: " + message):
        parse_spec("kernel = 'clashing'\n[[cases]]\nfinal = 1\n[[cases]]\nfinal = 2\n")
    # leaving that output out makes the name free
    parse_spec("kernel = 'clashing'\n[sweep]\nfinal = [1, 2]\n[run]\noutputs = ['x']\n")
    # dmft's `iterations` is a parameter only: a convergence study may sweep it
    spec = parse_spec("kernel = 'dmft'\n[params]\nn_traj = 16\n[sweep]\niterations = [1, 2]\n")
    assert spec.dims == ("iterations", "seed")


# -- properties of point enumeration ---------------------------------------------------------

axis_lengths = st.lists(st.integers(1, 4), min_size=0, max_size=3)


def _spec(lengths, n_seeds, block_size=4):
    names = ["rate", "x0", "noise"]
    sweep = "\n".join(f"{n} = {{linspace = [1, 2, {k}]}}" for n, k in zip(names, lengths))
    return parse_spec(
        f"kernel = 'relaxation'\nseeds = {n_seeds}\n[sweep]\n{sweep}\n[run]\nblock_size = {block_size}\n"
    )


@settings(max_examples=40, deadline=None)
@given(axis_lengths, st.integers(1, 5))
def test_point_count_is_product_of_axis_lengths(lengths, n_seeds):
    spec = _spec(lengths, n_seeds)
    assert spec.n_points == math.prod(lengths) * n_seeds == len(list(spec))


@settings(max_examples=40, deadline=None)
@given(axis_lengths, st.integers(1, 5), st.data())
def test_index_to_coords_round_trip(lengths, n_seeds, data):
    spec = _spec(lengths, n_seeds)
    index = tuple(data.draw(st.integers(0, n - 1)) for n in spec.shape)
    swept, (_, seed) = spec.point(index)
    coords = spec.coords()
    back = tuple(int(np.flatnonzero(coords[d] == (seed if d == "seed" else swept[d]))[0]) for d in spec.dims)
    assert back == index


@settings(max_examples=40, deadline=None)
@given(axis_lengths, st.integers(1, 5), st.integers(1, 20))
def test_blocks_partition_the_grid(lengths, n_seeds, block_size):
    layout = _spec(lengths, n_seeds, block_size).layout
    seen = np.concatenate([layout.block_points(b) for b in layout.block_ids()])
    assert len(seen) == layout.n_points
    assert len({tuple(i) for i in seen}) == layout.n_points
    assert all(len(layout.block_points(b)) <= block_size for b in layout.block_ids())

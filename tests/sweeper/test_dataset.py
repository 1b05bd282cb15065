"""sweeper.open: a store as an analyst's dataset; several stores as one along their differing parameters."""

import json

import numpy as np
import pytest
import xarray as xr
import zarr

import sweeper
from sweeper import api, dataset
from sweeper.blocks import FAILED, OK
from sweeper.creation import quiet
from sweeper.errors import SweeperError
from sweeper.grid_file import parse_spec
from sweeper.store import Store
from sweeper.template import make_template

GRID = """
kernel = "relaxation"
name = "relax"
seeds = 2
[params]
t_max = 4.0
n_times = 5
noise = 0.1
n_modes = {n_modes}
[sweep]
rate = [-1, 0, 0.5, 1]
[[cases]]
crash = "never"
x0 = 1.0
[[cases]]
crash = "never"
x0 = 2.0
[run]
block_size = 4
workers = 0
"""


def make_store(tmp_path, name="s.zarr", n_modes=2, grid=GRID):
    spec = parse_spec(grid.format(n_modes=n_modes)).with_options(store=str(tmp_path / name))
    api.sweep(spec, progress=False)
    return spec.options.store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("open"))


def test_masking_works_where_open_zarr_fails(store):
    raw = xr.open_zarr(store, chunks=None)
    with pytest.raises(Exception, match="[Pp]romot"):  # numpy's StringDType and NaN: the reason for open
        raw.where(raw.status == OK)
    ds = sweeper.open(store)
    assert (
        ds.ok.dtype == bool and int(ds.ok.sum()) == int((ds.status == OK).sum()) == 2 * 2 * 2
    )  # cases, ok rates, seeds
    masked = ds.where(ds.ok)
    assert np.isnan(masked.x.sel(rate=-1.0)).all() and np.isfinite(masked.x.sel(rate=1.0)).all()
    assert ds.where(ds.status == OK).x.sel(rate=0.5).notnull().all()
    assert "negative rate" in ds.message.sel(rate=-1.0).values[0, 0]
    assert (ds.status.sel(rate=-1.0) == FAILED).all()


def test_cases_labelled_by_what_differs_params_kept(store):
    ds = sweeper.open(store)
    assert list(ds.case.values) == ["x0=1", "x0=2"]
    assert list(ds.x0.values) == [1.0, 2.0] and ds.x0.dims == ("case",)
    assert float(ds.x.sel(case="x0=2", rate=0.5, seed=0, time=0.0)) == pytest.approx(2.0, abs=0.5)


@pytest.mark.parametrize(
    ("cases", "labels"),
    [
        (
            [
                {"algorithm": a, "tau": t}
                for a, t in [("gd", 1.0), ("sgd", 1.0), ("psgd", 1.0), ("psgd", 10.0)]
            ],
            ["gd", "sgd", "psgd tau=1", "psgd tau=10"],
        ),
        ([{"algorithm": "gd", "b": 1.0}, {"algorithm": "sgd", "b": 0.5}], ["gd", "sgd"]),
        ([{"b": 0.5, "lr": 0.1}, {"b": 0.25, "lr": 0.1}], ["b=0.5", "b=0.25"]),
        ([{"b": 0.5}, {"b": 0.5}], ["#0", "#1"]),  # identical cases: still distinct labels
    ],
)
def test_case_labels(cases, labels):
    assert dataset.case_labels(cases) == labels


def test_short_long_names_detail_in_description(store):
    ds = sweeper.open(store)
    for name, var in ds.variables.items():
        assert len(var.attrs["long_name"]) <= 40, name
    assert ds.seed.attrs["long_name"] == "seed" and "grid_seed" in ds.seed.attrs["description"]
    assert ds.x0.attrs["long_name"] == "x0"


def test_to_netcdf_round_trip(store, tmp_path):
    ds = sweeper.open(store)
    path = tmp_path / "s.nc"
    ds.where(ds.ok).to_netcdf(path)  # masked: NaN in every float, finished_at included
    back = xr.open_dataset(path)
    assert back.finished_at.dtype.kind == "M" and back.finished_at.isnull().sum() == 8  # CF units decode
    np.testing.assert_array_equal(back.x.values, ds.where(ds.ok).x.values)
    assert json.loads(back.attrs["packages"])["numpy"] == np.__version__
    assert json.loads(back.attrs["swept_dims"]) == ["case", "rate", "seed"]
    assert list(back.case.values) == ["x0=1", "x0=2"]


def test_netcdf_safe_attrs():
    safe = dataset.netcdf_safe({"d": {"a": 1}, "b": True, "n": None, "l": [1, 2.5], "s": ["a", "b"], "e": []})
    assert safe == {"d": '{"a": 1}', "b": 1, "l": [1, 2.5], "s": '["a", "b"]', "e": "[]"}


def test_lazy_above_the_threshold_or_when_asked(store, monkeypatch):
    assert not hasattr(sweeper.open(store).x.data, "dask")
    assert hasattr(sweeper.open(store, chunks={}).x.data, "dask")
    monkeypatch.setattr(dataset, "LAZY_ABOVE", 0)
    lazy = sweeper.open(store)
    assert hasattr(lazy.x.data, "dask") and hasattr(lazy.message.data, "dask")
    assert float(lazy.where(lazy.ok).x.mean()) == pytest.approx(
        float(sweeper.open(store, chunks=None).x.mean())
    )


def test_auto_chunks_sizes_a_number_even_where_the_messages_are_larger():
    # a store of scalar outputs (the `amp` kernel's test errors): its `message` strings outweigh
    # every float variable, and dask cannot size strings
    messages = np.array(["a long enough failure message"] * 6, dtype=np.dtypes.StringDType()).reshape(2, 3)
    ds = xr.Dataset(
        {"message": (("case", "alpha"), messages), "error": (("case", "alpha"), np.zeros((2, 3)))}
    )
    assert ds.message.nbytes > ds.error.nbytes
    assert dataset.auto_chunks(ds) == {"case": 2, "alpha": 3}


def test_submit_returns_the_opened_dataset(tmp_path):
    spec = parse_spec(GRID.format(n_modes=2)).with_options(store=str(tmp_path / "s.zarr"))
    ds = sweeper.submit(spec, progress=False)
    assert "ok" in ds and list(ds.case.values) == ["x0=1", "x0=2"]


def test_not_a_store_is_one_line(tmp_path):
    with pytest.raises(SweeperError, match="no such store"):
        sweeper.open(tmp_path / "nothing.zarr")


# -- stores written before: labels and flags filled in -----------------------------------------


def test_older_store_gets_flags_and_short_names(tmp_path):
    """An `ode` store as an earlier sweeper laid it out: long labels, `region` without flags."""
    spec = parse_spec(
        'kernel = "ode"\nname = "old"\nseeds = 1\n[params]\nK = 2\nM = 2\nt_max = 1.0\nn_times = 3\n'
        "[sweep]\nlr = [0.1]\n"
    ).with_options(store=str(tmp_path / "old.zarr"))
    Store.create(spec.options.store, make_template(spec))
    group = zarr.open_group(spec.options.store, mode="r+", zarr_format=3)
    region = dict(group["region"].attrs)
    assert region["flag_meanings"] == "none green blue orange red"  # declared in the family schema now
    group["region"].attrs.clear()
    group["region"].attrs.update({"long_name": "region of the (kappa, delta) phase diagram"})
    group["seed"].attrs.update({"long_name": "seed of the point (with grid_seed, its random stream)"})
    group["seed"].attrs.pop("description", None)
    with quiet():
        zarr.consolidate_metadata(spec.options.store)
    assert "flag_values" not in xr.open_zarr(spec.options.store).region.attrs
    ds = sweeper.open(spec.options.store)
    assert ds.region.attrs["flag_values"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert ds.region.attrs["flag_meanings"] == "none green blue orange red"
    assert ds.seed.attrs["long_name"] == "seed of the point"
    assert ds.seed.attrs["description"] == "seed of the point (with grid_seed, its random stream)"
    kwargs = dataset.flag_colors(ds.region)
    assert kwargs["cmap"].colors[1:] == ["green", "blue", "orange", "red"]  # each region in its colour


def test_flag_colors_plot_a_phase_diagram():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    attrs = {"flag_values": [0.0, 1.0, 2.0], "flag_meanings": "none green red"}
    codes = xr.DataArray([[1.0, 2.0], [0.0, 1.0]], dims=("kappa", "delta"), attrs=attrs)
    mesh = codes.plot(**dataset.flag_colors(codes))
    rgba = mesh.cmap(mesh.norm(np.array([1.0, 2.0])))
    np.testing.assert_allclose(rgba[:, :3], [[0, 0.5, 0], [1, 0, 0]], atol=0.01)  # green, red
    assert [t.get_text() for t in mesh.colorbar.ax.get_yticklabels()] == ["none", "green", "red"]


# -- several stores -----------------------------------------------------------------------------


def test_open_many_stacks_along_the_differing_parameter(tmp_path):
    paths = [make_store(tmp_path, f"m{n}.zarr", n_modes=n) for n in (2, 3)]
    ds = sweeper.open(paths)
    assert ds.modes.dims[0] == "n_modes" and list(ds.n_modes.values) == [2, 3]
    assert ds.sizes["mode"] == 3  # outer join: the widest store's coordinates
    assert np.isnan(ds.modes.sel(n_modes=2, mode=2)).all()
    np.testing.assert_array_equal(
        ds.modes.sel(n_modes=3, mode=2, rate=1.0, case="x0=1"), [2.0, 2.0]
    )  # modes = arange(n_modes) * rate
    assert ds.ok.dtype == bool and ds.ok.sel(n_modes=2).sum() == 8
    assert json.loads(ds.attrs["stacked_params"]) == ["n_modes"]
    assert "n_modes" not in json.loads(ds.attrs["fixed_params"])


def test_open_many_refuses_what_cannot_align(tmp_path):
    a = make_store(tmp_path, "a.zarr", n_modes=2)
    with pytest.raises(SweeperError, match="differ in no fixed parameter"):
        sweeper.open([a, make_store(tmp_path, "b.zarr", n_modes=2)])
    no_cases = 'kernel = "relaxation"\nname = "c"\nseeds = 2\n[params]\nt_max = 4.0\nn_times = 5\n'
    no_cases += "n_modes = {n_modes}\n[sweep]\nrate = [0.5, 1]\n[run]\nworkers = 0\n"
    c = make_store(tmp_path, "c.zarr", n_modes=3, grid=no_cases)
    with pytest.raises(SweeperError, match=r"cannot align .*a\.zarr and .*c\.zarr: swept dims"):
        sweeper.open([a, c])


def test_open_many_one_store_per_width(tmp_path):
    """`ode` cannot sweep its width K (a shape parameter): one store per K, opened as one."""
    paths = []
    for k in (2, 3):
        spec = parse_spec(
            f'kernel = "ode"\nname = "k{k}"\nseeds = 2\n[params]\nK = {k}\nM = 2\nt_max = 1.0\n'
            "n_times = 3\n[sweep]\nlr = [0.1, 0.2]\n"
        ).with_options(store=str(tmp_path / f"k{k}.zarr"))
        Store.create(spec.options.store, make_template(spec))  # laid out only: the alignment is the point
        paths.append(spec.options.store)
    ds = sweeper.open(paths)
    assert list(ds.K.values) == [2, 3] and ds.Q.dims[:2] == ("K", "lr")
    assert ds.sizes["student"] == ds.sizes["student2"] == 3 and ds.sizes["teacher"] == 2
    assert not ds.ok.any()  # nothing ran: every point pending
    with pytest.raises(SweeperError, match=r"k2\.zarr and .*k2\.zarr: both hold K=2"):
        sweeper.open([paths[0], paths[1], paths[0]])
    relax = make_store(tmp_path, "relax.zarr")
    with pytest.raises(
        SweeperError, match=r"k2\.zarr and .*relax\.zarr: kernel 'ode' vs 'relaxation'; kernel_version"
    ):
        sweeper.open([paths[0], relax])

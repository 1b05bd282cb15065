"""Bad input through the real CLI: one line naming the field, exit code 1, nothing written.

`bad_grids/` is a corpus of malformed grid files; the first line of each says
what the error must contain (`# expect: ...`).
"""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sweeper.cli import main
from tests.integration.test_ray_sweep import GRID

CORPUS = sorted((Path(__file__).parent / "bad_grids").glob("*.toml"))


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path.name} lacks its `# expect:` line"
    return first.removeprefix("# expect: ")


def submit(*args: str):
    return CliRunner().invoke(main, ["submit", *args])


def test_the_corpus_is_large():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_bad_grid_is_one_line_naming_the_field_and_writes_nothing(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default store, results/NAME.zarr, would land here
    shutil.copy(path, tmp_path / path.name)
    result = submit(path.name)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    assert expected(path) in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# Refused by the store, not the grid file: `--dry-run` reports these instead of failing.
STORE_STAGE = {"too_big_for_the_disk", "store_is_the_grid_file"}


@pytest.mark.parametrize("path", [p for p in CORPUS if p.stem not in STORE_STAGE], ids=lambda p: p.stem)
def test_dry_run_refuses_it_too_and_writes_nothing(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(path, tmp_path / path.name)
    result = submit(path.name, "--dry-run")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and expected(path) in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_directory_instead_of_a_grid_file(tmp_path):
    (tmp_path / "grid.toml").mkdir()
    result = submit(str(tmp_path / "grid.toml"))
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path / 'grid.toml'}: is a directory, expected a grid file (TOML).\n"


def test_a_missing_grid_file(tmp_path):
    result = submit(str(tmp_path / "nope.toml"))
    assert result.exit_code == 1 and "nope.toml: no such file." in result.output


def test_a_store_of_another_grid_is_refused_and_left_alone(grid_file, tmp_path):
    store = tmp_path / "taken.zarr"
    first = grid_file(GRID.format(store=store), name="first.toml")
    assert submit(first, "--workers", "0", "--quiet").exit_code == 0
    before = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    other = grid_file(GRID.format(store=store).replace("noise = 0.3", "noise = 0.5"), name="other.toml")
    result = submit(other, "--workers", "0")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "holds results of another grid" in result.output and "`--overwrite`" in result.output
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == before


def test_unreachable_cluster_address_is_a_clear_error_not_a_hang(grid_file, tmp_path):
    path = grid_file(GRID.format(store=tmp_path / "never.zarr"))
    result = submit(path, "--address", "127.0.0.1:1")
    assert result.exit_code == 1
    assert "error: cannot reach a Ray cluster at '127.0.0.1:1'" in result.output
    assert not (tmp_path / "never.zarr").exists()


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--workers", "-1"], "--workers: expected a non-negative integer, got -1."),
        (["--block-size", "0"], "--block-size: expected a positive integer, got 0."),
        (["--time-limit", "0"], "--time-limit: expected a positive number of seconds, got 0.0."),
    ],
)
def test_bad_flags(grid_file, tmp_path, flag, message):
    result = submit(grid_file(GRID.format(store=tmp_path / "never.zarr")), *flag)
    assert result.exit_code == 1 and result.output == f"error: {message}\n"
    assert not (tmp_path / "never.zarr").exists()

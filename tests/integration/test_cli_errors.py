"""CLI errors that need no running Ray: one line, non-zero exit, nothing written."""

from click.testing import CliRunner

from sweeper.cli import main
from tests.integration.test_ray_sweep import GRID


def test_unreachable_cluster_address_is_a_clear_error_not_a_hang(grid_file, tmp_path):
    path = grid_file(GRID.format(store=tmp_path / "never.zarr"))
    result = CliRunner().invoke(main, ["submit", path, "--address", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert "error: cannot reach a Ray cluster at '127.0.0.1:1'" in result.output
    assert not (tmp_path / "never.zarr").exists()

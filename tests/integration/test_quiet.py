"""Quiet and tidy: a submit on a private Ray prints nothing of Ray's, leaves no temp folder
behind, keeps Ray's logs (and says where) only when it fails; a finished store is answered
without importing Ray."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sweeper import api, cluster, execution
from sweeper.errors import SweeperError
from sweeper.grid_file import parse_spec

ROOT = Path(__file__).resolve().parents[2]

# A tiny ode grid (the kernel's example, 4 points): the subprocess needs a kernel it can import.
GRID = """
kernel = "ode"
name = "quiet"
seeds = 2
[params]
K = 2
M = 2
d = 100
t_max = 5.0
n_times = 11
[sweep]
lr = [0.3, 0.5]
[run]
store = "{store}"
"""
RAY_WORDS = ("INFO", "WARNING", "Ray", "ray", "token")


def sweeper(*args: str, tmpdir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`sweeper ARGS` in its own process, with its temp dir (where a private Ray lives) in ``tmpdir``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [sys.executable, "-m", "sweeper.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def short_tmpdir():
    """A temp dir with a short path: Ray's socket paths must stay under 107 characters."""
    path = Path(tempfile.mkdtemp(prefix="swq-", dir="/tmp" if os.path.isdir("/tmp") else None))
    yield path
    cluster.remove_folder(path)


@pytest.mark.slow
def test_a_submit_on_ray_prints_nothing_of_rays_and_removes_its_temp_folder(tmp_path, short_tmpdir):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(store=tmp_path / "quiet.zarr"))
    quiet = sweeper("submit", str(grid), "--workers", "2", "--quiet", tmpdir=short_tmpdir, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout.startswith(f"{tmp_path / 'quiet.zarr'}: computed 4 points (ok 4, failed 0)")
    assert "; warm-up " in quiet.stdout and quiet.stdout.count("\n") == 1
    assert list(short_tmpdir.iterdir()) == [], "the private Ray's folder was left behind"
    # With the bar: only the bar's lines on stderr.
    bar = sweeper("submit", str(grid), "--workers", "2", "--overwrite", tmpdir=short_tmpdir, cwd=tmp_path)
    assert bar.returncode == 0, bar.stderr
    lines = [line for line in bar.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert lines and all(line.startswith("quiet: ") for line in lines), bar.stderr
    assert not any(word in bar.stderr for word in RAY_WORDS), bar.stderr
    assert list(short_tmpdir.iterdir()) == []
    # --verbose: Ray's own lines reach the terminal.
    loud = sweeper(
        "submit",
        str(grid),
        "--workers",
        "2",
        "--overwrite",
        "--verbose",
        "--quiet",
        tmpdir=short_tmpdir,
        cwd=tmp_path,
    )
    assert loud.returncode == 0, loud.stderr
    assert "Started a local Ray instance" in loud.stderr
    assert list(short_tmpdir.iterdir()) == []


@pytest.mark.slow
def test_a_failed_submit_keeps_rays_logs_and_says_where(ray_with_test_kernel, tmp_path, monkeypatch, capsys):
    ray = ray_with_test_kernel
    if ray.is_initialized():
        ray.shutdown()
    spec = parse_spec(GRID.format(store=tmp_path / "failed.zarr")).with_options(workers=1)

    def fail(*args, **kwargs):
        raise SweeperError("something went wrong")

    monkeypatch.setattr(api.scheduler, "sweep", fail)
    with pytest.raises(SweeperError, match="something went wrong"):
        api.sweep(spec, progress=False)
    assert not ray.is_initialized()
    err = capsys.readouterr().err
    assert err.startswith("note: Ray's logs are kept in ") and err.endswith(
        " (driver.log, session_*/logs); remove it when done.\n"
    ), err
    kept = Path(err.split("kept in ", 1)[1].split(" (driver.log", 1)[0])
    try:
        assert kept.name.startswith(cluster.FOLDER_PREFIX)
        assert "Started a local Ray instance" in (kept / "driver.log").read_text()
        assert any(kept.glob("session_*/logs/*"))
    finally:
        cluster.remove_folder(kept)


@pytest.mark.slow
def test_a_finished_store_is_answered_without_importing_ray(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(store=tmp_path / "done.zarr"))
    api.sweep(str(grid), workers=0, progress=False)
    script = (
        "import sys, time; start = time.perf_counter(); import sweeper; "
        f"ds = sweeper.submit({str(grid)!r}, progress=False); "
        "print('ray' in sys.modules, int(ds.status.sum()), f'{time.perf_counter() - start:.2f}')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    imported, ok, seconds = done.stdout.split()
    assert (imported, ok) == ("False", "4"), done.stdout  # status 1 (ok) at each of the 4 points
    print(f"\nfinished store resubmitted from a fresh interpreter in {seconds} s (imports included)")


@pytest.mark.slow
def test_a_notebook_keeps_its_private_ray_warm_between_submits(ray_with_test_kernel, tmp_path, monkeypatch):
    ray = ray_with_test_kernel
    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setattr(execution, "interactive", lambda: True)
    spec = parse_spec(GRID.format(store=tmp_path / "first.zarr")).with_options(workers=1)
    try:
        api.sweep(spec, progress=False)
        warm = cluster._warm
        assert ray.is_initialized() and warm is not None and warm.folder.exists()
        start = time.perf_counter()
        _, summary = api.sweep(spec.with_options(store=str(tmp_path / "second.zarr")), progress=False)
        print(f"\nsecond submit on the warm Ray: {time.perf_counter() - start:.1f} s")
        assert summary.ok == 4 and cluster._warm is warm and ray.is_initialized()
    finally:
        cluster.close_warm()
    assert not ray.is_initialized() and not warm.folder.exists()

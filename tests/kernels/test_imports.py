"""Kernels are pure computation, and the tests of pure computation import no Ray.

Both checks run in a fresh interpreter: in this one, other tests may have imported anything.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("ray", "zarr", "click", "tomllib")  # what `kernels/` never imports (STYLE.md)


def loaded(code: str, *args: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """Run `code` in a fresh interpreter; return which of HEAVY (or their submodules) it loaded."""
    report = f"\nprint('LOADED', sorted({{m for m in sys.modules if m.split('.')[0] in {HEAVY!r}}}))"
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code + report, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("LOADED ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    return ast.literal_eval(line.removeprefix("LOADED ")), done


def test_every_kernel_module_imports_no_ray_zarr_click_or_toml():
    code = (
        "import importlib, pkgutil, kernels\n"
        "for m in pkgutil.walk_packages(kernels.__path__, 'kernels.'):\n"
        "    importlib.import_module(m.name)"
    )
    modules, done = loaded(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert modules == []


def test_a_pure_math_test_file_runs_without_importing_ray():
    """The Ray fixtures are opt-in: conftest.py and a test that asks for none import no Ray."""
    path = next(ROOT.glob("tests/kernels/**/test_losses.py"))
    code = "import pytest\ncode = pytest.main(sys.argv[1:])"
    modules, done = loaded(code, str(path), "-q", "-p", "no:cacheprovider")
    assert "passed" in done.stdout and "failed" not in done.stdout, done.stdout[-2000:]
    assert [m for m in modules if m.split(".")[0] == "ray"] == []

import tempfile
from pathlib import Path

import pytest

from kernels.registry import register
from sweeper.cluster import remove_folder
from tests.sweeper import relaxation


@pytest.fixture(scope="session", autouse=True)
def relaxation_kernel():
    """The test-only kernel, registered for every test. Registering needs no Ray: tests that
    do not ask for a Ray fixture import none (tests/kernels/test_imports.py keeps it so)."""
    register(relaxation.Relaxation)
    register(relaxation.Replicas)  # a point made of parts (sweeper.parts)
    return relaxation.Relaxation


@pytest.fixture(scope="session")
def ray_with_test_kernel(relaxation_kernel):
    """Ray, with the test-only kernel shipped to its workers by value: they cannot import
    `tests`. Every fixture that starts Ray in this process asks for this one."""
    import ray

    ray.cloudpickle.register_pickle_by_value(relaxation)
    return ray


@pytest.fixture(scope="module")
def local_ray(ray_with_test_kernel):
    """A private 2-CPU Ray for one test module; never joins another cluster."""
    ray = ray_with_test_kernel

    if ray.is_initialized():
        ray.shutdown()
    folder = tempfile.mkdtemp(prefix="sweeper-test-ray-")
    ray.init(
        address="local",
        num_cpus=2,
        _temp_dir=folder,
        object_store_memory=256 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
    remove_folder(Path(folder))  # as a submit removes its private Ray's


@pytest.fixture
def grid_file(tmp_path):
    """Write grid-file text to a file; returns its path."""

    def write(text: str, name: str = "grid.toml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


INTEGRATION = Path(__file__).resolve().parent / "integration"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The slow tests in tests/integration/ (Ray clusters, SLURM jobs, drivers killed at chosen
    moments) are also `serial`: their timing matters, so they run one at a time; every other
    test may share the cores (`-m "not serial" -n 2`)."""
    for item in items:
        if item.get_closest_marker("slow") and INTEGRATION in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.serial)

import tempfile

import pytest

from kernels.registry import register
from tests.sweeper import relaxation


@pytest.fixture(scope="session", autouse=True)
def relaxation_kernel():
    """The test-only kernel, registered here and shipped to Ray workers by value."""
    import ray

    ray.cloudpickle.register_pickle_by_value(relaxation)
    register(relaxation.Relaxation)
    return relaxation.Relaxation


@pytest.fixture(scope="module")
def local_ray():
    """A private 2-CPU Ray for one test module; never joins another cluster."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        _temp_dir=tempfile.mkdtemp(prefix="sweeper-test-ray-"),
        object_store_memory=256 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def grid_file(tmp_path):
    """Write grid-file text to a file; returns its path."""

    def write(text: str, name: str = "grid.toml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write

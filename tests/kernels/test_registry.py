import pytest

from kernels import registry
from kernels.registry import UnknownKernelError, get_kernel


def test_unknown_kernel_lists_known_ones():
    with pytest.raises(
        UnknownKernelError, match=r"^Unknown kernel 'sgd-ode'\. Known kernels: .*'relaxation'"
    ):
        get_kernel("sgd-ode")


def test_entry_point_kernels_are_found(monkeypatch):
    class EntryPoint:
        name, value = "third_party", "tests.sweeper.relaxation:Relaxation"

    monkeypatch.setattr(
        registry, "entry_points", lambda group: [EntryPoint()] if group == "sweeper.kernels" else []
    )
    assert "third_party" in registry.available()
    assert get_kernel("third_party").name == "relaxation"

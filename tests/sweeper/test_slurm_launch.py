"""What each node of a SLURM job starts Ray with (`sweeper.slurm`), without SLURM or Ray.

The job script itself runs under a real SLURM in tests/integration/test_slurm.py.
"""

import socket
import subprocess
import sys

import pytest

from sweeper import slurm
from sweeper.errors import SweeperError

INTERFACES = {"lo": ["127.0.0.1"], "eth0": ["10.0.0.5"], "ib0": ["10.1.0.5"]}


@pytest.fixture
def interfaces(monkeypatch):
    def use(table):
        monkeypatch.setattr(slurm, "interface_addresses", lambda: table)

    use(INTERFACES)
    return use


@pytest.fixture
def hostname_resolves_to(monkeypatch):
    def use(*addresses):
        if not addresses:

            def fail(*args, **kwargs):
                raise socket.gaierror("unknown host")

            monkeypatch.setattr(socket, "getaddrinfo", fail)
            return
        infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in addresses]
        monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: infos)

    return use


def test_head_address_is_the_named_interfaces(interfaces, hostname_resolves_to):
    hostname_resolves_to("10.0.0.5")
    assert slurm.head_address("ib0", hostname="node1") == "10.1.0.5"


def test_an_unknown_interface_lists_the_ones_there(interfaces):
    with pytest.raises(
        SweeperError, match=r"'hsn0' has no IPv4 address .*eth0 \(10\.0\.0\.5\).*SWEEPER_IFACE"
    ):
        slurm.head_address("hsn0", hostname="node1")


def test_head_address_defaults_to_what_the_hostname_resolves_to(interfaces, hostname_resolves_to):
    hostname_resolves_to("10.0.0.5")
    assert slurm.head_address(hostname="node1") == "10.0.0.5"


def test_a_hostname_on_a_loopback_falls_back_to_the_only_other_interface(interfaces, hostname_resolves_to):
    interfaces({"lo": ["127.0.0.1"], "eth0": ["10.0.0.5"]})
    hostname_resolves_to("127.0.1.1")  # Debian's /etc/hosts
    assert slurm.head_address(hostname="node1") == "10.0.0.5"


def test_a_hostname_on_a_loopback_with_several_interfaces_is_an_error(interfaces, hostname_resolves_to):
    hostname_resolves_to("127.0.1.1")
    with pytest.raises(SweeperError) as error:
        slurm.head_address(hostname="node1")
    message = str(error.value)
    assert "'node1' resolves to 127.0.1.1" in message
    assert "eth0 10.0.0.5, ib0 10.1.0.5" in message
    assert "`SWEEPER_IFACE=ib0`" in message


def test_never_a_loopback_even_when_nothing_else_exists(interfaces, hostname_resolves_to):
    interfaces({"lo": ["127.0.0.1"]})
    hostname_resolves_to()
    with pytest.raises(SweeperError, match="resolves to nothing"):
        slurm.head_address(hostname="node1")


def test_worker_address_is_its_route_to_the_head():
    assert slurm.worker_address("127.0.0.1:6379") == "127.0.0.1"


def test_ports_are_distinct_and_free():
    ports = slurm.pick_ports(head=True)
    assert set(ports) == set(slurm.HEAD_PORTS)
    assert len(set(ports.values())) == len(ports)
    for port in ports.values():  # free: each can be bound now
        with socket.socket() as s:
            s.bind(("", port))


def test_the_head_command_pins_cpus_ports_and_temp_dir():
    ports = slurm.pick_ports(head=True)
    command = slurm.ray_start_command(node_ip="10.0.0.5", cpus=6, temp_dir="/tmp/sweeper-7", ports=ports)
    assert command[:5] == [sys.executable, "-m", "ray.scripts.scripts", "start", "--block"]
    assert "--head" in command
    for expected in ("--num-cpus=6", "--node-ip-address=10.0.0.5", "--temp-dir=/tmp/sweeper-7"):
        assert expected in command
    assert f"--port={ports['--port']}" in command
    assert "--min-worker-port=0" in command and "--max-worker-port=0" in command


def test_a_worker_command_joins_the_head():
    ports = slurm.pick_ports(head=False)
    command = slurm.ray_start_command(
        node_ip="10.0.0.6", cpus=4, temp_dir="/tmp/sweeper-7", ports=ports, head="10.0.0.5:6379"
    )
    assert "--head" not in command and "--address=10.0.0.5:6379" in command
    assert not any(c.startswith(("--port=", "--ray-client-server-port=")) for c in command)


def test_object_store_per_cpu_capped_by_the_grant():
    mib = 1024**2
    assert slurm.object_store_bytes(2) == 512 * mib
    assert slurm.object_store_bytes(64) == 2048 * mib
    assert slurm.object_store_bytes(8, memory_mb=1000) == 250 * mib  # a quarter of --mem
    assert slurm.object_store_bytes(1, memory_mb=100) == slurm.OBJECT_STORE_MIN


def test_wait_for_head_returns_once_it_answers(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        (tmp_path / "address").write_text(address + "\n")
        assert slurm.wait_for_head(tmp_path / "address", timeout=5) == address


def test_wait_for_head_fails_at_once_when_the_head_exited(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with pytest.raises(SweeperError, match="the Ray head exited"):
        slurm.wait_for_head(tmp_path / "address", timeout=60, pid=gone.pid)


def test_cpus_come_from_slurm(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "12")
    assert slurm._cpus(None) == 12
    monkeypatch.delenv("SLURM_CPUS_ON_NODE")
    with pytest.raises(SweeperError, match="inside a SLURM job"):
        slurm._cpus(None)

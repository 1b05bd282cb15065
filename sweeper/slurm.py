"""Ray on a SLURM allocation: the address and ports each node's Ray starts with.

The job script ``slurm/sweeper.sbatch`` calls this module on every node of the allocation
(``python -m sweeper.slurm head|worker ...``); each call picks what must be unique to its
job, runs ``ray start ... --block`` until it is signalled (``SIGTERM``, passed on to Ray,
which stops every Ray process of the node), then removes the node's temp dir; so the job
script stops a node's Ray by signalling one pid it started, and leaves nothing behind:

- **CPUs**: exactly the CPUs SLURM granted on the node (``--num-cpus``); one actor per CPU.
- **Ports**: every port a Ray node binds is picked free on that node when it starts (the
  operating system's choice, as for ``bind(0)``), and workers bind random ports: two jobs
  sharing a node do not collide, where Ray's fixed defaults (6379, 10001, 52365, workers from
  10002) would. (A port is free when picked and bound by Ray a second later: another process
  taking it in between fails the start, with Ray's error in the job's output.) Only the
  head's GCS port travels, inside the address workers join.
- **Address**: the head listens on the interface the user names; by default on the address
  its hostname resolves to, and if that is a loopback (Debian maps the hostname to
  127.0.1.1), on the machine's only other interface; several candidates are an error that
  lists them. A worker uses the interface named, or else its route to the head.
- **Temp dir**: a private directory per job and node (sockets, logs, spilled objects), so
  nothing finds or joins another job's Ray by the default ``/tmp/ray``.
- **Who may connect**: the job script gives its Ray a token of its own (``RAY_AUTH_TOKEN``),
  which ``srun`` passes to the other nodes; another user on a shared node cannot connect.

Knows nothing of grids or stores.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sweeper.errors import SweeperError

# Ports a node binds besides the ones Ray picks for itself: picked free, passed explicitly.
NODE_PORTS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)
HEAD_PORTS = ("--port", "--ray-client-server-port", "--dashboard-port", *NODE_PORTS)
# Object store per CPU, capped: sweeper ships parameters and results, never large arrays
# (the same cap as the private local Ray of `sweeper.cluster`).
OBJECT_STORE_PER_CPU = 256 * 1024**2
OBJECT_STORE_CAP = 2 * 1024**3
OBJECT_STORE_MIN = 128 * 1024**2


def interface_addresses() -> dict[str, list[str]]:
    """IPv4 addresses of each network interface of this machine."""
    try:
        import psutil
    except ImportError:  # Ray ships a copy, importable once Ray is
        importlib.import_module("ray")
        import psutil

    return {
        name: [a.address for a in addrs if a.family == socket.AF_INET]
        for name, addrs in psutil.net_if_addrs().items()
    }


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def head_address(interface: str | None = None, hostname: str | None = None) -> str:
    """The IPv4 address the head listens on: the named interface's, else the hostname's.

    Never a loopback: other nodes could not reach it (and a single-node job would become a
    cluster nobody else may join).
    """
    interfaces = interface_addresses()
    if interface:
        return _interface_address(interface, interfaces)
    hostname = hostname or socket.gethostname()
    try:
        resolved = sorted({info[4][0] for info in socket.getaddrinfo(hostname, None, socket.AF_INET)})
    except socket.gaierror:
        resolved = []
    routable = [a for a in resolved if not is_loopback(a)]
    if routable:
        return routable[0]
    others = {name: a for name, addrs in interfaces.items() for a in addrs if not is_loopback(a)}
    if len(others) == 1:
        return next(iter(others.values()))
    listing = ", ".join(f"{name} {a}" for name, a in sorted(others.items())) or "none"
    raise SweeperError(
        f"the hostname {hostname!r} resolves to {', '.join(resolved) or 'nothing'}, not an address "
        f"other nodes can reach, and this node has {len(others)} other interfaces ({listing}); "
        f"name the one the nodes talk over: `SWEEPER_IFACE=ib0` in the job script."
    )


def worker_address(head: str, interface: str | None = None) -> str:
    """A worker's IPv4 address: the named interface's, else the one its route to the head uses."""
    if interface:
        return _interface_address(interface, interface_addresses())
    host, _, port = head.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, int(port)))  # a UDP connect sends nothing: it only picks the route
        return probe.getsockname()[0]


def _interface_address(interface: str, interfaces: dict[str, list[str]]) -> str:
    addresses = interfaces.get(interface)
    if not addresses:
        known = ", ".join(f"{name} ({', '.join(a) or 'no IPv4'})" for name, a in sorted(interfaces.items()))
        raise SweeperError(
            f"network interface {interface!r} has no IPv4 address on {socket.gethostname()}; "
            f"interfaces here: {known}. Set `SWEEPER_IFACE` in the job script to one of them."
        )
    return addresses[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on this machine now (the operating system's picks)."""
    sockets = []
    try:
        for _ in range(count):  # held open together, so the picks are distinct
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def object_store_bytes(cpus: int, memory_mb: int | None = None) -> int:
    """The object store of a node with ``cpus`` CPUs, at most a quarter of SLURM's memory grant."""
    size = min(OBJECT_STORE_CAP, OBJECT_STORE_PER_CPU * max(1, cpus))
    if memory_mb:
        size = min(size, memory_mb * 1024**2 // 4)
    return max(OBJECT_STORE_MIN, size)


def pick_ports(head: bool) -> dict[str, int]:
    """A free port for each ``ray start`` port option of a head (``head=True``) or a worker."""
    names = HEAD_PORTS if head else NODE_PORTS
    return dict(zip(names, free_ports(len(names)), strict=True))


def ray_start_command(
    *,
    node_ip: str,
    cpus: int,
    temp_dir: str,
    ports: dict[str, int],
    head: str | None = None,
    memory_mb: int | None = None,
) -> list[str]:
    """``ray start --block`` for one node: the head (``head=None``) or a worker joining ``head``."""
    role = ["--head", "--include-dashboard=false"] if head is None else [f"--address={head}"]
    return [
        sys.executable,  # the Ray of this interpreter, whatever `ray` is first on PATH
        "-m",
        "ray.scripts.scripts",
        "start",
        "--block",
        *role,
        f"--node-ip-address={node_ip}",
        f"--num-cpus={cpus}",
        f"--object-store-memory={object_store_bytes(cpus, memory_mb)}",
        f"--temp-dir={temp_dir}",
        *(f"{name}={port}" for name, port in ports.items()),
        "--min-worker-port=0",  # workers bind ports the system picks, not Ray's shared 10002...
        "--max-worker-port=0",
        "--disable-usage-stats",
        "--log-style=record",
    ]


def wait_for_head(address_file: Path, timeout: float, pid: int | None = None) -> str:
    """Wait until the head wrote its address and its GCS port answers; returns HOST:PORT.

    With ``pid`` (the head's), a head that exited is an error at once, not after ``timeout``.
    """
    from sweeper.processes import pid_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise SweeperError("the Ray head exited before it answered; its error is in the job's output.")
        if address_file.exists() and (address := address_file.read_text().strip()):
            host, _, port = address.rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=1.0):
                    return address
            except OSError:
                pass
        time.sleep(0.5)
    raise SweeperError(
        f"the Ray head did not answer within {timeout:.0f} s (address file {str(address_file)!r}); "
        f"its log is in the job's output."
    )


def wait_for_nodes(address: str, nodes: int, timeout: float) -> str:
    """Wait until ``nodes`` Ray nodes are alive (or ``timeout``); returns a line saying what joined.

    The sweep starts either way: its pool grows as late nodes join.
    """
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        deadline = time.monotonic() + timeout
        while True:
            alive = [n for n in ray.nodes() if n["Alive"]]
            if len(alive) >= nodes or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        cpus = sum(int(n["Resources"].get("CPU", 0)) for n in alive)
        late = "" if len(alive) >= nodes else f" after {timeout:.0f} s (the others join as they come)"
        return f"Ray has {len(alive)} of {nodes} nodes, {cpus} CPUs{late}"
    finally:
        ray.shutdown()


def run_node(command: list[str], temp_dir: str) -> int:
    """Run one node's ``ray start --block`` until it ends or is signalled; remove ``temp_dir``."""
    # Nothing to drain when sweeper stops (its driver stopped first, and the store keeps
    # every finished point): Ray's 30 s drain on SIGTERM would only eat SLURM's KillWait.
    env = {**os.environ, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    ray = subprocess.Popen(command, env=env)
    stopped = []

    def pass_on(signum, frame):
        stopped.append(signum)
        ray.send_signal(signal.SIGTERM)  # Ray's own handler stops every Ray process of the node

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, pass_on)
    try:
        code = ray.wait()
        return 0 if stopped else code  # Ray exits 1 on the SIGTERM it was asked to stop by
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _cpus(value: int | None) -> int:
    if value is not None:
        return value
    granted = os.environ.get("SLURM_CPUS_ON_NODE")
    if not granted:
        raise SweeperError("`SLURM_CPUS_ON_NODE` is not set: run this inside a SLURM job, or pass `--cpus`.")
    return int(granted)


def _memory_mb() -> int | None:
    value = os.environ.get("SLURM_MEM_PER_NODE")
    return int(value) if value and value.isdigit() else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweeper.slurm", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    head = commands.add_parser("head", help="start the head's Ray (blocks); write its address to a file")
    head.add_argument("--address-file", type=Path, required=True)
    worker = commands.add_parser("worker", help="start a worker's Ray joining the head (blocks)")
    worker.add_argument("--address", required=True, help="the head's HOST:PORT")
    for command in (head, worker):
        command.add_argument("--temp-dir", required=True, help="this job's private Ray temp dir")
        command.add_argument("--interface", default=None, help="network interface (default: see module)")
        command.add_argument("--cpus", type=int, default=None, help="default: $SLURM_CPUS_ON_NODE")
    wait = commands.add_parser("wait", help="wait for the head; print its address")
    wait.add_argument("--address-file", type=Path, required=True)
    wait.add_argument("--timeout", type=float, default=120.0)
    wait.add_argument("--pid", type=int, default=None, help="the head's pid: fail at once if it exits")
    nodes = commands.add_parser("nodes", help="wait until this many nodes joined the head (or a timeout)")
    nodes.add_argument("--address", required=True, help="the head's HOST:PORT")
    nodes.add_argument("--nodes", type=int, required=True)
    nodes.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "wait":
            print(wait_for_head(args.address_file, args.timeout, args.pid))
            return
        if args.command == "nodes":
            print(wait_for_nodes(args.address, args.nodes, args.timeout))
            return
        if args.command == "head":
            node_ip = head_address(args.interface)
            ports = pick_ports(head=True)
            command = ray_start_command(
                node_ip=node_ip,
                cpus=_cpus(args.cpus),
                temp_dir=args.temp_dir,
                ports=ports,
                memory_mb=_memory_mb(),
            )
            args.address_file.write_text(f"{node_ip}:{ports['--port']}\n")
        else:
            command = ray_start_command(
                node_ip=worker_address(args.address, args.interface),
                cpus=_cpus(args.cpus),
                temp_dir=args.temp_dir,
                ports=pick_ports(head=False),
                head=args.address,
                memory_mb=_memory_mb(),
            )
    except SweeperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(" ".join(command), flush=True)
    sys.exit(run_node(command, args.temp_dir))


if __name__ == "__main__":
    main()

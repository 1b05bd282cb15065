"""A real SLURM on this machine, for tests: munged, slurmctld and one or two slurmd.

Everything lives in one private folder (config, keys, state, logs, sockets, spool) and
listens on ports picked free, so it neither needs nor touches a SLURM or munge the machine
runs. The daemons run in the foreground as children of the test process and are stopped
by their pids. The first node is this machine under its hostname, declared with 3 CPUs
whatever it has (``config_overrides``), so several 1-CPU jobs share it as on a real cluster node.

A second node, if asked for, is this machine again seen through a network namespace
(its own address on a veth pair, as another host on the cluster's network) and a mount
namespace in which ``node/`` is another folder (its own node-local disk: slurmd's spool,
pid file and log, and ``node/tmp``, the Ray temp dir the tests give jobs). Both nodes see
the rest of the filesystem, as cluster nodes see a shared one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel")
SECOND_HOST = ("ip", "nsenter", "unshare")  # for a second node: iproute2 and util-linux
CPUS = 3  # two one-CPU jobs and a job across both nodes fit on the first node at once


def missing() -> list[str]:
    """The SLURM and munge programs this machine lacks."""
    return [name for name in DAEMONS if _which(name) is None]


def _which(name: str) -> str | None:
    # Daemons live in sbin, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Slurm:
    """A running SLURM; :meth:`env` is what its clients (sbatch, ...) need."""

    root: Path
    node: str  # the first node: this machine, where the tests look for leftovers
    second: str | None = None  # the second node's name, if any
    netns: str | None = None
    one_node_only: str | None = None  # why there is no second node, when there is none
    daemons: list[subprocess.Popen] = field(default_factory=list)

    @property
    def tmp(self) -> Path:
        """The first node's node-local temp dir (the second's is ``node2/tmp`` seen from here)."""
        return self.root / "node" / "tmp"

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf), **extra}

    def run(self, *command: str) -> str:
        done = subprocess.run(
            [_which(command[0]), *command[1:]], env=self.env(), capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def sbatch(self, *args: str, cwd: str | os.PathLike, env: dict[str, str] | None = None) -> int:
        done = subprocess.run(
            [_which("sbatch"), "--parsable", *args],
            cwd=cwd,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            raise RuntimeError(f"sbatch {' '.join(args)} failed: {done.stderr.strip()}")
        return int(done.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, ExitCode, NodeList, ...)."""
        fields = self.run("scontrol", "show", "job", "--oneliner", str(job_id)).split()
        return dict(f.split("=", 1) for f in fields if "=" in f)

    def state(self, job_id: int) -> str:
        return self.job(job_id)["JobState"]

    def wait(self, job_id: int, timeout: float, until: tuple[str, ...] = ()) -> str:
        """Wait until the job ended (or reached a state of ``until``); returns its state."""
        ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(job_id)
            if state in ended or state in until:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.relative_to(self.root)}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted([*self.root.glob("*.log"), *self.root.glob("node*/*.log")])
        )

    def stop(self) -> None:
        """Cancel every job, then stop the daemons by their pids: slurmd, slurmctld, munged."""
        try:
            jobs = self.run("squeue", "--noheader", "--format=%i").split()
            if jobs:
                self.run("scancel", *jobs)
                deadline = time.monotonic() + 60
                while self.run("squeue", "--noheader", "--format=%i").split() and time.monotonic() < deadline:
                    time.sleep(0.5)
        except (RuntimeError, subprocess.TimeoutExpired, TypeError):
            pass  # a controller that never came up has no jobs
        for daemon in reversed(self.daemons):
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
        if self.netns:  # deleting the namespace deletes its veth pair
            subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)


def start(root: Path, two_nodes: bool = False) -> Slurm:
    """Write a config into ``root`` and start munged, slurmctld and the slurmd; returns when idle."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged refuses keys and sockets in group- or world-writable folders
    node = socket.gethostname().split(".")[0]
    slurm = Slurm(root=root, node=node)
    address = "127.0.0.1"
    if two_nodes:
        absent = [name for name in SECOND_HOST if _which(name) is None]
        if absent:
            raise RuntimeError(f"no second host without {', '.join(absent)} (iproute2, util-linux)")
        slurm.second, slurm.netns = f"{node}-b", f"sweeper-{secrets.token_hex(3)}"
        address, second_address = _make_second_host(slurm.netns)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    munge_socket = root / "munge.sock"
    ctld_port, slurmd_port = _free_ports(2)
    (root / "state").mkdir(exist_ok=True)
    for local in ("node", "node2") if two_nodes else ("node",):
        (root / local / "spool").mkdir(parents=True, exist_ok=True)
        (root / local / "tmp").mkdir(exist_ok=True)
    second = (
        f"NodeName={slurm.second} NodeAddr={second_address} CPUs={CPUS} RealMemory=2000 State=UNKNOWN\n"
        if two_nodes
        else ""
    )
    slurm.conf.write_text(
        f"""\
ClusterName=sweepertest
SlurmctldHost={node}({address})
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "node" / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "node" / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "node" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
KillWait=15
MinJobAge=3600
InactiveLimit=0
NodeName={node} NodeAddr={address} CPUs={CPUS} RealMemory=2000 State=UNKNOWN
{second}PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
    )
    env = slurm.env()
    commands = [
        [
            _which("munged"),
            "--foreground",
            "--force",
            f"--socket={munge_socket}",
            f"--key-file={key}",
            f"--log-file={root / 'munged.log'}",
            f"--pid-file={root / 'munged.pid'}",
            f"--seed-file={root / 'munged.seed'}",
        ],
        [_which("slurmctld"), "-D", "-c", "-i", "-f", str(slurm.conf)],
        [_which("slurmd"), "-D", "-f", str(slurm.conf), "-N", node],
    ]
    # The second host: its network (nsenter, not `ip netns exec`, which hides /sys/fs/cgroup
    # that slurmd needs), and its own `node/`; nsenter, unshare and sh exec, keeping the pid.
    if two_nodes:
        mount = f"mount --bind {root / 'node2'} {root / 'node'} && exec {_which('slurmd')} -D -f {slurm.conf} -N {slurm.second}"
        commands.append(
            ["nsenter", f"--net=/run/netns/{slurm.netns}", "unshare", "--mount", "sh", "-c", mount]
        )
    try:
        for command, ready in zip(commands, (munge_socket, None, None, None), strict=False):
            out = open(root / f"{Path(command[0]).name}.out", "w")  # noqa: SIM115 (the daemon keeps it)
            slurm.daemons.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
            if ready is not None:
                _until(lambda p=ready: p.exists(), 20, f"munged did not start\n{slurm.logs()}")
            else:
                time.sleep(0.5)
        _until(lambda: _node_idle(slurm), 60, f"the node never became idle\n{slurm.logs()}")
    except BaseException:
        slurm.stop()
        raise
    return slurm


def _node_idle(slurm: Slurm) -> bool:
    try:
        return set(slurm.run("sinfo", "--noheader", "--Node", "--format=%t").split()) == {"idle"}
    except (RuntimeError, subprocess.TimeoutExpired):
        return False


def _make_second_host(netns: str) -> tuple[str, str]:
    """A network namespace joined to this one by a veth pair; returns (our address, its address).

    Both ends of the pair have one name, :func:`host_interface`, as a cluster's nodes all have
    an ``ib0``: a job names one interface for every node.
    """
    subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
    ours, theirs = f"{subnet}.1", f"{subnet}.2"
    name, peer = _interface(netns), "swp-" + netns[-6:]
    inside = ["ip", "netns", "exec", netns, "ip"]
    steps = [
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", name, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", peer, "netns", netns],
        [*inside, "link", "set", peer, "name", name],
        ["ip", "addr", "add", f"{ours}/24", "dev", name],
        ["ip", "link", "set", name, "up"],
        [*inside, "addr", "add", f"{theirs}/24", "dev", name],
        [*inside, "link", "set", name, "up"],
        [*inside, "link", "set", "lo", "up"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
            raise RuntimeError(f"cannot make a second host ({' '.join(step)}): {done.stderr.strip()}")
    return ours, theirs


def _interface(netns: str) -> str:
    return "swv-" + netns[-6:]


def host_interface(slurm: Slurm) -> str:
    """The interface joining the two nodes, under one name on both: where Ray must listen."""
    return _interface(slurm.netns)


def _until(check, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.3)

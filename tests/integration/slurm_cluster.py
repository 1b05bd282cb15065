"""A real single-node SLURM on this machine, for tests: munged, slurmctld and slurmd.

Everything lives in one private folder (config, keys, state, logs, sockets, spool) and
listens on ports picked free, so it neither needs nor touches a SLURM or munge the machine
runs. The daemons run in the foreground as children of the test process and are stopped
by their pids. The node is this machine under its hostname, declared with 2 CPUs whatever
it has (``config_overrides``), so two 1-CPU jobs share it as on a real cluster node.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel")
CPUS = 2


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
    """A running single-node SLURM; :meth:`env` is what its clients (sbatch, ...) need."""

    root: Path
    node: str
    daemons: list[subprocess.Popen] = field(default_factory=list)

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
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.root.glob("*.log"))
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


def start(root: Path) -> Slurm:
    """Write a config into ``root`` and start munged, slurmctld and slurmd; returns when idle."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged refuses keys and sockets in group- or world-writable folders
    node = socket.gethostname().split(".")[0]
    slurm = Slurm(root=root, node=node)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    munge_socket = root / "munge.sock"
    ctld_port, slurmd_port = _free_ports(2)
    for folder in ("state", "spool"):
        (root / folder).mkdir(exist_ok=True)
    slurm.conf.write_text(
        f"""\
ClusterName=sweepertest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
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
NodeName={node} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory=2000 State=UNKNOWN
PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP
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
    try:
        for command, ready in zip(commands, (munge_socket, None, None), strict=True):
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
        return slurm.run("sinfo", "--noheader", "--format=%t").strip() == "idle"
    except (RuntimeError, subprocess.TimeoutExpired):
        return False


def _until(check, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.3)

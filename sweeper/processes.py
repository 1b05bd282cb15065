"""Is a process alive, and when did it start: what the lease asks of the operating system.

``psutil`` is used when installed; otherwise Linux's ``/proc``.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie has finished)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return _proc_state(pid) != "Z"  # a zombie has finished


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (s since the epoch), or ``None`` if unknown."""
    try:
        import psutil
    except ImportError:
        return _proc_started(pid)
    try:
        return round(psutil.Process(pid).create_time(), 2)
    except psutil.Error:
        return None


def _proc_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def _proc_state(pid: int) -> str | None:
    fields = _proc_fields(pid)
    return fields[0] if fields else None


def _proc_started(pid: int) -> float | None:
    fields = _proc_fields(pid)
    if not fields:
        return None
    try:
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return round(boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, StopIteration, ValueError, IndexError):
        return None

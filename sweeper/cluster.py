"""Connecting to Ray: a private local Ray by default, or a cluster at an address."""

from __future__ import annotations

import os
import signal
import tempfile
import threading

from sweeper.errors import SweeperError


def connect_ray(address: str | None, workers: int | None) -> tuple[int, bool]:
    """Start a private local Ray (no address) or join a cluster; returns (workers, started).

    A private local Ray never joins a cluster someone else runs on this machine:
    it uses ``address="local"``, its own temp dir and a capped object store.
    """
    import ray

    if ray.is_initialized():
        return workers or int(ray.cluster_resources().get("CPU", 1)), False
    if address is None:
        num_cpus = workers or os.cpu_count() or 1
        ray.init(
            address="local",
            num_cpus=num_cpus,
            _temp_dir=tempfile.mkdtemp(prefix="sweeper-ray-"),
            object_store_memory=min(2 * 1024**3, 256 * 1024**2 * max(1, num_cpus)),
            include_dashboard=False,
            log_to_driver=False,
        )
    else:
        _probe(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as exc:
            raise SweeperError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
    _stop_on_sigterm()
    return workers or int(ray.cluster_resources().get("CPU", 1)), True


def _stop_on_sigterm() -> None:
    """SIGTERM (`kill`, `scancel`, a batch system's time limit) stops the driver as Ctrl-C does.

    ``ray.init`` leaves a handler that aborts the process: no lease given back, so a driver
    started elsewhere (the next SLURM job on another node) is refused for a minute.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set a handler

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the cleanup run
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody answers (Ray itself waits minutes)."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise SweeperError(
            f"cannot reach a Ray cluster at {address!r} ({exc}); start one with `ray up cluster.yaml` "
            f"or `ray start --head`, or drop `--address` to run on a private local Ray."
        ) from None

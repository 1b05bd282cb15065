"""Connecting to Ray: a private local Ray by default, or a cluster at an address.

Quiet and tidy: Ray's own lines (its token-authentication warning, "Started a
local Ray instance", ...) go to a log file in a private folder, not to the
terminal (``verbose=True`` shows them, and the workers' output); the folder is
also the private Ray's temp dir. :meth:`RaySession.close` shuts down what this
process started and removes the folder, unless something failed: then it is
kept and its path is returned, for the user to read.

In an interactive session (a notebook) the private Ray is kept warm between
submissions instead (:func:`keep_warm`): starting one takes seconds; it is shut
down, and its folder removed, when the session ends.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from sweeper.errors import SweeperError

FOLDER_PREFIX = "sweeper-ray-"


class RaySession:
    """A Ray this process started (``started``) or joined, with its private folder and log.

    The folder is made by this process (``tempfile.mkdtemp``), used by no other driver
    (a private local Ray is reachable only through it), and removed only by this process.
    """

    def __init__(self, verbose: bool = False, said: str = ""):
        self.folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=_short_temp_dir()))
        self.owner = os.getpid()
        self.log = self.folder / "driver.log"
        self.started = False
        self.local = False  # a private local Ray (not a cluster joined at an address)
        self._logger = logging.getLogger("ray")
        self._handler = logging.FileHandler(self.log, delay=True)
        self._saved = list(self._logger.handlers)
        if not verbose:  # Ray's lines go to the file only
            for handler in self._saved:
                self._logger.removeHandler(handler)
        self._logger.addHandler(self._handler)
        if said:  # what importing Ray said (see `import_ray`)
            self.log.write_text(said)
            if verbose:
                sys.stderr.write(said)

    def close(self, failed: bool = False) -> Path | None:
        """Shut down the Ray this process started; remove the folder, or keep it if ``failed``.

        Returns the folder when it is kept (it holds ``driver.log`` and, for a private Ray,
        ``session_*/logs``), else None.
        """
        import ray

        if self.started:
            ray.shutdown()  # stops the processes this driver started, and waits for them
        self._logger.removeHandler(self._handler)
        self._handler.close()
        for handler in self._saved:
            if handler not in self._logger.handlers:
                self._logger.addHandler(handler)
        if failed:
            return self.folder
        if os.getpid() == self.owner:  # a forked child never removes its parent's folder
            remove_folder(self.folder)
        return None


def _short_temp_dir() -> str | None:
    """The temp dir, or ``/tmp`` if its path is too long for the sockets Ray puts in it.

    A Unix socket path has at most 107 bytes; Ray's is ``FOLDER/session_<date>_<pid>/sockets/
    plasma_store``, 85 bytes past a temp dir of 20 (Ray's own default is ``/tmp/ray``).
    """
    base = tempfile.gettempdir()
    return "/tmp" if len(base) > 20 and os.path.isdir("/tmp") else None


_warm: RaySession | None = None  # the private Ray kept warm for this interactive session


def keep_warm(session: RaySession) -> None:
    """Leave ``session``'s private Ray running for the next submission; close it at exit."""
    global _warm
    if _warm is None:
        atexit.register(close_warm)
    _warm = session


def close_warm() -> None:
    """Shut down the private Ray kept warm (if any) and remove its folder."""
    global _warm
    session, _warm = _warm, None
    if session is not None:
        session.close()


def remove_folder(folder: Path, patience: float = 5.0) -> bool:
    """Remove ``folder``, again while a Ray process that is still exiting writes into it."""
    deadline = time.monotonic() + patience
    while True:
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def import_ray() -> tuple[object, str]:
    """Import Ray, with what it says while it does: (ray, its words) or (ray, "") if already imported.

    In a notebook without ipywidgets, importing Ray logs "Missing packages: ['ipywidgets']"
    and lets `tqdm.auto` warn "IProgress not found": both to ``sys.stderr``, held here.
    """
    if "ray" in sys.modules:
        return sys.modules["ray"], ""
    held = io.StringIO()
    with contextlib.redirect_stderr(held), warnings.catch_warnings():
        warnings.simplefilter("always")  # shown (into `held`), not remembered as already shown
        import ray
    for handler in logging.getLogger("ray").handlers:  # made during the import: they took `held`
        if isinstance(handler, logging.StreamHandler) and handler.stream is held:
            handler.setStream(sys.stderr)
    return ray, held.getvalue()


def connect_ray(
    address: str | None, workers: int | None, verbose: bool = False
) -> tuple[int, RaySession | None]:
    """Start a private local Ray (no address) or join a cluster; returns (workers, session).

    A private local Ray never joins a cluster someone else runs on this machine: it
    uses ``address="local"``, its own temp dir and a capped object store. The session
    is None when Ray was already running in this process (its owner shuts it down).
    """
    ray, said = import_ray()
    if ray.is_initialized():  # a Ray kept warm, or one the caller started (and shuts down)
        return workers or int(ray.cluster_resources().get("CPU", 1)), None
    if _warm is not None:  # its Ray was shut down by someone else: only its folder is left
        _warm.started = False
        close_warm()
    session = RaySession(verbose, said)
    try:
        if address is None:
            num_cpus = workers or os.cpu_count() or 1
            ray.init(
                address="local",
                num_cpus=num_cpus,
                _temp_dir=str(session.folder),
                object_store_memory=min(2 * 1024**3, 256 * 1024**2 * max(1, num_cpus)),
                include_dashboard=False,
                log_to_driver=verbose,
            )
        else:
            _probe(address)
            try:
                ray.init(address=address, log_to_driver=verbose)
            except ConnectionError as exc:
                raise SweeperError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
    except BaseException:
        session.started = ray.is_initialized()
        session.close()
        raise
    session.started = True
    session.local = address is None
    _stop_on_sigterm()
    return workers or int(ray.cluster_resources().get("CPU", 1)), session


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

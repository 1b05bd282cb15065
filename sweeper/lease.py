"""One driver per store: a lease, a small JSON record at the store's root.

The record (``lease.json``) names the driver that owns the store: host, pid, the
process's start time (so a reused pid is not mistaken for the holder), the grid,
when it took the store, a heartbeat refreshed every :data:`HEARTBEAT` seconds by
a daemon thread, and a random token. A driver takes the lease before it
computes, checks it still holds it before each block write, and removes it when
it is done.

Taking is race-free on a local (or NFS) filesystem: the record is written to a
private temporary file and hard-linked into place, which fails if a lease is
already there. A holder that is gone is taken over: on the same host when its
pid is dead (or now names another process), on another host when its heartbeat
is older than :data:`STALE`. An object store has no exclusive create: there the
record is written, then read back after a pause to see who won. Heartbeats compare the
clocks of two hosts: keep them in sync (NTP); a minute of slack is allowed.

Knows nothing of zarr, Ray or the grid beyond its name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import fsspec

from sweeper.errors import StoreError
from sweeper.processes import pid_alive, process_started

LEASE = "lease.json"
HEARTBEAT = 5.0  # seconds between two heartbeats
# A heartbeat this old means the holder is gone, for holders we cannot see (another host).
# Twelve beats: a driver whose thread is starved for a minute (a long GIL-holding point)
# must not lose its store.
STALE = 12 * HEARTBEAT
SETTLE = 0.5  # seconds an object-store writer waits before reading back who won


class LeaseHeld(StoreError):
    """Another driver that is still alive owns the store."""


class LeaseLost(StoreError):
    """This driver no longer owns the store; it must stop writing."""


@dataclass(frozen=True)
class Holder:
    """The contents of a lease: who owns the store, since when, and their last sign of life."""

    host: str
    pid: int
    started: float | None  # the process's start time (s since the epoch), to detect pid reuse
    since: float
    heartbeat: float
    grid: str
    token: str

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {_clock(self.since)}, grid {self.grid!r}"

    def gone(self, now: float | None = None) -> str | None:
        """Why the holder is gone (``None`` if it may still be alive)."""
        now = time.time() if now is None else now
        if self.host == socket.gethostname():
            if not pid_alive(self.pid):
                return f"pid {self.pid} is not running"
            started = process_started(self.pid)
            if self.started is not None and started is not None and abs(started - self.started) > 1.0:
                return f"pid {self.pid} is now another process"
            return None
        if now - self.heartbeat > STALE:
            return f"no heartbeat for {now - self.heartbeat:.0f} s"
        return None


class Lease:
    """The lease of the store at ``where`` for one driver running grid ``grid``.

    ``take`` (or ``adopt`` for a store this driver has just created with
    :meth:`write_into`) starts the heartbeat; ``check`` raises :class:`LeaseLost`
    once another driver has taken the store; ``release`` removes the lease.
    """

    def __init__(self, where: str | os.PathLike, grid: str, interval: float = HEARTBEAT):
        self.where = str(where)
        self.grid = grid
        self.interval = interval
        self.token = secrets.token_hex(8)
        self.since = time.time()
        self._file = _file(self.where)
        self._held = False
        self._lost: str | None = None
        self._verified = 0.0
        self._lock = threading.Lock()  # one lease write at a time; held while the store is replaced
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- who holds it ----------------------------------------------------------------------
    def record(self) -> Holder:
        return Holder(
            host=socket.gethostname(),
            pid=os.getpid(),
            started=process_started(os.getpid()),
            since=self.since,
            heartbeat=time.time(),
            grid=self.grid,
            token=self.token,
        )

    def holder(self) -> Holder | None:
        return read_holder(self.where)

    def refuse_if_held(self) -> None:
        """Raise :class:`LeaseHeld` if a live driver holds the store; writes nothing."""
        holder = self.holder()
        if holder is not None and holder.token != self.token and holder.gone() is None:
            raise LeaseHeld(held_message(self.where, holder))

    # -- taking and giving back --------------------------------------------------------------
    def take(self) -> str | None:
        """Take the lease of an existing store; returns a note if a gone holder was taken over."""
        note = None
        for _ in range(20):  # each turn either takes the lease, refuses, or saw the lease change
            if self._file.create(self._encode()):
                break
            holder = self._file.read()
            if holder is None:  # released between our two looks
                continue
            if holder.token == self.token:
                return None
            why = holder.gone()
            if why is None:
                raise LeaseHeld(held_message(self.where, holder))
            if self._file.remove_if(holder.token, self.token):
                note = (
                    f"{self.where}: took over the store from a driver that is gone "
                    f"({holder.describe()}: {why}); computing what it left."
                )
        else:
            raise LeaseHeld(f"{self.where}: the lease keeps changing hands; try again in a minute.")
        if not self._confirm():
            return self.take()
        self._hold()
        return note

    def write_into(self, directory: str | os.PathLike) -> None:
        """Put this driver's lease into a store being created at ``directory`` (not yet in place)."""
        _file(str(directory)).write(self._encode())

    def adopt(self) -> None:
        """Start holding the lease :meth:`write_into` put into the store now in place."""
        self._hold()

    def check(self) -> None:
        """Raise :class:`LeaseLost` if another driver owns the store now; cheap enough per block."""
        # A local look costs about 10 us, a block write milliseconds: look every time. An
        # object store is a round trip away: look at most once a second.
        recent = time.monotonic() - self._verified < min(1.0, self.interval)
        if self._held and self._lost is None and not (self._file.needs_settling and recent):
            self._verify()
        if self._lost is not None:
            raise LeaseLost(
                f"{self.where}: this driver lost the store ({self._lost}) and stopped, writing "
                f"nothing more; the points it wrote are safe."
            )

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._held = False
        if self._lost is not None:
            return
        with contextlib.suppress(OSError):
            holder = self._file.read()
            if holder is not None and holder.token == self.token:
                self._file.remove_if(self.token, self.token)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No heartbeat inside this block (the store is being moved into place)."""
        with self._lock:
            yield

    # -- the heartbeat ---------------------------------------------------------------------
    def _hold(self) -> None:
        self._held = True
        self._verified = time.monotonic()
        if self._thread is not None and self._thread.is_alive():
            return  # held already: a store replaced by `--overwrite` keeps the same lease
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="sweeper-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    if not self._verify():
                        return
                    self._file.write(self._encode())
                    last_ok = time.monotonic()
                except OSError as exc:
                    # A store we cannot write to for long enough looks gone to the others.
                    if time.monotonic() - last_ok > STALE / 2:
                        self._lost = f"cannot renew the lease: {exc.strerror or exc}"
                        return

    def _verify(self) -> bool:
        """Is the lease on disk still ours? If not, remember why."""
        holder = self._file.read()
        if holder is None:
            time.sleep(0.05)  # a takeover in progress puts a foreign lease back at once
            holder = self._file.read()
        if holder is None or holder.token != self.token:
            self._lost = "its lease was removed" if holder is None else f"now held by {holder.describe()}"
            return False
        self._verified = time.monotonic()
        return True

    def _confirm(self) -> bool:
        """On an object store, wait and read back: the last writer won."""
        if not self._file.needs_settling:
            return True
        time.sleep(SETTLE)
        holder = self._file.read()
        return holder is not None and holder.token == self.token

    def _encode(self) -> bytes:
        return json.dumps(asdict(self.record()), indent=1).encode()


def read_holder(where: str | os.PathLike) -> Holder | None:
    """The lease of the store at ``where``, or ``None`` if it has none."""
    return _file(str(where)).read()


def held_message(where: str, holder: Holder) -> str:
    wait = (
        ""
        if holder.host == socket.gethostname()
        else f" (on another host: once its heartbeat is {STALE:.0f} s old)"
    )
    return (
        f"{where} is being written by another driver ({holder.describe()}); wait for it to "
        f"finish, or if that process is gone, submit again: the store of a dead driver is taken "
        f"over automatically{wait}."
    )


# -- the lease file, on a local filesystem or under an fsspec URL ---------------------------


def _file(where: str) -> _LocalFile | _RemoteFile:
    return _RemoteFile(where) if "://" in where else _LocalFile(Path(where))


def _decode(data: bytes | None) -> Holder | None:
    if not data:
        return None
    try:
        raw = json.loads(data)
        started = raw["started"]
        return Holder(
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            started=None if started is None else float(started),
            since=float(raw["since"]),
            heartbeat=float(raw["heartbeat"]),
            grid=str(raw["grid"]),
            token=str(raw["token"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


class _LocalFile:
    needs_settling = False

    def __init__(self, root: Path):
        self.path = root / LEASE

    def read(self) -> Holder | None:
        for _ in range(10):  # a lease made by `O_EXCL` is empty for an instant
            try:
                data = self.path.read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                return None
            holder = _decode(data)
            if holder is not None:
                return holder
            time.sleep(0.05)
        return _unreadable(self.path.stat().st_mtime) if self.path.exists() else None

    def create(self, data: bytes) -> bool:
        """Put ``data`` in place unless a lease is there already; atomic."""
        tmp = self._tmp("new")
        tmp.write_bytes(data)
        try:
            os.link(tmp, self.path)  # fails if the lease exists; the content is whole from the start
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links
            return self._create_exclusive(data)
        finally:
            tmp.unlink(missing_ok=True)

    def _create_exclusive(self, data: bytes) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def write(self, data: bytes) -> None:
        tmp = self._tmp("beat")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)

    def remove_if(self, token: str, mine: str) -> bool:
        """Remove the lease if it holds ``token``; race-free against another taker."""
        # Move it aside under a name only we use, then look at what we moved: if another
        # driver put a fresh lease in place since we read it, put that one back.
        aside = self._tmp(f"gone-{mine}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        moved = _decode(aside.read_bytes())
        if moved is not None and moved.token != token:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink()
            return False
        aside.unlink()
        return True

    def _tmp(self, what: str) -> Path:
        return self.path.with_name(f".{LEASE}.{what}-{os.getpid()}-{threading.get_ident()}")


class _RemoteFile:
    needs_settling = True

    def __init__(self, where: str):
        self.fs, root = fsspec.core.url_to_fs(where)
        self.path = f"{root.rstrip('/')}/{LEASE}"

    def read(self) -> Holder | None:
        try:
            data = self.fs.cat_file(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _decode(data) or _unreadable(time.time() - 2 * STALE)

    def create(self, data: bytes) -> bool:
        if self.fs.exists(self.path):
            return False
        self.fs.pipe_file(self.path, data)
        return True

    def write(self, data: bytes) -> None:
        self.fs.pipe_file(self.path, data)

    def remove_if(self, token: str, mine: str) -> bool:
        holder = self.read()
        if holder is None or holder.token != token:
            return False
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path)
        return True


def _unreadable(mtime: float) -> Holder:
    """A lease we cannot parse: gone once as old as a stale heartbeat."""
    return Holder(host="?", pid=0, started=None, since=mtime, heartbeat=mtime, grid="?", token="unreadable")


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

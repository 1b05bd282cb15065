"""A test-only kernel: noisy exponential relaxation, with switches to fail on purpose.

x(t) = x0 exp(-rate t) + noise * N(0, 1) per saved time. `rate < 0` raises,
`rate == 0` returns NaN: the two failure modes the engine must record per point;
`crash` kills the worker process (always, or once per rate value) or hangs it.
`delay` makes each point take that long, and `trace_dir` logs every computation
of a point (process id and point), so tests can count what was recomputed.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from kernels.base import Dim, Kernel, NumericalFailure, Output, check, rng
from kernels.timegrid import TIME_GRID_PARAMS, TimeGridParams, saved_times


@dataclass(frozen=True, kw_only=True)
class RelaxationParams(TimeGridParams):
    """Parameters of the test kernel.

    Parameters
    ----------
    rate
        Relaxation rate (< 0 raises, 0 gives NaN).
    x0
        Initial value.
    noise
        Standard deviation of the noise added at each saved time.
    n_modes
        Length of the `modes` output.
    crash
        `always`, `once` (per rate value) kills the worker; `hang` sleeps an hour.
    crash_dir
        Where `once` leaves its mark, so the retry succeeds.
    delay
        Seconds of sleep per point.
    trace_dir
        If set, each computation appends "pid rate x0 seed" to trace.log there.
    """

    rate: float = 1.0
    x0: float = 1.0
    noise: float = 0.0
    n_modes: int = 2
    crash: Literal["never", "always", "once", "hang"] = "never"
    crash_dir: str = ""  # where "once" leaves its mark, so the retry succeeds
    delay: float = 0.0  # seconds of sleep per point
    trace_dir: str = ""  # if set, each computation appends "pid rate x0 seed" to trace.log there

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.noise >= 0, "noise", f"must be non-negative, got {self.noise!r}.")


class Relaxation(Kernel):
    """Noisy exponential relaxation (tests only)."""

    name = "relaxation"
    version = "1"
    Params = RelaxationParams
    shape_params = TIME_GRID_PARAMS | {"n_modes"}
    example = {"n_times": 5}

    failing_example = {"n_times": 5, "rate": 0.0}

    dims = {
        "time": Dim("time", saved_times, units="1/rate"),
        "mode": Dim("mode", lambda p: np.arange(p.n_modes)),
    }
    outputs = {
        "x": Output(("time",), "relaxing quantity", units="1"),
        "modes": Output(("mode",), "mode amplitudes"),
        "final": Output((), "final value"),
    }

    def _run(self, p, seed):
        if p.trace_dir:
            line = f"{os.getpid()} {p.rate!r} {p.x0!r} {np.atleast_1d(seed)[-1]}\n".encode()
            fd = os.open(Path(p.trace_dir) / "trace.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.write(fd, line)  # one O_APPEND write per line: lines from many workers never mix
            os.close(fd)
        if p.delay:
            time.sleep(p.delay)
        if p.crash == "hang":
            time.sleep(3600)
        if p.crash == "always" or (p.crash == "once" and _first_time(p.crash_dir, p.rate)):
            os._exit(1)  # a worker process dying, as a segfault would
        if p.rate < 0:
            raise ValueError(f"negative rate {p.rate}")
        t = saved_times(p)
        x = p.x0 * np.exp(-p.rate * t) if p.rate > 0 else np.full_like(t, np.nan)
        x = x + p.noise * rng(seed, "noise").normal(size=t.shape)
        return {"x": x, "modes": np.arange(p.n_modes) * p.rate, "final": x[-1]}


def _first_time(directory: str, key: float) -> bool:
    mark = Path(directory) / f"crashed-{key}"
    if mark.exists():
        return False
    mark.touch()
    return True


class Unbuildable(Relaxation):
    """A kernel whose construction fails in every worker (tests only)."""

    name = "unbuildable"

    def __init__(self):
        raise RuntimeError("this kernel cannot be built here")


@dataclass(frozen=True, kw_only=True)
class ReplicasParams(RelaxationParams):
    """Parameters of the test kernel with parts.

    Parameters
    ----------
    replicas
        Independent noisy replicas averaged into the point (its parts).
    fail_part
        The replica that fails numerically (-1: none).
    """

    replicas: int = 2
    fail_part: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.replicas >= 1, "replicas", f"must be at least 1, got {self.replicas!r}.")


class Replicas(Relaxation):
    """The relaxation averaged over independent replicas, each a part of the point (tests only)."""

    name = "replicas"
    Params = ReplicasParams
    parts = "replicas"
    example = {"n_times": 5, "noise": 0.1}
    failing_example = {"n_times": 5, "noise": 0.1, "fail_part": 1}

    def _run_part(self, p, seed, part):
        if part == p.fail_part:
            raise NumericalFailure(f"replica {part} diverged")
        one = self._run(p, seed if part == 0 else [*np.atleast_1d(seed), part])
        return {k: v for k, v in one.items() if k != "final"}

    def _combine(self, p, parts):
        x = np.mean([part["x"] for part in parts], axis=0)
        return {"x": x, "modes": parts[0]["modes"], "final": x[-1]}

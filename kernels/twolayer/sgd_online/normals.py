"""Normal random numbers for the online simulator: xoshiro256+ and the Marsaglia-Tsang ziggurat.

Drawing the input ``x`` is most of an online SGD step at d = 1000, so the simulator
draws its normals inside its numba loop: a xoshiro256+ generator seeded from a
:func:`kernels.base.rng` stream, turned into normals by the 128-layer ziggurat of
Marsaglia & Tsang (J. Stat. Softw. 5, 2000), about 7 ns per normal against 25 ns for
numpy's generator on this machine class.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 128-layer tables of Marsaglia & Tsang's RNOR (J. Stat. Softw. 5, 2000)."""
    m1 = 2147483648.0
    dn = tn = 3.442619855899
    vn = 9.91256303526217e-3
    kn, wn, fn = np.zeros(128, np.int64), np.zeros(128), np.zeros(128)
    q = vn / math.exp(-0.5 * dn * dn)
    kn[0], kn[1] = int(dn / q * m1), 0
    wn[0], wn[127] = q / m1, dn / m1
    fn[0], fn[127] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int(dn / tn * m1)
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


ZIGGURAT = _ziggurat_tables()
_ZIG_R = 3.442620


def generator_state(gen: np.random.Generator) -> np.ndarray:
    """A xoshiro256+ state (4 uint64, not all zero) seeded from a numpy generator."""
    state = gen.integers(0, 2**64, size=4, dtype=np.uint64, endpoint=False)
    state[0] |= np.uint64(1)
    return state


@njit(cache=True)
def _next(s):
    # xoshiro256+ (Blackman & Vigna 2018); the top bits are the ones used below
    result = s[0] + s[3]
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = (s[3] << np.uint64(45)) | (s[3] >> np.uint64(19))
    return result


@njit(cache=True)
def _uniform(s):
    return (_next(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _normal_slow(s, hz, iz, kn, wn, fn):
    # RNOR's "nfix": the draw (hz, iz) missed the layer's rectangle, so it lies in the
    # wedge or (iz = 0) the tail; test it there, and only on rejection draw afresh
    while True:
        x = hz * wn[iz]
        if iz == 0:
            while True:
                x = -math.log(1.0 - _uniform(s)) / _ZIG_R
                y = -math.log(1.0 - _uniform(s))
                if y + y >= x * x:
                    break
            return _ZIG_R + x if hz > 0 else -_ZIG_R - x
        if fn[iz] + _uniform(s) * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):
            return x
        u = _next(s)
        hz = np.int64(u >> np.uint64(32)) - 2147483648
        iz = np.int64(u & np.uint64(127))
        if abs(hz) < kn[iz]:
            return hz * wn[iz]


@njit(cache=True)
def fill_normals(s, out, kn, wn, fn):
    """Fill ``out`` with standard normals from the xoshiro256+ state ``s`` (in place).

    The fast path is written inline: as a separate function call per draw numba's
    version was ~20x slower.
    """
    for i in range(out.shape[0]):
        u = _next(s)
        hz = np.int64(u >> np.uint64(32)) - 2147483648
        iz = np.int64(u & np.uint64(127))
        if abs(hz) < kn[iz]:
            out[i] = hz * wn[iz]
        else:
            out[i] = _normal_slow(s, hz, iz, kn, wn, fn)


def normals(state: np.ndarray, n: int) -> np.ndarray:
    """``n`` standard normals from a xoshiro256+ state (advanced in place); for tests."""
    out = np.empty(n)
    fill_normals(state, out, *ZIGGURAT)
    return out

"""Exponential and logarithm that the compiler can vectorise.

The library's ``exp``, ``log`` and ``pow`` are calls the compiler cannot put inside a SIMD
loop, and each costs 5-20 ns; they were half of the stay-or-switch kernel's time. The
functions here are plain arithmetic (a range reduction and a polynomial, the same method
the C library uses), so a loop over a block of customers that calls them runs four lanes
at a time: about 1.5 ns per exponential. They are accurate to about 1 ulp (``tests/
test_fastmath.py`` checks them against NumPy's over their whole range), and cover what the
kernels need: finite arguments, ``exp`` of -inf and ``log`` of 0 included.

Each is compiled as its own function, without the ``reassoc`` flag the kernels use: that
flag would let the compiler reorder the range reduction and lose its precision. The
compiler inlines them into the kernels' loops all the same (the flags stay with each
instruction).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

#: Like :data:`sim.rules.jit` but without ``reassoc`` (see the module's docstring).
exact = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"nsz", "arcp", "contract", "afn"})
#: For small functions of :func:`exp` and :func:`log`: inlined by Numba itself, so that what the
#: compiler sees in a loop is the calls to ``exp`` and ``log``, which it inlines; it would not
#: inline a function that had both already inlined (too large), and the loop would not vectorise.
composed = numba.njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"nsz", "arcp", "contract", "afn"})

U = np.uint64
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two: k * LN2_HI is exact for |k| < 2^11
LN2_LO = 1.90821492927058770002e-10
ROUND = 6755399441055744.0  # 1.5 * 2^52: adding it rounds a double to an integer held in its low bits
SQRT_HALF_BITS = U(0x3FE6A09E667F3BCD)  # the bits of sqrt(2) / 2
ONE_BITS = U(0x3FF0000000000000)


@intrinsic
def bits_of(typingctx, x):
    """The 64 bits of a double, as an unsigned integer."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def double_of(typingctx, bits):
    """The double whose 64 bits are ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@exact
def exp(x):
    """e^x: x = k ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor polynomial to r^13,
    times 2^k built in the exponent bits. 0 below -708 (and at -inf), largest at 709."""
    y = min(max(x, -708.0), 709.0)
    k = np.floor(y * LOG2E + 0.5)
    r = (y - k * LN2_HI) - k * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = double_of((bits_of(k + ROUND) - bits_of(ROUND) + U(1023)) << U(52))  # 2^k
    return p * scale if x >= -708.0 else 0.0


@exact
def log(x):
    """ln x for x >= 0 (normal numbers; -inf at 0): x = 2^k m with m in [sqrt(2)/2, sqrt(2)),
    ln m = 2 atanh(s), s = (m - 1) / (m + 1), by its series to s^21."""
    bits = bits_of(x)
    shifted = bits - SQRT_HALF_BITS + ONE_BITS  # no sign to carry: the exponent k + 1023 ends up in the top bits
    biased = shifted >> U(52)
    m = double_of(bits - (biased << U(52)) + ONE_BITS)
    k = double_of(biased + bits_of(ROUND)) - ROUND - 1023.0
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    q = 1.0 / 21.0
    q = q * z + 1.0 / 19.0
    q = q * z + 1.0 / 17.0
    q = q * z + 1.0 / 15.0
    q = q * z + 1.0 / 13.0
    q = q * z + 1.0 / 11.0
    q = q * z + 1.0 / 9.0
    q = q * z + 1.0 / 7.0
    q = q * z + 1.0 / 5.0
    q = q * z + 1.0 / 3.0
    series = 2.0 * z * q  # ln m = f - s (f - series)
    out = (k * LN2_HI + f) + (k * LN2_LO - s * (f - series))
    return out if x >= 2.2250738585072014e-308 else -np.inf


@composed
def power(x, y):
    """x^y for x >= 0: e^(y ln x)."""
    return exp(y * log(x))


# Loops over a block of numbers. A kernel calls these rather than looping itself: in a small
# function of its own the loop is sure to be inlined and vectorised, which a loop inside a
# large kernel is not.


@exact
def exp_each(x, n):
    """x[k] = e^x[k] for k < n, in place."""
    for k in range(n):
        x[k] = exp(x[k])


@exact
def power_each(x, y, n):
    """x[k] = x[k]^y for k < n, in place."""
    for k in range(n):
        x[k] = power(x[k], y)

"""The chunker's boundary scan vectorised with numpy: the fallback of the C scan (``_buzhash.c``).

Same contract as :func:`aria.apps.storage.chunker.find_candidates` (and the tests check both give
the same candidates). The vectorised hash uses a rotating frame: with ``U(q) = rotr(T[b[q]], q)``
the hash of the window ending at ``p`` is ``rotl(U(p-48) ^ ... ^ U(p-1), p-1)``, a plain sliding
XOR (six doubling steps) and one rotation per position. numpy releases the GIL for the heavy passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aria.apps.storage.chunker import BUZHASH_TABLE, WINDOW_SIZE

_TABLE = np.array(BUZHASH_TABLE, dtype=np.uint32)
#: _ROTATED[q * 256 + b] = rotr(T[b], q): the table seen from position q mod 32.
_ROTATED = np.concatenate(
    [((_TABLE >> np.uint32(q)) | (_TABLE << np.uint32(32 - q))) if q else _TABLE for q in range(32)]
).astype(np.uint32)
_SCAN_BLOCK = 32 * 1024  # measured: 32 KiB of work arrays per pass keeps them in cache
# Long enough for a sub-block plus its 47-byte overlap at any phase (0 to 31).
_PHASE = np.arange(_SCAN_BLOCK + 128, dtype=np.uint32) % np.uint32(32)
_TABLE_OFFSETS = (_PHASE * np.uint32(256)).astype(np.uint16)
_LEFT = _PHASE.copy()
_RIGHT = (np.uint32(32) - _PHASE) % np.uint32(32)


@dataclass(frozen=True)
class _Divisibility:
    """A vectorised test for ``h % d == d - 1`` with multiplications instead of divisions.

    For the odd part ``o`` of ``d``, ``(h + 1) % o == 0`` iff ``(h + 1) * inverse(o) mod 2**32 <=
    (2**32 - 1) // o`` (Granlund and Montgomery). That necessary condition prefilters every position;
    the few survivors are checked exactly.
    """

    d: int
    inverse: np.uint32
    limit: np.uint32

    @classmethod
    def of(cls, d: int) -> _Divisibility:
        odd = d >> ((d & -d).bit_length() - 1)
        inverse = pow(odd, -1, 1 << 32) if odd > 1 else 1
        limit = (2**32 - 1) // odd
        return cls(d, np.uint32(inverse), np.uint32(limit))


def find_candidates(data: bytes | bytearray | memoryview, base: int, d: int) -> np.ndarray:
    """Every position whose 48-byte window satisfies the boundary test.

    Args:
        data: Bytes at absolute offsets ``[base, base + len(data))``.
        base: The absolute offset of ``data[0]`` (the hash depends on positions modulo 32 only
            through the vectorisation, never in its result).
        d: The discriminator.

    Returns:
        Sorted absolute positions ``p`` in ``[base + 48, base + len(data)]`` such that the hash of
        the bytes ``[p - 48, p)`` is ``d - 1`` modulo ``d``, as an int64 array.

    Pure and thread-safe; numpy releases the GIL for the heavy passes.
    """
    test = _Divisibility.of(d)
    view = np.frombuffer(data, dtype=np.uint8)
    found: list[np.ndarray] = []
    total = len(view)
    step = _SCAN_BLOCK
    size = min(total, step + WINDOW_SIZE - 1)
    u = np.empty(size, np.uint32)
    a = np.empty(size, np.uint32)
    b = np.empty(size, np.uint32)
    index = np.empty(size, np.uint16)
    hits = np.empty(size, np.bool_)
    start = 0
    while start + WINDOW_SIZE <= total:
        n = min(total - start, step + WINDOW_SIZE - 1)
        phase = (base + start) % 32
        np.add(view[start : start + n], _TABLE_OFFSETS[phase : phase + n], out=index[:n])
        # mode="wrap": with "raise" numpy buffers `out`; the indices are in range by construction.
        np.take(_ROTATED, index[:n], out=u[:n], mode="wrap")
        # Sliding XOR of 48 values by doubling: widths 2, 4, 8, 16, 32, then 32 + 16.
        np.bitwise_xor(u[: n - 1], u[1:n], out=a[: n - 1])
        np.bitwise_xor(a[: n - 3], a[2 : n - 1], out=b[: n - 3])
        np.bitwise_xor(b[: n - 7], b[4 : n - 3], out=a[: n - 7])
        np.bitwise_xor(a[: n - 15], a[8 : n - 7], out=b[: n - 15])
        np.bitwise_xor(b[: n - 31], b[16 : n - 15], out=u[: n - 31])
        m = n - 47
        np.bitwise_xor(u[:m], b[32 : n - 15], out=a[:m])
        # Rotate the window ending at p = base + start + i + 48 left by (p - 1) mod 32.
        shift = (base + start + 47) % 32
        np.left_shift(a[:m], _LEFT[shift : shift + m], out=u[:m])
        np.right_shift(a[:m], _RIGHT[shift : shift + m], out=a[:m])
        np.bitwise_or(u[:m], a[:m], out=u[:m])
        np.multiply(u[:m], test.inverse, out=a[:m])
        np.add(a[:m], test.inverse, out=a[:m])
        np.less_equal(a[:m], test.limit, out=hits[:m])
        survivors = np.flatnonzero(hits[:m])
        if len(survivors):
            exact = survivors[u[survivors] % np.uint32(d) == np.uint32(d - 1)]
            if len(exact):
                found.append(exact.astype(np.int64) + (base + start + WINDOW_SIZE))
        start += m
    if not found:
        return np.empty(0, dtype=np.int64)
    return np.concatenate(found)

"""The content-defined chunker of casync/desync, cutting exactly where desync v0.9.6 cuts.

A 48-byte rolling "buzhash" runs over the data; a chunk ends after byte ``L`` (counted from the
chunk's start) at the first ``L`` in ``min+1 .. max-1`` where the hash of the 48 bytes before ``L``
satisfies ``hash % d == d - 1``, else at ``max`` (or at the end of the input). ``d`` (the
discriminator) derives from the average size. The hash restarts with each chunk, but since the first
test is past ``min >= 48`` bytes, the hash at a position depends only on the 48 bytes before it.

That last fact splits the chunker in two: the boundary *candidates* (positions whose window
satisfies the test) are a pure function of the data, found for a whole block at once
(:func:`find_candidates`, which releases the GIL, so several threads scan blocks in parallel), and
the sequential rule that picks cuts among them (:class:`BoundaryWalker`) only touches the rare
candidates. The scan runs in C (``_buzhash.c``, a rolling hash at about 1 ns per byte, built at
install time); where the extension could not be built, a vectorised numpy scan
(:mod:`aria.apps.storage.chunker_numpy`, about 3.5 ns per byte) gives the same candidates.
"""

from __future__ import annotations

from typing import Any

from aria.apps.storage.sizes import WINDOW_SIZE, ChunkSizes, discriminator

try:
    from aria.apps.storage._buzhash import find_candidates as _c_find_candidates
except ImportError:  # not built (no compiler at install time): the numpy scan instead
    _c_find_candidates = None

__all__ = [
    "BUZHASH_TABLE",
    "SCANNER",
    "WINDOW_SIZE",
    "BoundaryWalker",
    "ChunkSizes",
    "buzhash",
    "chunk_boundaries",
    "discriminator",
    "find_candidates",
]

#: Which boundary scan runs: "c" (the extension) or "numpy" (the fallback).
SCANNER = "c" if _c_find_candidates is not None else "numpy"
#: casync's and desync's buzhash constants (identical in both): T[byte value].
# fmt: off
BUZHASH_TABLE: tuple[int, ...] = (
    0x458be752, 0xc10748cc, 0xfbbcdbb8, 0x6ded5b68, 0xb10a82b5, 0x20d75648,
    0xdfc5665f, 0xa8428801, 0x7ebf5191, 0x841135c7, 0x65cc53b3, 0x280a597c,
    0x16f60255, 0xc78cbc3e, 0x294415f5, 0xb938d494, 0xec85c4e6, 0xb7d33edc,
    0xe549b544, 0xfdeda5aa, 0x882bf287, 0x3116737c, 0x05569956, 0xe8cc1f68,
    0x0806ac5e, 0x22a14443, 0x15297e10, 0x50d090e7, 0x4ba60f6f, 0xefd9f1a7,
    0x5c5c885c, 0x82482f93, 0x9bfd7c64, 0x0b3e7276, 0xf2688e77, 0x8fad8abc,
    0xb0509568, 0xf1ada29f, 0xa53efdfe, 0xcb2b1d00, 0xf2a9e986, 0x6463432b,
    0x95094051, 0x5a223ad2, 0x9be8401b, 0x61e579cb, 0x1a556a14, 0x5840fdc2,
    0x9261ddf6, 0xcde002bb, 0x52432bb0, 0xbf17373e, 0x7b7c222f, 0x2955ed16,
    0x9f10ca59, 0xe840c4c9, 0xccabd806, 0x14543f34, 0x1462417a, 0x0d4a1f9c,
    0x087ed925, 0xd7f8f24c, 0x7338c425, 0xcf86c8f5, 0xb19165cd, 0x9891c393,
    0x325384ac, 0x0308459d, 0x86141d7e, 0xc922116a, 0xe2ffa6b6, 0x53f52aed,
    0x2cd86197, 0xf5b9f498, 0xbf319c8f, 0xe0411fae, 0x977eb18c, 0xd8770976,
    0x9833466a, 0xc674df7f, 0x8c297d45, 0x8ca48d26, 0xc49ed8e2, 0x7344f874,
    0x556f79c7, 0x6b25eaed, 0xa03e2b42, 0xf68f66a4, 0x8e8b09a2, 0xf2e0e62a,
    0x0d3a9806, 0x9729e493, 0x8c72b0fc, 0x160b94f6, 0x450e4d3d, 0x7a320e85,
    0xbef8f0e1, 0x21d73653, 0x4e3d977a, 0x1e7b3929, 0x1cc6c719, 0xbe478d53,
    0x8d752809, 0xe6d8c2c6, 0x275f0892, 0xc8acc273, 0x4cc21580, 0xecc4a617,
    0xf5f7be70, 0xe795248a, 0x375a2fe9, 0x425570b6, 0x8898dcf8, 0xdc2d97c4,
    0x0106114b, 0x364dc22f, 0x1e0cad1f, 0xbe63803c, 0x5f69fac2, 0x4d5afa6f,
    0x1bc0dfb5, 0xfb273589, 0x0ea47f7b, 0x3c1c2b50, 0x21b2a932, 0x6b1223fd,
    0x2fe706a8, 0xf9bd6ce2, 0xa268e64e, 0xe987f486, 0x3eacf563, 0x1ca2018c,
    0x65e18228, 0x2207360a, 0x57cf1715, 0x34c37d2b, 0x1f8f3cde, 0x93b657cf,
    0x31a019fd, 0xe69eb729, 0x8bca7b9b, 0x4c9d5bed, 0x277ebeaf, 0xe0d8f8ae,
    0xd150821c, 0x31381871, 0xafc3f1b0, 0x927db328, 0xe95effac, 0x305a47bd,
    0x426ba35b, 0x1233af3f, 0x686a5b83, 0x50e072e5, 0xd9d3bb2a, 0x8befc475,
    0x487f0de6, 0xc88dff89, 0xbd664d5e, 0x971b5d18, 0x63b14847, 0xd7d3c1ce,
    0x7f583cf3, 0x72cbcb09, 0xc0d0a81c, 0x7fa3429b, 0xe9158a1b, 0x225ea19a,
    0xd8ca9ea3, 0xc763b282, 0xbb0c6341, 0x020b8293, 0xd4cd299d, 0x58cfa7f8,
    0x91b4ee53, 0x37e4d140, 0x95ec764c, 0x30f76b06, 0x5ee68d24, 0x679c8661,
    0xa41979c2, 0xf2b61284, 0x4fac1475, 0x0adb49f9, 0x19727a23, 0x15a7e374,
    0xc43a18d5, 0x3fb1aa73, 0x342fc615, 0x924c0793, 0xbee2d7f0, 0x8a279de9,
    0x4aa2d70c, 0xe24dd37f, 0xbe862c0b, 0x177c22c2, 0x5388e5ee, 0xcd8a7510,
    0xf901b4fd, 0xdbc13dbc, 0x6c0bae5b, 0x64efe8c7, 0x48b02079, 0x80331a49,
    0xca3d8ae6, 0xf3546190, 0xfed7108b, 0xc49b941b, 0x32baf4a9, 0xeb833a4a,
    0x88a3f1a5, 0x3a91ce0a, 0x3cc27da1, 0x7112e684, 0x4a3096b1, 0x3794574c,
    0xa3c8b6f3, 0x1d213941, 0x6e0a2e00, 0x233479f1, 0x0f4cd82f, 0x6093edd2,
    0x5d7d209e, 0x464fe319, 0xd4dcac9e, 0x0db845cb, 0xfb5e4bc3, 0xe0256ce1,
    0x09fb4ed1, 0x0914be1e, 0xa5bdb2c3, 0xc6eb57bb, 0x30320350, 0x3f397e91,
    0xa67791bc, 0x86bc0e2c, 0xefa0a7e2, 0xe9ff7543, 0xe733612c, 0xd185897b,
    0x329e5388, 0x91dd236b, 0x2ecb0d93, 0xf4d82a3d, 0x35b5c03f, 0xe4e606f0,
    0x05b21843, 0x37b45964, 0x5eff22f4, 0x6027f4cc, 0x77178b3c, 0xae507131,
    0x7bf7cabc, 0xf9c18d66, 0x593ade65, 0xd95ddf11,
)
# fmt: on


def buzhash(window: bytes) -> int:
    """The hash of one full 48-byte window, straight from the definition (for tests and checks)."""
    if len(window) != WINDOW_SIZE:
        raise ValueError(f"a window is {WINDOW_SIZE} bytes, got {len(window)}")
    value = 0
    for i, byte in enumerate(window):
        value ^= _rotl(BUZHASH_TABLE[byte], WINDOW_SIZE - 1 - i)
    return value


def _rotl(value: int, amount: int) -> int:
    amount %= 32
    return ((value << amount) | (value >> (32 - amount))) & 0xFFFFFFFF


def find_candidates(data: bytes | bytearray | memoryview, base: int, d: int) -> list[int]:
    """Every position whose 48-byte window satisfies the boundary test.

    Args:
        data: Bytes at absolute offsets ``[base, base + len(data))``.
        base: The absolute offset of ``data[0]``.
        d: The discriminator.

    Returns:
        Sorted absolute positions ``p`` in ``[base + 48, base + len(data)]`` such that the hash of
        the bytes ``[p - 48, p)`` is ``d - 1`` modulo ``d``.

    Pure and thread-safe; the scan releases the GIL.
    """
    if _c_find_candidates is not None:
        return memoryview(_c_find_candidates(data, base, d)).cast("q").tolist()
    from aria.apps.storage.chunker_numpy import find_candidates as scan

    found: list[int] = scan(data, base, d).tolist()
    return found


class BoundaryWalker:
    """The sequential part of the chunker: picks cuts among candidates, streaming.

    Feed candidates in increasing order with :meth:`add_candidates` (all candidates up to the data
    seen so far), then ask :meth:`cuts` which chunk ends are decided given how much data is known.
    A cut is decided once a candidate lies in ``[start + min + 1, start + max)`` or ``max`` bytes are
    known; at the end of the input (``final=True``) the rest is decided too.
    """

    def __init__(self, sizes: ChunkSizes) -> None:
        self.sizes = sizes
        self.start = 0
        self._candidates: list[int] = []
        self._next = 0

    def add_candidates(self, positions: Any) -> None:
        """Append positions (a list, or any iterable of ints such as a numpy array), in order."""
        if self._next > 4096:
            del self._candidates[: self._next]
            self._next = 0
        self._candidates.extend(positions.tolist() if hasattr(positions, "tolist") else positions)

    def cuts(self, known_end: int, *, final: bool) -> list[int]:
        """The chunk end offsets decided now, given the data is known up to ``known_end``."""
        minimum, maximum = self.sizes.min, self.sizes.max
        decided: list[int] = []
        candidates = self._candidates
        while True:
            start = self.start
            remaining = known_end - start
            if remaining <= 0:
                break
            while self._next < len(candidates) and candidates[self._next] < start + minimum + 1:
                self._next += 1
            candidate = candidates[self._next] if self._next < len(candidates) else None
            if remaining >= maximum:
                cut = candidate if candidate is not None and candidate < start + maximum else start + maximum
            elif final:
                if remaining <= minimum:
                    cut = known_end
                else:
                    cut = candidate if candidate is not None and candidate < known_end else known_end
            elif candidate is not None and candidate <= known_end:
                cut = candidate
            else:
                break
            decided.append(cut)
            self.start = cut
        return decided


def chunk_boundaries(data: bytes | bytearray | memoryview, sizes: ChunkSizes | None = None) -> list[int]:
    """The end offsets of every chunk of ``data`` (single-threaded; for small inputs and tests)."""
    sizes = sizes or ChunkSizes()
    walker = BoundaryWalker(sizes)
    walker.add_candidates(find_candidates(data, 0, sizes.discriminator))
    return walker.cuts(len(data), final=True)

"""The chunker's size parameters (kept free of numpy so config validation stays light)."""

from __future__ import annotations

from dataclasses import dataclass

#: The rolling hash's window, in bytes.
WINDOW_SIZE = 48

_DEFAULT_SIZES = (16 * 1024, 64 * 1024, 256 * 1024)


def discriminator(average: int) -> int:
    """desync's discriminator for an average chunk size (IEEE double, truncated to 32 bits)."""
    return int(average / (average * -1.42888852e-7 + 1.33237515)) & 0xFFFFFFFF


@dataclass(frozen=True)
class ChunkSizes:
    """The chunker's min/avg/max chunk sizes in bytes (desync's defaults: 16/64/256 KiB).

    Raises:
        ValueError: if ``min < 48`` (the window size), if not ``min <= avg <= max``, or if
            ``min == max`` (desync v0.9.6 then emits chunks of max+1 bytes, casync fixed-size ones:
            the two disagree, so such an index could not be shared).
    """

    min: int = _DEFAULT_SIZES[0]
    avg: int = _DEFAULT_SIZES[1]
    max: int = _DEFAULT_SIZES[2]

    def __post_init__(self) -> None:
        if self.min < WINDOW_SIZE:
            raise ValueError(f"chunk size min {self.min} is below the rolling-hash window of {WINDOW_SIZE}")
        if not self.min <= self.avg <= self.max:
            raise ValueError(
                f"chunk sizes must satisfy min <= avg <= max; got {self.min}:{self.avg}:{self.max}"
            )
        if self.min == self.max:
            raise ValueError(
                f"chunk size min and max are both {self.min}; fixed-size chunking is not compatible"
            )

    @property
    def discriminator(self) -> int:
        return discriminator(self.avg)

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.min, self.avg, self.max)

    @classmethod
    def parse(cls, text: str) -> ChunkSizes:
        """desync's ``-m min:avg:max`` in KiB, e.g. ``16:64:256``.

        Raises:
            ValueError: if the text is not three positive integers separated by colons, or the sizes
                break the rules above.
        """
        parts = text.split(":")
        if len(parts) != 3 or not all(part.strip().isdigit() for part in parts):
            raise ValueError(f"chunk sizes {text!r} must be min:avg:max in KiB, e.g. 16:64:256")
        minimum, average, maximum = (int(part) * 1024 for part in parts)
        return cls(minimum, average, maximum)

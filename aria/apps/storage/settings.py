"""aria_storage's config section, ``[storage]`` (validated at boot: a bad value stops the start)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from aria.apps.storage.sizes import ChunkSizes
from aria.apps.storage.stores import scheme_of
from aria.config import Section


class StorageSection(Section):
    store: str = Field(
        "", description="The default chunk store (path or URL); empty: <data_dir>/storage/chunks."
    )
    cache: str = Field(
        "", description="A local directory used as a cache in front of the store; empty: none."
    )
    chunk_size: str = Field("16:64:256", description="The chunker's min:avg:max in KiB (desync's -m).")
    digest: Literal["sha512-256", "sha256"] = Field("sha512-256", description="How chunk IDs are computed.")
    uncompressed: bool = Field(False, description="The stores keep raw chunks instead of zstd .cacnk files.")
    concurrency: int = Field(
        0, ge=0, le=256, description="Parallel jobs per operation; 0: the number of cores."
    )
    chunk_server: str = Field(
        "", description="HOST:PORT to serve the default store with desync's HTTP protocol; empty: off."
    )
    chunk_server_writable: bool = Field(False, description="Whether the chunk server accepts PUT.")
    upload_timeout: float = Field(
        600.0, gt=0, description="Seconds an asset upload may go without a heartbeat before gc forgets it."
    )
    statistics_interval: float = Field(
        30.0, gt=0, description="Seconds between refreshes of the catalog statistics."
    )

    @field_validator("store")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value:
            scheme_of(value)  # raises a ValueError naming the location and the known schemes
        return value

    @field_validator("chunk_size")
    @classmethod
    def _valid_sizes(cls, value: str) -> str:
        ChunkSizes.parse(value)
        return value

    @field_validator("chunk_server")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if value and (not host or not port.isdigit() or not 0 <= int(port) <= 65535):
            raise ValueError(f"{value!r} must be HOST:PORT")
        return value

    def store_location(self, app_data_dir: Path) -> str:
        """The configured store, or ``chunks/`` in the app's data directory."""
        return self.store or str(app_data_dir / "chunks")

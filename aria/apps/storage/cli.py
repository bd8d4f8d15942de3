"""``aria storage <verb>``: desync's verbs and flags, on aria's stores.

Each verb runs its operation from :mod:`aria.apps.storage.operations` under ``trio.run``. Errors
print one line naming the problem (``aria storage extract: chunk ... is missing from store ...``)
and exit 1; bad arguments exit 2 (click's convention). Long runs draw a progress bar on a terminal.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import trio

from aria.errors import AriaError

# The chunker's numpy fallback never uses BLAS; OpenBLAS's idle worker threads would still spin on
# our two cores (seen in profiles of `make`). Set before anything in this process imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed chunk buffers instead of returning them to the kernel.

    Every chunk passes through a few buffers of 16 KiB to 256 KiB; with glibc's defaults the bigger
    ones are fresh mmaps and the heap is trimmed, so each buffer's pages are faulted in and zeroed
    again (measured: 54,000 page faults for a 256 MiB extract, 6,500 with this, and about 10 % less
    CPU). Only the command's own short-lived process is affected; elsewhere (not glibc) it does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):
        pass


F = TypeVar("F", bound=Callable[..., Any])

_STORE = click.option(
    "-s", "--store", "stores", multiple=True, metavar="STORE", help="Chunk store (path or URL); repeatable."
)
_CACHE = click.option(
    "-c", "--cache", metavar="DIR", help="Local directory used as a cache in front of the store."
)
_CONCURRENCY = click.option(
    "-n", "--concurrency", type=click.IntRange(1, 256), default=None, help="Parallel jobs (default: cores)."
)
_UNCOMPRESSED = click.option(
    "--uncompressed", is_flag=True, help="The stores keep raw chunks (bare IDs) instead of .cacnk."
)


def _fail(verb: str, message: str, code: int = 1) -> None:
    click.echo(f"aria storage {verb}: {message}", err=True)
    sys.exit(code)


def _run(verb: str) -> Callable[[F], F]:
    """Run the decorated coroutine function with trio, turning Aria's errors into one-line exits."""

    def decorate(function: F) -> F:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _keep_freed_memory()
            try:
                return trio.run(lambda: function(*args, **kwargs))
            except (AriaError, ValueError, OSError) as exc:
                _fail(verb, str(exc))
            except KeyboardInterrupt:
                _fail(verb, "interrupted", 130)
            return None

        return wrapper  # type: ignore[return-value]

    return decorate


def _options(uncompressed: bool = False) -> Any:
    from aria.apps.storage.stores import StoreOptions

    return StoreOptions(compressed=not uncompressed)


def _progress(label: str, total: int) -> Any:
    from aria.apps.storage.pipeline import Progress

    return Progress(label, total)


def _need_store(verb: str, stores: Sequence[str]) -> None:
    if not stores:
        _fail(verb, "no store given: use -s STORE", 2)


async def _load(path: str) -> Any:
    from aria.apps.storage.format import read_index

    return await trio.to_thread.run_sync(read_index, path)


@click.group()
def cli() -> None:
    """Content-addressed storage compatible with desync and casync (.caibx indexes, .cacnk chunks)."""


@cli.command()
@click.argument("index", type=click.Path(dir_okay=False))
@click.argument("file", type=click.Path(dir_okay=False))
@_STORE
@click.option("-m", "--chunk-size", default="16:64:256", show_default=True, help="min:avg:max in KiB.")
@click.option("--digest", default="sha512-256", show_default=True, help="sha512-256 or sha256.")
@_CONCURRENCY
@_UNCOMPRESSED
def make(
    index: str,
    file: str,
    stores: tuple[str, ...],
    chunk_size: str,
    digest: str,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    """Chunk FILE, write its INDEX and store its chunks in -s STORE (skipping those it holds)."""
    _make(index, file, stores, chunk_size, digest, concurrency, uncompressed)


@_run("make")
async def _make(
    index_path: str,
    file: str,
    stores: tuple[str, ...],
    chunk_size: str,
    digest_name: str,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.chunker import ChunkSizes
    from aria.apps.storage.format import Digest
    from aria.apps.storage.stores import open_stores

    sizes = ChunkSizes.parse(chunk_size)
    digest = Digest.parse(digest_name)
    total = await trio.to_thread.run_sync(_size_of, file)
    progress = _progress("make", total)
    try:
        if stores:
            async with open_stores(stores, options=_options(uncompressed)) as store:
                index, _ = await operations.make(
                    file, store, sizes=sizes, digest=digest, concurrency=concurrency, progress=progress
                )
        else:
            index, _ = await operations.make(
                file, None, sizes=sizes, digest=digest, concurrency=concurrency, progress=progress
            )
    finally:
        progress.close()
    await trio.to_thread.run_sync(_write_atomically, Path(index_path), index.to_bytes())


def _size_of(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # the operation itself reports why the file cannot be read


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.parent / f".{path.name}.aria-tmp"
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {str(path)!r}: {exc.strerror}") from exc


@cli.command()
@click.argument("index", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@_STORE
@click.option("--seed", "seeds", multiple=True, metavar="FILE", help="Index or file to reuse chunks from.")
@click.option("--no-seed-output", is_flag=True, help="Do not reuse chunks of an existing OUTPUT.")
@_CACHE
@_CONCURRENCY
@_UNCOMPRESSED
def extract(
    index: str,
    output: str,
    stores: tuple[str, ...],
    seeds: tuple[str, ...],
    no_seed_output: bool,
    cache: str | None,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    """Rebuild OUTPUT from INDEX: chunks from seeds and OUTPUT itself first, the rest from the stores."""
    _extract(index, output, stores, seeds, no_seed_output, cache, concurrency, uncompressed)


@_run("extract")
async def _extract(
    index_path: str,
    output: str,
    stores: tuple[str, ...],
    seeds: tuple[str, ...],
    no_seed_output: bool,
    cache: str | None,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.stores import open_stores

    index = await _load(index_path)
    progress = _progress("extract", index.length)
    try:
        if stores:
            async with open_stores(stores, cache=cache, options=_options(uncompressed)) as store:
                await operations.extract(
                    index,
                    output,
                    store,
                    seeds=seeds,
                    seed_output=not no_seed_output,
                    concurrency=concurrency,
                    progress=progress,
                )
        else:
            await operations.extract(
                index, output, None, seeds=seeds, seed_output=not no_seed_output, concurrency=concurrency
            )
    finally:
        progress.close()


@cli.command()
@click.argument("index", type=click.Path(dir_okay=False))
@_STORE
@click.option("--offset", type=click.IntRange(min=0), default=0, help="First byte to write.")
@click.option(
    "--length", type=click.IntRange(min=0), default=None, help="How many bytes (default: to the end)."
)
@_CACHE
@_CONCURRENCY
@_UNCOMPRESSED
def cat(
    index: str,
    stores: tuple[str, ...],
    offset: int,
    length: int | None,
    cache: str | None,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    """Write the blob of INDEX (or a range of it) to standard output."""
    _need_store("cat", stores)
    _cat(index, stores, offset, length, cache, concurrency, uncompressed)


@_run("cat")
async def _cat(
    index_path: str,
    stores: tuple[str, ...],
    offset: int,
    length: int | None,
    cache: str | None,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.stores import open_stores

    index = await _load(index_path)
    out = sys.stdout.buffer

    async def sink(piece: bytes) -> None:
        await trio.to_thread.run_sync(out.write, piece)

    async with open_stores(stores, cache=cache, options=_options(uncompressed)) as store:
        await operations.cat(index, store, sink, offset=offset, length=length, concurrency=concurrency)
    await trio.to_thread.run_sync(out.flush)


@cli.command()
@click.argument("index", type=click.Path(dir_okay=False))
@click.argument("file", type=click.Path(dir_okay=False))
@_STORE
@_CONCURRENCY
@_UNCOMPRESSED
def chop(index: str, file: str, stores: tuple[str, ...], concurrency: int | None, uncompressed: bool) -> None:
    """Store the chunks of FILE, cut where INDEX says, checking each against INDEX."""
    _need_store("chop", stores)
    _chop(index, file, stores, concurrency, uncompressed)


@_run("chop")
async def _chop(
    index_path: str, file: str, stores: tuple[str, ...], concurrency: int | None, uncompressed: bool
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.stores import open_stores

    index = await _load(index_path)
    progress = _progress("chop", index.length)
    try:
        async with open_stores(stores, options=_options(uncompressed)) as store:
            await operations.chop(index, file, store, concurrency=concurrency, progress=progress)
    finally:
        progress.close()


@cli.command()
@_STORE
@click.option("-r", "--repair", is_flag=True, help="Delete invalid chunks.")
@click.option("--digest", default="sha512-256", show_default=True, help="sha512-256 or sha256.")
@_CONCURRENCY
@_UNCOMPRESSED
def verify(
    stores: tuple[str, ...], repair: bool, digest: str, concurrency: int | None, uncompressed: bool
) -> None:
    """Read and re-hash every chunk of the store; list the invalid ones (exit 1 if any remain)."""
    _need_store("verify", stores)
    _verify(stores, repair, digest, concurrency, uncompressed)


@_run("verify")
async def _verify(
    stores: tuple[str, ...], repair: bool, digest_name: str, concurrency: int | None, uncompressed: bool
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.format import Digest
    from aria.apps.storage.stores import open_store

    digest = Digest.parse(digest_name)
    async with open_store(stores[0], options=_options(uncompressed)) as store:
        report = await operations.verify(store, digest=digest, repair=repair, concurrency=concurrency)
    for error in report.invalid:
        click.echo(str(error), err=True)
    summary = f"{report.checked} chunks checked, {len(report.invalid)} invalid"
    if repair:
        summary += f", {report.removed} removed"
    click.echo(summary)
    if report.invalid and not repair:
        sys.exit(1)


@cli.command()
@click.argument("indexes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_STORE
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@_UNCOMPRESSED
def prune(
    indexes: tuple[str, ...], stores: tuple[str, ...], dry_run: bool, yes: bool, uncompressed: bool
) -> None:
    """Delete every chunk of the store that none of INDEXES references."""
    _need_store("prune", stores)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            _fail("prune", "refusing to delete chunks without confirmation: pass -y (or --dry-run)", 2)
        click.confirm(f"Delete every chunk of {stores[0]} not referenced by the given indexes?", abort=True)
    _prune(indexes, stores[0], dry_run, uncompressed)


@_run("prune")
async def _prune(indexes: tuple[str, ...], location: str, dry_run: bool, uncompressed: bool) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.stores import open_store

    loaded = [await _load(path) for path in indexes]
    async with open_store(location, options=_options(uncompressed)) as store:
        doomed = await operations.prune(store, loaded, dry_run=dry_run)
    for chunk_id in doomed:
        click.echo(chunk_id.hex())
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(doomed)} chunks", err=True)


@cli.command()
@click.argument("index", type=click.Path(dir_okay=False))
@_STORE
@_UNCOMPRESSED
def info(index: str, stores: tuple[str, ...], uncompressed: bool) -> None:
    """Print INDEX's chunk counts, sizes and dedup ratio as JSON; with -s, which chunks are missing."""
    _info(index, stores, uncompressed)


@_run("info")
async def _info(index_path: str, stores: tuple[str, ...], uncompressed: bool) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.stores import open_stores

    index = await _load(index_path)
    if stores:
        async with open_stores(stores, options=_options(uncompressed)) as store:
            result = await operations.info(index, store)
    else:
        result = await operations.info(index)
    click.echo(json.dumps(result, indent=2))


@cli.command()
@click.argument("indexes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--from", "-s", "source", required=True, metavar="STORE", help="Where the chunks are.")
@click.option("--to", "-c", "destination", required=True, metavar="STORE", help="Where to copy them.")
@_CONCURRENCY
@_UNCOMPRESSED
def cache(
    indexes: tuple[str, ...], source: str, destination: str, concurrency: int | None, uncompressed: bool
) -> None:
    """Copy the chunks INDEXES reference from one store into another (skipping those it holds)."""
    _cache(indexes, source, destination, concurrency, uncompressed)


@_run("cache")
async def _cache(
    indexes: tuple[str, ...], source: str, destination: str, concurrency: int | None, uncompressed: bool
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.stores import open_store

    loaded = [await _load(path) for path in indexes]
    total = len({chunk.id for index in loaded for chunk in index.chunks})
    progress = _progress("cache", total)
    try:
        async with (
            open_store(source, options=_options(uncompressed)) as source_store,
            open_store(destination, options=_options(uncompressed)) as destination_store,
        ):
            stats = await operations.cache_chunks(
                loaded, source_store, destination_store, concurrency=concurrency, progress=progress
            )
    finally:
        progress.close()
    click.echo(f"{stats.unique} chunks: {stats.present} already there, {stats.copied} copied", err=True)


@cli.command("chunk-server")
@_STORE
@click.option("--listen", "-l", default="127.0.0.1:9390", show_default=True, help="HOST:PORT to listen on.")
@click.option("-w", "--writable", is_flag=True, help="Accept PUT (verified against the chunk ID).")
@click.option("-u", "--uncompressed", "serve_uncompressed", is_flag=True, help="Serve raw chunks (bare IDs).")
@click.option("--authorization", default="", help="Require this exact Authorization header.")
@_CACHE
def chunk_server(
    stores: tuple[str, ...],
    listen: str,
    writable: bool,
    serve_uncompressed: bool,
    authorization: str,
    cache: str | None,
) -> None:
    """Serve the store over HTTP with desync's chunk-server protocol (GET/HEAD/PUT /XXXX/ID.cacnk)."""
    _need_store("chunk-server", stores)
    _chunk_server(stores, listen, writable, serve_uncompressed, authorization, cache)


@_run("chunk-server")
async def _chunk_server(
    stores: tuple[str, ...],
    listen: str,
    writable: bool,
    serve_uncompressed: bool,
    authorization: str,
    cache: str | None,
) -> None:
    from aria.apps.storage.chunk_server import serve_chunks
    from aria.apps.storage.stores import open_stores

    async with open_stores(stores, cache=cache) as store:

        async def announce(address: str) -> None:
            click.echo(f"serving {store.location} on http://{address}/ (Ctrl-C stops)", err=True)

        await serve_chunks(
            store,
            listen,
            writable=writable,
            compressed=not serve_uncompressed,
            authorization=authorization,
            on_ready=announce,
        )


@cli.command()
@click.argument("archive", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(file_okay=False))
@_STORE
@_CACHE
@_CONCURRENCY
@_UNCOMPRESSED
def untar(
    archive: str,
    target: str,
    stores: tuple[str, ...],
    cache: str | None,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    """Unpack a .catar ARCHIVE, or a .caidx index of one (with -s STORE), into the TARGET directory."""
    _untar(archive, target, stores, cache, concurrency, uncompressed)


@_run("untar")
async def _untar(
    archive: str,
    target: str,
    stores: tuple[str, ...],
    cache: str | None,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.stores import open_stores

    if stores:
        async with open_stores(stores, cache=cache, options=_options(uncompressed)) as store:
            created = await operations.untar(archive, target, store, concurrency=concurrency)
    else:
        created = await operations.untar(archive, target, None, concurrency=concurrency)
    click.echo(f"{created} entries unpacked into {target}", err=True)


@cli.command()
@click.argument("archive", type=click.Path(dir_okay=False))
@click.argument("source", type=click.Path(file_okay=False))
@_STORE
@click.option("-i", "--index", "as_index", is_flag=True, help="Write a .caidx and store the chunks (-s).")
@click.option("-m", "--chunk-size", default="16:64:256", show_default=True, help="min:avg:max in KiB.")
@_CONCURRENCY
@_UNCOMPRESSED
def tar(
    archive: str,
    source: str,
    stores: tuple[str, ...],
    as_index: bool,
    chunk_size: str,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    """Archive the SOURCE directory as a .catar ARCHIVE, or with -i as a .caidx plus chunks in -s STORE."""
    if as_index and not stores:
        _fail("tar", "-i writes chunks: give a store with -s STORE", 2)
    _tar(archive, source, stores, as_index, chunk_size, concurrency, uncompressed)


@_run("tar")
async def _tar(
    archive: str,
    source: str,
    stores: tuple[str, ...],
    as_index: bool,
    chunk_size: str,
    concurrency: int | None,
    uncompressed: bool,
) -> None:
    from aria.apps.storage import operations
    from aria.apps.storage.sizes import ChunkSizes
    from aria.apps.storage.stores import open_stores

    if not as_index:
        await operations.tar(source, archive)
        return
    async with open_stores(stores, options=_options(uncompressed)) as store:
        index = await operations.tar(
            source, None, store, sizes=ChunkSizes.parse(chunk_size), concurrency=concurrency
        )
    assert index is not None
    await trio.to_thread.run_sync(_write_atomically, Path(archive), index.to_bytes())


@cli.command("list-chunks")
@click.argument("index", type=click.Path(dir_okay=False))
def list_chunks(index: str) -> None:
    """Print every chunk ID of INDEX, one per line, in order."""
    _list_chunks(index)


@_run("list-chunks")
async def _list_chunks(index_path: str) -> None:
    index = await _load(index_path)
    click.echo("\n".join(chunk.id.hex() for chunk in index.chunks))

"""Datasets by name: MNIST and Fashion-MNIST, downloaded once into the user cache.

``dataset_folder("mnist")`` returns a folder holding the four IDX files
(``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-...``,
``t10k-labels-...``), each checked against its pinned size and sha256 on every call:

- the cache is ``<genedge's user cache>/datasets/<name>/`` (``features.cache_root``:
  ``$GENEDGE_CACHE``, else ``$XDG_CACHE_HOME/genedge``, else ``~/.cache/genedge``), a
  folder genedge owns: a file there that fails its check is downloaded again and replaced
  (only the four names above; nothing else in the folder is touched), and never read;
- a download streams into a temporary file beside the final one, hashing as it goes, and
  is renamed into place only when size and sha256 match (``genedge.atomic``): a killed or
  corrupt download never reaches the final name, and a mismatch leaves nothing behind;
- mirrors are tried in order; each gets ``TIMEOUT_S`` for the name lookup, the connection
  and every read, and a mirror that cannot be reached is not asked again in the same call,
  so no network means exit 3 within seconds, with the local-file route in the message;
- ``GENEDGE_DATASETS_URL`` replaces the built-in mirrors with one of your own (``http(s)://``
  or ``file://``), laid out as ``<url>/<name>/<file>``. The pinned hashes still apply: a
  mirror must serve byte-identical files. No option or variable changes the hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from genedge.atomic import atomic_path, clean_stale_temps
from genedge.errors import IncompatibleEnvironmentError, IntegrityError, printable
from genedge.readback import ReadbackError, open_regular

MIRROR_ENV = "GENEDGE_DATASETS_URL"
TIMEOUT_S = 10.0  # name lookup, connect and each read; a mirror that stalls longer is skipped
CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int  # bytes
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    mirrors: tuple[str, ...]  # base URLs ending in "/"; a file is at mirror + file name
    files: tuple[RemoteFile, ...]
    class_names: tuple[str, ...]
    train_images: str = "train-images-idx3-ubyte.gz"
    test_images: str = "t10k-images-idx3-ubyte.gz"


# Sizes and sha256 of the files the canonical mirrors serve (the same bytes on each mirror).
DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files=(
            RemoteFile(
                "train-images-idx3-ubyte.gz",
                9_912_422,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            ),
            RemoteFile(
                "train-labels-idx1-ubyte.gz",
                28_881,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            ),
            RemoteFile(
                "t10k-images-idx3-ubyte.gz",
                1_648_877,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            ),
            RemoteFile(
                "t10k-labels-idx1-ubyte.gz",
                4_542,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
        ),
        class_names=tuple(str(i) for i in range(10)),
    ),
    "fashion-mnist": Dataset(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=(
            RemoteFile(
                "train-images-idx3-ubyte.gz",
                26_421_880,
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            ),
            RemoteFile(
                "train-labels-idx1-ubyte.gz",
                29_515,
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            ),
            RemoteFile(
                "t10k-images-idx3-ubyte.gz",
                4_422_102,
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            ),
            RemoteFile(
                "t10k-labels-idx1-ubyte.gz",
                5_148,
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
        ),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


class _Unreachable(Exception):
    """This mirror cannot be reached (lookup, connection, timeout, HTTP error)."""


class _Mismatch(Exception):
    """This mirror served bytes whose size or sha256 differ from the pinned ones."""


def is_dataset_name(src: str) -> bool:
    return src in DATASETS


def cache_root() -> Path:
    """``<genedge's user cache>/datasets``: ``~/.cache/genedge/datasets`` by default."""
    from .features import cache_root as genedge_cache

    return genedge_cache() / "datasets"


def dataset_folder(name: str) -> Path:
    """The cache folder of dataset ``name`` with its files verified, downloading what is missing."""
    ds = DATASETS[name]
    folder = cache_root() / name
    clean_stale_temps(folder)  # leftovers of a killed download
    missing = [f for f in ds.files if not _verified(folder / f.name, f)]
    if missing:
        _download_all(ds, folder, missing, _mirrors(ds))
    return folder


def _mirrors(ds: Dataset) -> list[str]:
    custom = os.environ.get(MIRROR_ENV, "").strip()
    if not custom:
        return list(ds.mirrors)
    return [custom.rstrip("/") + "/" + urllib.parse.quote(ds.name) + "/"]


def _verified(path: Path, f: RemoteFile) -> bool:
    """Whether ``path`` is a regular file with the pinned size and sha256 (a partial file is not)."""
    try:
        fd = open_regular(path, what="Dataset file", limit=f.size)
    except ReadbackError:  # absent, a link, a FIFO or device, larger than the pinned size
        return False
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "rb") as fh:
            if os.fstat(fh.fileno()).st_size != f.size:
                return False
            while block := fh.read(1 << 20):
                h.update(block)
    except OSError:
        return False
    return h.hexdigest() == f.sha256


def _download_all(ds: Dataset, folder: Path, files: list[RemoteFile], mirrors: list[str]) -> None:
    failures: dict[str, str] = {}  # mirror -> why it was dropped
    for f in files:
        final = folder / f.name
        if final.exists() or final.is_symlink():
            print(
                f"{ds.name}: cached '{f.name}' fails its size/sha256 check; downloading it again.",
                file=sys.stderr,
            )
        mismatches: list[str] = []
        for mirror in [m for m in mirrors if m not in failures]:
            url = mirror + f.name
            try:
                _download(url, f, final, ds.name)
                break
            except _Unreachable as e:
                failures[mirror] = str(e)
            except _Mismatch as e:
                mismatches.append(f"{url}: {e}")
        else:
            _give_up(ds, f, failures, mismatches, folder)


def _give_up(
    ds: Dataset, f: RemoteFile, failures: dict[str, str], mismatches: list[str], folder: Path
) -> None:
    local = f"--data path/to/{ds.train_images} (its labels file beside it)"
    if mismatches:
        raise IntegrityError(
            f"{ds.name}: '{f.name}' was refused: {'; '.join(mismatches)}. Nothing was kept.",
            hint=f"The mirror serves other bytes than the published file (sha256 {f.sha256}). "
            f"Try again later or another mirror ({MIRROR_ENV}), or pass local IDX files: {local}.",
        )
    why = "; ".join(f"{m}: {reason}" for m, reason in failures.items())
    raise IncompatibleEnvironmentError(
        f"Could not download {ds.name} ('{f.name}'): {why}.",
        hint=f"Without network access, pass local IDX files instead: {local}; or copy the four "
        f".gz files into {folder} (checked against their pinned sha256); or set {MIRROR_ENV} "
        "to a reachable mirror laid out as <url>/<name>/<file>.",
    )


def _download(url: str, f: RemoteFile, final: Path, label: str) -> None:
    """Stream ``url`` into a temporary file; rename it to ``final`` only if size and sha256 match."""
    _check_lookup(url)
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 (http/https/file)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _Unreachable(_reason(e)) from None
    with response, atomic_path(final) as tmp:
        h = hashlib.sha256()
        got = 0
        with open(tmp, "wb") as out, _progress_bar(label, f) as advance:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, ValueError) as e:  # a stalled or dropped connection
                    raise _Unreachable(
                        f"download stopped after {got} bytes ({_reason(e)})"
                    ) from None
                if not block:
                    break
                got += len(block)
                if got > f.size:
                    raise _Mismatch(f"more than the expected {f.size} bytes")
                h.update(block)
                out.write(block)
                advance(len(block))
        if got != f.size:
            raise _Mismatch(f"{got} bytes, expected {f.size}")
        if h.hexdigest() != f.sha256:
            raise _Mismatch(f"sha256 {h.hexdigest()}, expected {f.sha256}")


def _check_lookup(url: str) -> None:
    """Resolve the host within ``TIMEOUT_S``: urllib's timeout does not cover name lookup."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:  # a port that is not a number
        raise _Unreachable(f"bad URL ({e})") from None
    if not host:
        raise _Unreachable("no host in the URL")
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            result.append(None)
        except OSError as e:
            result.append(e)

    thread = threading.Thread(target=lookup, name="genedge-dns", daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    if not result:
        raise _Unreachable(f"name lookup of {host} took over {TIMEOUT_S:g} s")
    if result[0] is not None:
        raise _Unreachable(_reason(result[0]))


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    reason = getattr(e, "reason", None) if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {TIMEOUT_S:g} s"
    return printable(reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}")


@contextlib.contextmanager
def _progress_bar(label: str, f: RemoteFile) -> Iterator[Callable[[int], object]]:
    """Yield ``advance(n_bytes)``: a rich bar on stderr when it is a terminal, else one line."""
    title = f"{label}/{f.name}"
    print(f"Downloading {title} ({f.size / 1e6:.1f} MB)", file=sys.stderr)
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(
        "{task.description}", *columns, console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task(title, total=f.size)
        yield lambda n: progress.advance(task, n)

"""The tuning cache: one JSON file per measurement identity, outside every bundle.

``$GENEDGE_CACHE/tune`` (else ``$XDG_CACHE_HOME/genedge/tune``, else ``~/.cache/genedge/tune``)
holds what ``genedge tune`` measured. A file's name is its key: the bundle's manifest hash
first (``ever_tuned`` asks cheaply whether a bundle was ever tuned here), then the hash of the
whole identity (``tune_identity``: manifest, graph, CPU, threads, library versions), so a
stale measurement is never found. A file read back is hostile input (``checked_tuning``);
writers merge under the folder's lock (``write_tuning``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import re
from pathlib import Path
from typing import Any

from genedge.atomic import atomic_write_text
from genedge.errors import GenedgeError, printable
from genedge.manifest import MANIFEST_NAME, Manifest
from genedge.outputs import folder_lock
from genedge.readback import (
    MANIFEST_BYTES,
    TUNE_CACHE_BYTES,
    ReadbackError,
    check,
    field,
    read_bytes,
    read_cache_json,
)
from genedge.user_cache import user_cache

from . import registry
from .machine import cpu_model

log = logging.getLogger("genedge.runtime")

FORMAT = "genedge.tune"
VERSION = 1
MAX_TUNE_BATCH = 4096
LOCK_WAIT_S = 10.0  # another tune's cache write holds the lock for milliseconds
_VERSIONED = ("genedge", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt")


def cache_dir() -> Path:
    """Where tunings are kept (the folder may not exist yet)."""
    return user_cache("tune")


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Installed versions of the packages whose speed a tuning measured (no imports; read once
    per process: importlib.metadata's first lookup costs tens of milliseconds)."""
    from importlib import metadata

    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def manifest_sha256(manifest: Manifest) -> str:
    path = Path(manifest.root) / MANIFEST_NAME
    return hashlib.sha256(read_bytes(path, what="Manifest", limit=MANIFEST_BYTES)).hexdigest()


def tune_identity(manifest: Manifest, graph: str, threads: int | None) -> dict[str, Any]:
    """Everything a measurement depends on; its hash is the cache key."""
    return {
        "manifest_sha256": manifest_sha256(manifest),
        "graph": graph,
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "versions": library_versions(),
    }


def tune_key(identity: dict[str, Any]) -> str:
    """The cache file's name: the bundle's manifest hash first (so that ``auto`` finds out
    cheaply that a bundle was never tuned), then the hash of the whole identity."""
    whole = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{identity['manifest_sha256'][:16]}-{whole[:32]}"


def tune_path(manifest: Manifest, graph: str, threads: int | None) -> Path:
    return cache_dir() / f"{tune_key(tune_identity(manifest, graph, threads))}.json"


def ever_tuned(manifest: Manifest) -> bool:
    """Whether any tuning of this bundle is cached here (any machine state, any threads)."""
    try:
        return any(cache_dir().glob(f"{manifest_sha256(manifest)[:16]}-*.json"))
    except OSError:
        return False


def read_tuning(path: Path) -> dict[str, Any] | None:
    """A cached tuning, or None: silently when absent, with one warning when the file is not
    a regular file, too large, not JSON or not a tuning (``checked_tuning``)."""
    return read_cache_json(path, what="Tuning cache", limit=TUNE_CACHE_BYTES, schema=checked_tuning)


_LABEL = re.compile(r"([a-z0-9-]{1,16}) ([a-z0-9]{1,16})")
_MAX_MS = 1e9  # a p50 past 11 days is no measurement


def checked_tuning(data: Any) -> dict[str, Any]:
    """``data`` if it is a tuning as ``tune_manifest`` writes it, else ``ReadbackError``:
    batch keys are sizes in [1, MAX_TUNE_BATCH], labels name a backend and a precision,
    times are positive numbers."""
    where = "Tuning cache"
    check(data, dict, where=where)
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ReadbackError(f"{where}: not a {FORMAT} version {VERSION} file.")
    for b, rec in field(data, "batches", dict, where=where, max_len=MAX_TUNE_BATCH).items():
        at = f"{where}: batch {printable(b, 20)}"
        if not (b.isascii() and b.isdigit() and 1 <= int(b[:5]) <= MAX_TUNE_BATCH):
            raise ReadbackError(f"{at}: expected a batch size in [1, {MAX_TUNE_BATCH}].")
        check(rec, dict, where=at)
        for key in ("p50_ms", "relative"):
            for label, value in field(rec, key, dict, where=at, default={}, max_len=64).items():
                m = _LABEL.fullmatch(label)
                if m is None or m.group(1) not in registry.names():
                    raise ReadbackError(
                        f"{at}: {printable(label, 40)} is no backend and precision."
                    )
                check(value, (int, float), where=f"{at}: {label}", low=0, high=_MAX_MS)
    for label, why in field(data, "skipped", dict, where=where, default={}, max_len=64).items():
        check(why, str, where=f"{where}: skipped {printable(label, 40)}", max_len=1024)
    return data


def write_tuning(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """Merge ``data``'s batches into the cache file ``path`` and write it atomically, under
    the cache folder's lock, so that two ``tune`` runs keep both results (for one batch, the
    later measurement wins). Returns what was written, or None (with a warning) where the
    cache is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with folder_lock(path.parent, who="tune", wait_s=LOCK_WAIT_S):
            old = read_tuning(path)
            if old is not None:
                data = {**data, "batches": {**old["batches"], **data["batches"]}}
            atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except (OSError, GenedgeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        log.warning("tuning not cached (%s); set GENEDGE_CACHE to a writable folder", why)
        return None
    return data

"""Atomic file writes and the manifest that seals a results folder.

Every file the simulator writes goes through :func:`atomic_write_bytes` (or its text and
CSV forms): the bytes go to a temporary file beside the target, are flushed to disk, and
the temporary file is renamed over the target. A reader therefore sees either the old
file or the new one, never a half-written one, whatever moment the process is killed.

A finished results folder (a run or an experiment) carries ``manifest.json``::

    {
      "format": "loyalty-sim manifest 1",
      "kind": "run",                       # or replications, compare, sweep, retention-effect
      "package_version": "0.1.0",
      "seed": 42,                          # the run's seed, or the experiment's base seed
      "scenario_sha256": "...",            # or {variant: sha256} for an experiment
      "python": "3.12.1", "numpy": "2.1.3", "platform": "Linux-...",
      "created_utc": "2026-11-22T20:00:00+00:00",
      "timings": {...},                    # optional: seconds spent building and running
      "files": {"metrics.csv": "<sha256>", "charts/profit.png": "<sha256>", ...}
    }

Everything that changes from one run to the next (the time, the timings, the platform)
lives only in the manifest, so every other file of a folder is byte-identical for the same
scenario, seed and package version. :func:`check_folder` compares a folder with its
manifest and lists every missing, changed, unlisted or half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sim.parallel import default_threads

MANIFEST = "manifest.json"
FORMAT = "loyalty-sim manifest 1"
#: Flush each file to disk before renaming it (set LOYALTY_SIM_FSYNC=0 to skip: a killed
#: process still never leaves a half-written file, only a power cut could).
FSYNC = os.environ.get("LOYALTY_SIM_FSYNC", "1") != "0"
#: Suffix of the temporary files of :func:`atomic_write_bytes` (left behind only by a killed process).
TMP_SUFFIX = ".tmp"


class FolderError(Exception):
    """A results folder that is damaged or incomplete: one line per problem."""

    def __init__(self, folder: Path, problems: Iterable[str]) -> None:
        self.folder = Path(folder)
        self.problems = list(problems)
        super().__init__(f"{folder}: " + "; ".join(self.problems))


# --------------------------------------------------------------------------- atomic writes


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it is flushed to disk
    and renamed over ``path``, on any failure it is removed (``path`` is never half-written)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if FSYNC:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half-written)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def atomic_csv(frame, path: str | Path, float_format: str = "%.10g") -> Path:
    """A pandas frame as CSV, written atomically (streamed to the temporary file)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False, float_format=float_format, lineterminator="\n")
    return Path(path)


#: Rows of a piece of a large CSV file turned into text at once (about 25 MB of text).
CSV_PIECE_ROWS = 125_000


def atomic_table_csv(table, path: str | Path, threads: int | None = None) -> Path:
    """A large table (Arrow, or a pandas frame) as CSV, written atomically by Arrow's writer
    (compiled, about ten times faster than pandas' at a million rows): numbers at the
    shortest precision that reads back to the same value, text quoted.

    The rows are turned into text in pieces, on ``threads`` threads at once (default: every
    available core; Arrow's writer runs without Python's lock), and the pieces are written in
    order, so the file is the same on any number of threads; at most two pieces per thread
    are held in memory."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    threads = threads or default_threads()
    rows = max(1, min(CSV_PIECE_ROWS, -(-table.num_rows // threads)))
    starts = range(0, max(table.num_rows, 1), rows)

    def piece(k: int) -> pa.Buffer:
        sink = pa.BufferOutputStream()
        options = pa_csv.WriteOptions(include_header=k == 0, quoting_style="needed")
        pa_csv.write_csv(table.slice(starts[k], rows), sink, write_options=options)
        return sink.getvalue()

    with atomic_open(path, "wb") as fh:
        if threads == 1 or len(starts) == 1:
            for k in range(len(starts)):
                fh.write(piece(k))
        else:
            with ThreadPoolExecutor(threads, thread_name_prefix="loyalty-sim-csv") as pool:
                ahead: deque = deque()  # pieces being turned into text, in order
                for k in range(len(starts)):
                    ahead.append(pool.submit(piece, k))
                    if len(ahead) == 2 * threads:
                        fh.write(ahead.popleft().result())
                while ahead:
                    fh.write(ahead.popleft().result())
    return Path(path)


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside ``path`` durable (best effort: not every system allows it)."""
    if not FSYNC:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- hashes and manifest


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_temporary(relative: str) -> bool:
    """A leftover temporary file of an interrupted write (hidden name ending in .tmp)."""
    name = relative.rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def folder_files(folder: str | Path) -> list[str]:
    """Every regular file under ``folder`` (posix paths relative to it, sorted), but the manifest."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        if path.is_file() or path.is_symlink():
            relative = path.relative_to(folder).as_posix()
            if relative != MANIFEST:
                found.append(relative)
    return sorted(found)


def file_hashes(folder: str | Path) -> dict[str, str]:
    folder = Path(folder)
    return {rel: sha256_file(folder / rel) for rel in folder_files(folder) if not is_temporary(rel)}


def environment() -> dict[str, str]:
    """The versions and platform a folder was written with."""
    import numpy

    from sim import __version__

    return {
        "package_version": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def write_manifest(folder: str | Path, *, kind: str, seed: int, scenario_sha256: Any, timings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Seal ``folder``: hash every file in it and write ``manifest.json`` (atomically)."""
    folder = Path(folder)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "seed": seed,
        "scenario_sha256": scenario_sha256,
        **environment(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if timings:
        manifest["timings"] = timings
    manifest["files"] = file_hashes(folder)
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def refresh_manifest(folder: str | Path) -> dict[str, Any]:
    """Re-hash the files of a sealed folder after adding files to it (e.g. charts drawn later).

    The files the manifest already lists must still match it: a damaged folder is never
    re-sealed (raises :class:`FolderError`)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    changed = [rel for rel, digest in manifest["files"].items() if not (folder / rel).is_file() or sha256_file(folder / rel) != digest]
    if changed:
        raise FolderError(folder, [f"{rel}: changed or missing since the folder was written" for rel in changed])
    manifest["files"] = file_hashes(folder)
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of ``folder``; :class:`FolderError` if it is missing or unreadable."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FolderError(folder, [f"no {MANIFEST}: the folder is incomplete (its writing was interrupted) or is not a results folder"])
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderError(folder, [f"{MANIFEST} cannot be read: {exc}"]) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FolderError(folder, [f"{MANIFEST} is not a loyalty-sim manifest (no format '{FORMAT}')"])
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise FolderError(folder, [f"{MANIFEST} has no valid 'files' table"])
    bad = [rel for rel in files if rel.startswith("/") or ".." in rel.split("/")]
    if bad:
        raise FolderError(folder, [f"{MANIFEST} names files outside the folder: {', '.join(bad)}"])
    return manifest


def check_folder(folder: str | Path) -> list[str]:
    """Every problem of a sealed folder, one line each (empty: the folder is intact)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    try:
        manifest = read_manifest(folder)
    except FolderError as exc:
        return exc.problems
    problems = []
    listed = manifest["files"]
    for rel, digest in listed.items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{rel}: changed since it was written (sha256 differs from the manifest)")
    for rel in folder_files(folder):
        if rel in listed:
            continue
        if is_temporary(rel):
            problems.append(f"{rel}: a half-written temporary file (a write was interrupted)")
        else:
            problems.append(f"{rel}: not in the manifest (written after the folder was sealed, or added by hand)")
    return problems


def require_intact(folder: str | Path) -> dict[str, Any]:
    """The manifest of an intact folder; :class:`FolderError` listing every problem otherwise."""
    problems = check_folder(folder)
    if problems:
        raise FolderError(Path(folder), problems)
    return read_manifest(folder)

"""The results store: one SQLite file (`results.sqlite`) in the output folder, written as results arrive.

Tables: `config` (the run identity, one JSON record), `models` (hash, metadata, accuracies per model), `images`
(label and prediction per model and test image), `results` (one row per model, image, target and method),
`robust` (whether a fixed-radius attack, AutoAttack, found an adversarial point per model, image and radius),
`sessions` (start, end and wall time of each `advgap run` on the folder). WAL mode, one transaction per group of
rows, and a primary key on (model, image, target, method): a killed run loses at most the group in flight, and a
rerun skips every stored row. A writer holds an exclusive lock on `results.lock` beside the file, so a second run
on the same folder is refused; a SQLite file with tables that are not advgap's is refused without being touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from advgap.errors import ConfigError

FILENAME = "results.sqlite"
LOCKNAME = "results.lock"
SCHEMA = """
CREATE TABLE IF NOT EXISTS config (id INTEGER PRIMARY KEY CHECK (id = 1), identity TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model TEXT PRIMARY KEY, sha256 TEXT NOT NULL, meta TEXT NOT NULL,
    clean_accuracy REAL, fgsm_accuracy REAL, fgsm_delta REAL, n_test INTEGER
);
CREATE TABLE IF NOT EXISTS images (
    model TEXT NOT NULL, image INTEGER NOT NULL, label INTEGER NOT NULL, predicted INTEGER NOT NULL,
    PRIMARY KEY (model, image)
);
CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL, image INTEGER NOT NULL, target INTEGER NOT NULL, method TEXT NOT NULL,
    delta REAL, lower REAL, upper REAL, status TEXT NOT NULL, seconds REAL NOT NULL,
    engine TEXT NOT NULL, version TEXT NOT NULL, perturbation BLOB, created REAL NOT NULL,
    PRIMARY KEY (model, image, target, method)
);
CREATE TABLE IF NOT EXISTS robust (
    model TEXT NOT NULL, image INTEGER NOT NULL, delta REAL NOT NULL, method TEXT NOT NULL,
    refuted INTEGER NOT NULL, settings TEXT NOT NULL,
    PRIMARY KEY (model, image, delta, method)
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL, selection TEXT NOT NULL,
    workers INTEGER NOT NULL, rows_added INTEGER NOT NULL DEFAULT 0
);
"""


class RowStatus(Enum):
    """How a stored distance was obtained."""

    FOUND = "found"  # an attack reached the target; delta is the smallest δ it found (within tol)
    NOT_FOUND = "not_found"  # the attack did not reach the target even at δ = 1; delta is NULL
    EXACT = "exact"  # exact distance: upper - lower <= tol
    BOUNDS = "bounds"  # engine limit reached: a proven interval [lower, upper] wider than tol
    TIMEOUT = "timeout"  # time limit reached: [lower, upper] still proven


@dataclass(frozen=True)
class ResultRow:
    """One (model, image, target, method) result. For attacks lower/upper are None; for exact delta == upper."""

    model: str
    image: int
    target: int
    method: str
    delta: float | None
    status: RowStatus
    seconds: float
    engine: str
    version: str
    perturbation: np.ndarray | None = None
    lower: float | None = None
    upper: float | None = None
    created: float = 0.0

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.model, self.image, self.target, self.method)


@dataclass(frozen=True)
class RobustRow:
    """Whether `method` found an adversarial point within radius `delta` of one image; `settings` says how it ran."""

    model: str
    image: int
    delta: float
    method: str
    refuted: bool
    settings: str


@dataclass(frozen=True)
class ImageRow:
    """Label and prediction of one test image under one model."""

    model: str
    image: int
    label: int
    predicted: int

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


@dataclass(frozen=True)
class ModelRow:
    """A model as stored: weight hash, metadata and test accuracies (clean and under untargeted FGSM)."""

    model: str
    sha256: str
    meta: dict[str, Any]
    clean_accuracy: float | None = None
    fgsm_accuracy: float | None = None
    fgsm_delta: float | None = None
    n_test: int | None = None


def pack(perturbation: np.ndarray | None) -> bytes | None:
    """float32, zlib-compressed bytes of a perturbation (None stays None)."""
    if perturbation is None:
        return None
    return zlib.compress(np.ascontiguousarray(perturbation, dtype=np.float32).tobytes(), 6)


def unpack(blob: bytes | None) -> np.ndarray | None:
    """Inverse of `pack`: a flat float32 array."""
    if blob is None:
        return None
    return np.frombuffer(zlib.decompress(blob), dtype=np.float32)


def _real(value: float | None) -> float | None:
    """SQLite stores no inf: an infinite bound (no adversarial point at δ = 1) is stored as NULL."""
    return None if value is None or not math.isfinite(value) else float(value)


class ResultStore:
    """The SQLite store of one output folder. Use `ResultStore.open(folder, identity)` or `ResultStore.read`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock: int | None = None) -> None:
        self.path = path
        self._db = connection
        self._lock = lock

    @classmethod
    def open(cls, folder: str | Path, identity: dict[str, Any]) -> ResultStore:
        """Open or create the store in `folder`; raise ConfigError if it holds results of another identity."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{folder}: cannot create the output folder ({exc.strerror})") from exc
        _refuse_foreign(folder / FILENAME)  # before the lock file is made: a foreign folder is left as it was
        lock = _lock(folder)
        try:
            store = cls._connect(folder / FILENAME, lock)
        except BaseException:
            os.close(lock)
            raise
        stored, wanted = store.identity(), json.loads(json.dumps(identity))
        if stored is None:
            with store._db:
                store._db.execute("INSERT INTO config (id, identity) VALUES (1, ?)", (json.dumps(identity),))
        elif (merged := _with_models_of(stored, wanted)) is None:
            store.close()
            raise ConfigError(
                f"{folder} holds results of a different run configuration ({_differences(stored, identity)}); "
                "use another --out folder or the same settings"
            )
        elif merged != stored:
            with store._db:
                store._db.execute("UPDATE config SET identity = ? WHERE id = 1", (json.dumps(merged),))
        return store

    @classmethod
    def read(cls, folder: str | Path) -> ResultStore:
        """Open an existing store for reading; raise ConfigError if `folder` has none."""
        path = Path(folder) / FILENAME
        if not path.is_file():
            raise ConfigError(f"{path}: no results store (run `advgap run --out {folder}` first)")
        _refuse_foreign(path)
        return cls._connect(path)

    @classmethod
    def _connect(cls, path: Path, lock: int | None = None) -> ResultStore:
        try:
            db = sqlite3.connect(path, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path}: not a usable results store ({exc})") from exc
        return cls(path, db, lock)

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def identity(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT identity FROM config WHERE id = 1").fetchone()
        return None if row is None else json.loads(row[0])

    def put_model(self, row: ModelRow) -> None:
        """Record (or refresh) a model's hash, metadata and accuracies."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.model, row.sha256, json.dumps(row.meta, sort_keys=True), row.clean_accuracy, row.fgsm_accuracy,
                 row.fgsm_delta, row.n_test),
            )

    def models(self) -> list[ModelRow]:
        rows = self._db.execute("SELECT * FROM models ORDER BY rowid").fetchall()
        return [ModelRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def put_images(self, rows: Iterable[ImageRow]) -> None:
        """Record labels and predictions; rows already stored are kept."""
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?)",
                [(r.model, r.image, r.label, r.predicted) for r in rows],
            )

    def images(self, model: str | None = None) -> list[ImageRow]:
        query, args = "SELECT * FROM images", ()
        if model is not None:
            query, args = query + " WHERE model = ?", (model,)
        return [ImageRow(*r) for r in self._db.execute(query + " ORDER BY model, image", args)]

    def put_robust(self, rows: Iterable[RobustRow]) -> None:
        """Record fixed-radius attack outcomes in one transaction; keys already stored are kept."""
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO robust VALUES (?, ?, ?, ?, ?, ?)",
                [(r.model, r.image, r.delta, r.method, int(r.refuted), r.settings) for r in rows],
            )

    def robust(self, model: str) -> list[RobustRow]:
        rows = self._db.execute("SELECT * FROM robust WHERE model = ? ORDER BY image, delta, method", (model,))
        return [RobustRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def add(self, rows: Sequence[ResultRow], session: int | None = None) -> int:
        """Store `rows` in one transaction, skipping keys already stored; returns how many were new."""
        now = time.time()
        values = [
            (r.model, r.image, r.target, r.method, _real(r.delta), _real(r.lower), _real(r.upper), r.status.value,
             r.seconds, r.engine, r.version, pack(r.perturbation), r.created or now)
            for r in rows
        ]
        with self._db:
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", values)
            added = self._db.total_changes - before
            if session is not None:
                self._db.execute("UPDATE sessions SET rows_added = rows_added + ? WHERE id = ?", (added, session))
        return added

    def statuses(self, model: str) -> dict[tuple[int, int, str], RowStatus]:
        """The status of every stored row of `model`, keyed by (image, target, method)."""
        rows = self._db.execute("SELECT image, target, method, status FROM results WHERE model = ?", (model,))
        return {(int(i), int(t), str(m)): RowStatus(s) for i, t, m, s in rows}

    def results(self, model: str | None = None, method: str | None = None,
                images: Iterable[int] | None = None) -> list[ResultRow]:
        """Stored rows, optionally only one model, one method and some images, ordered by key."""
        clauses, args = [], []
        if model is not None:
            clauses.append("model = ?")
            args.append(model)
        if method is not None:
            clauses.append("method = ?")
            args.append(method)
        query = "SELECT * FROM results" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        wanted = None if images is None else set(images)
        out = []
        for r in self._db.execute(query + " ORDER BY model, image, target, method", args):
            if wanted is not None and r[1] not in wanted:
                continue
            infinite = r[7] in (RowStatus.EXACT.value, RowStatus.BOUNDS.value, RowStatus.TIMEOUT.value)
            upper = r[6] if r[6] is not None or not infinite else math.inf
            out.append(ResultRow(
                model=r[0], image=r[1], target=r[2], method=r[3], delta=r[4], lower=r[5], upper=upper,
                status=RowStatus(r[7]), seconds=r[8], engine=r[9], version=r[10], perturbation=unpack(r[11]),
                created=r[12],
            ))
        return out

    def begin_session(self, selection: str, workers: int) -> int:
        with self._db:
            cur = self._db.execute(
                "INSERT INTO sessions (started, selection, workers) VALUES (?, ?, ?)", (time.time(), selection, workers)
            )
        return int(cur.lastrowid)

    def end_session(self, session: int) -> None:
        with self._db:
            self._db.execute("UPDATE sessions SET finished = ? WHERE id = ?", (time.time(), session))

    def sessions(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT id, started, finished, selection, workers, rows_added FROM sessions ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur]


def _lock(folder: Path) -> int:
    """An open descriptor holding the exclusive lock of `folder`'s store; ConfigError if another process has it."""
    path = folder / LOCKNAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the store's lock file ({exc.strerror})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(f"{folder} is in use by another advgap run (pid {holder}); wait for it to finish "
                          "or use another --out folder") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


@functools.cache
def _schema_columns() -> dict[str, list[str]]:
    """Column names of each table of SCHEMA."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(SCHEMA)
        return _columns(db)


def _columns(db: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [c[1] for c in db.execute(f"PRAGMA table_info({t!r})")] for t in tables if not t.startswith("sqlite_")}


def _refuse_foreign(path: Path) -> None:
    """ConfigError, without writing to it, if `path` is a non-empty file that is not an advgap store: not SQLite,
    or holding a table advgap does not make or a table of advgap's name with other columns."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = _columns(db)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not a usable results store ({exc}); left untouched") from exc
    ours = _schema_columns()
    foreign = sorted(t for t, columns in tables.items() if ours.get(t) != columns)
    if foreign:
        raise ConfigError(f"{path}: not a usable results store (table {foreign[0]!r} is not advgap's); "
                          "left untouched, use another --out folder")


def _with_models_of(stored: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The stored identity extended by the wanted run's new models, or None if the two runs are not compatible:
    a run may bring models the folder does not hold yet, or leave some out, but every other setting, and the
    weights of every model both name, must be the same."""
    models_stored, models_wanted = stored.get("models"), wanted.get("models")
    if not (isinstance(models_stored, dict) and isinstance(models_wanted, dict)):
        return stored if stored == wanted else None
    rest = {k: v for k, v in stored.items() if k != "models"}
    if rest != {k: v for k, v in wanted.items() if k != "models"}:
        return None
    if any(models_stored[name] != sha for name, sha in models_wanted.items() if name in models_stored):
        return None
    return {**stored, "models": {**models_stored, **models_wanted}}


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """A short account of which identity entries differ, e.g. "tol: stored 0.001, now 0.01"."""
    wanted = json.loads(json.dumps(wanted))
    parts = []
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            parts.append(f"{key}: stored {_short(stored.get(key))}, now {_short(wanted.get(key))}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."

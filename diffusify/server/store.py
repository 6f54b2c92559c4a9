"""Jobs and their events, kept in SQLite (standard library) so that they survive the server.

* One row per job: its request, state, latest progress, summary or error. One row per event, numbered
  ``1, 2, 3...`` per job: the ids of the server-sent event stream, so a client that reconnects with
  ``Last-Event-ID`` is sent exactly what it missed.
* WAL mode: readers (the HTTP handlers, one connection per thread) never wait for the writer.
* Writes go through one lock: the event numbering must not race between the scheduler and a cancel request.
* A job's stream ends with a ``state`` event naming a final state; every path to a final state writes one
  (:meth:`JobStore.set_state`), so a client never waits on a stream that cannot end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "succeeded", "failed", "cancelled", "interrupted")
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, INTERRUPTED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    state TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    request TEXT NOT NULL,
    devices TEXT NOT NULL DEFAULT '[]',
    outputs TEXT NOT NULL DEFAULT '[]',
    idempotency_key TEXT UNIQUE,
    webhook TEXT,
    progress TEXT,
    summary TEXT,
    error TEXT,
    message TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, n);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""

_JSON_COLUMNS = ("request", "devices", "outputs", "progress", "summary", "error")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class JobStore:
    """The jobs database: safe to use from any thread.

    Args:
        path: the SQLite file (its folder is created).
    """

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._local = threading.local()
        self._write = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        db = self._db()
        with self._write:
            db.executescript(_SCHEMA)
        # the newest event id of every job, read without a query by the event streams (which poll it)
        self._last: dict[str, int] = {row[0]: row[1] for row in self._db().execute("SELECT id, last_seq FROM jobs")}

    # ---- connections -----------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file; kill -9 of the
            # server loses nothing (the WAL is in the OS's hands once written)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._conns_lock:
                self._conns.append(db)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        with self._write:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every connection (the store is unusable afterwards)."""
        with self._conns_lock:
            for db in self._conns:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()

    # ---- jobs ------------------------------------------------------------------------------------------------
    def create(self, job_id: str, *, name: str, request: dict[str, Any], devices: list[str], outputs: list[str],
               idempotency_key: str | None, webhook: str | None) -> dict[str, Any] | None:
        """Add a queued job and its first event. Returns None when ``idempotency_key`` is already taken."""
        now = time.time()
        try:
            with self._tx() as db:
                db.execute("INSERT INTO jobs (id, state, name, created, request, devices, outputs, idempotency_key,"
                           " webhook) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (job_id, QUEUED, name, now, _dumps(request), _dumps(devices), _dumps(outputs),
                            idempotency_key, webhook))
                self._append(db, job_id, [("state", {"event": "state", "time": round(now, 3), "state": QUEUED})])
        except sqlite3.IntegrityError:
            return None
        return self.get(job_id)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as a dict (JSON columns decoded), or None."""
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._job(row)

    def by_key(self, key: str) -> dict[str, Any] | None:
        """The job submitted with this idempotency key, or None."""
        row = self._db().execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else self._job(row)

    def list(self, *, states: list[str] | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Jobs, newest first, and how many match in all."""
        where, args = "", []
        if states:
            where = f"WHERE state IN ({','.join('?' * len(states))})"
            args = list(states)
        db = self._db()
        total = db.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]
        rows = db.execute(f"SELECT * FROM jobs {where} ORDER BY n DESC LIMIT ? OFFSET ?", [*args, limit, offset])
        return [self._job(r) for r in rows], total

    def ids_in_state(self, state: str) -> list[str]:
        """Ids of the jobs in ``state``, oldest first."""
        return [r[0] for r in self._db().execute("SELECT id FROM jobs WHERE state = ? ORDER BY n", (state,))]

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (JSON columns are encoded)."""
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        values = [_dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in fields.items()]
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", [*values, job_id])

    def set_state(self, job_id: str, state: str, **fields: Any) -> None:
        """Move a job to ``state`` and append the ``state`` event that says so (with ``message``/``error``/
        ``summary`` when given). Leaving a final state is ignored: the first end wins."""
        now = time.time()
        record: dict[str, Any] = {"event": "state", "time": round(now, 3), "state": state}
        record.update({k: fields[k] for k in ("message", "error", "summary", "frames") if fields.get(k) is not None})
        columns = {k: v for k, v in fields.items() if k in ("message", "error", "summary", "progress")}
        if state == RUNNING:
            columns["started"] = now
        elif state in FINAL:
            columns["ended"] = now
        cols = "".join(f", {k} = ?" for k in columns)
        values = [_dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in columns.items()]
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[0] in FINAL:
                return
            db.execute(f"UPDATE jobs SET state = ?{cols} WHERE id = ?", [state, *values, job_id])
            self._append(db, job_id, [("state", record)])

    def delete(self, job_id: str) -> None:
        """Remove a job and its events."""
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        self._last.pop(job_id, None)

    # ---- events ----------------------------------------------------------------------------------------------
    def _append(self, db: sqlite3.Connection, job_id: str, events: list[tuple[str, dict[str, Any] | str]]) -> None:
        seq = self._last.get(job_id, 0)
        rows = []
        for name, record in events:
            seq += 1
            rows.append((job_id, seq, name, record if isinstance(record, str) else _dumps(record)))
        db.executemany("INSERT INTO events (job_id, seq, event, data) VALUES (?, ?, ?, ?)", rows)
        db.execute("UPDATE jobs SET last_seq = ? WHERE id = ?", (seq, job_id))
        self._last[job_id] = seq

    def append_events(self, job_id: str, events: list[tuple[str, dict[str, Any] | str]],
                      progress: dict[str, Any] | None = None) -> None:
        """Append engine events (records, or their JSON text) to a job, and its latest progress, in one
        transaction."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                return
            self._append(db, job_id, events)
            if progress is not None:
                db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (_dumps(progress), job_id))

    def last_seq(self, job_id: str) -> int:
        """The newest event id of a job (0 when it has none or does not exist); no query."""
        return self._last.get(job_id, 0)

    def events_after(self, job_id: str, after: int, limit: int = 500) -> list[tuple[int, str, str]]:
        """``(seq, event, data JSON)`` of the events after ``after``, oldest first."""
        return [(r[0], r[1], r[2]) for r in self._db().execute(
            "SELECT seq, event, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after, limit))]

    def count_events(self, job_id: str) -> int:
        """How many events a job has stored."""
        return int(self._db().execute("SELECT COUNT(*) FROM events WHERE job_id = ?", (job_id,)).fetchone()[0])

    # ---- decoding --------------------------------------------------------------------------------------------
    @staticmethod
    def _job(row: sqlite3.Row) -> dict[str, Any]:
        job = dict(row)
        for k in _JSON_COLUMNS:
            if job.get(k) is not None:
                job[k] = json.loads(job[k])
        return job

"""The job queue and the worker processes.

* A bounded queue, in submission order. A job starts when a worker slot is free and none of its GPUs is in use
  by a running job or wanted by a job that waits before it (so a big job is not starved by small ones behind
  it). The CPU is shared: jobs on it run side by side, up to the number of workers.
* Each job runs in a worker process (:mod:`diffusify.server.worker`), spawned, never forked (a forked CUDA
  context is unusable). A worker that ran a job to success is kept for the next one (the engine's imports are
  paid once); after a failure or a cancel it is retired, so no state of a broken run leaks into the next job.
* One thread (the pump) reads every worker's pipe, writes the events to the store, notices dead workers and starts
  queued jobs; requests only enqueue, cancel and wake it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from diffusify.server.config import ServerConfig
from diffusify.server.store import CANCELLED, FAILED, INTERRUPTED, QUEUED, RUNNING, SUCCEEDED, JobStore
from diffusify.server.submit import Prepared

log = logging.getLogger("diffusify.server")
_CTX = multiprocessing.get_context("spawn")
_JOBS_PER_WORKER = 50  # then a fresh process: bounds what a long-lived process may accumulate


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already (HTTP 429)."""


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: str | None = None
    jobs_run: int = 0
    user_cancel: bool = False
    shutdown: bool = False
    kill_at: float | None = None
    killed: bool = False


class Scheduler:
    """Runs queued jobs in worker processes and records everything in the store.

    Args:
        store: the jobs database.
        config: the server's settings (``workers``, ``max_queue``, ``cancel_grace``, ``previews``).
        notify: called with a job when it reaches a final state (the webhook sender); must not block.
    """

    def __init__(self, store: JobStore, config: ServerConfig, notify: Callable[[dict[str, Any]], None] | None = None):
        self.store = store
        self.config = config
        self.notify = notify or send_webhook
        self._lock = threading.RLock()
        self._queue: list[str] = []
        self._specs: dict[str, tuple[dict[str, Any], set[str]]] = {}
        self._workers: list[_Worker] = []
        self._wake_r, self._wake_w = _CTX.Pipe(duplex=False)
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ---- life ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Recover what a killed server left, then start the pump thread."""
        os.makedirs(self.config.previews, exist_ok=True)
        for job_id in self.store.ids_in_state(RUNNING):
            job = self.store.get(job_id) or {}
            frames = (job.get("progress") or {}).get("frames")
            self.store.set_state(job_id, INTERRUPTED, frames=frames,
                                 message="the server stopped while the job ran; its outputs hold what was written "
                                 f"until then ({frames if frames is not None else 'no'} frames reported)")
        for job_id in self.store.ids_in_state(QUEUED):
            job = self.store.get(job_id)
            if job is not None:
                self._queue.append(job_id)
                self._specs[job_id] = (job["request"], set(job["devices"]))
        self._thread = threading.Thread(target=self._pump, name="diffusify:scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop: running jobs are cancelled gracefully (their outputs finalised) and end as interrupted; a worker
        that has not finished within ``timeout`` seconds is killed. Queued jobs stay queued for the next start."""
        with self._lock:
            self._stopping = True
            for w in self._workers:
                if w.job is not None:
                    w.shutdown = True
                    self._send(w, ("cancel", False))
            self._wake()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(w.job for w in self._workers):
            time.sleep(0.1)
        with self._lock:
            for w in self._workers:
                if w.job is not None:
                    w.process.kill()
                else:
                    self._send(w, ("exit",))
        if self._thread is not None:
            self._thread.join(5)
        for w in list(self._workers):
            w.process.join(5)

    # ---- requests --------------------------------------------------------------------------------------------
    def submit(self, job_id: str, prepared: Prepared, *, request: dict[str, Any], idempotency_key: str | None,
               webhook: str | None) -> tuple[dict[str, Any], bool]:
        """Queue a checked job. Returns ``(job, created)``: with a known idempotency key, the job it made.

        Raises:
            QueueFull: ``max_queue`` jobs wait already.
        """
        with self._lock:
            if idempotency_key is not None:
                known = self.store.by_key(idempotency_key)
                if known is not None:
                    return known, False
            if len(self._queue) >= self.config.max_queue:
                raise QueueFull(f"the queue is full ({self.config.max_queue} jobs wait); try again later")
            spec = {**prepared.spec, "request": request}
            job = self.store.create(job_id, name=prepared.name, request=spec, devices=prepared.devices,
                                    outputs=prepared.outputs, idempotency_key=idempotency_key, webhook=webhook)
            if job is None:  # the same key raced in from another request
                known = self.store.by_key(idempotency_key or "")
                assert known is not None
                return known, False
            self._queue.append(job_id)
            self._specs[job_id] = (spec, set(prepared.devices))
            self._wake()
            return job, True

    def cancel(self, job_id: str, *, now: bool = False) -> dict[str, Any] | None:
        """Cancel one job: a queued one at once, a running one gracefully (or at once with ``now``; a worker that
        has not stopped ``cancel_grace`` seconds later is killed). None when there is no such job."""
        with self._lock:
            job = self.store.get(job_id)
            if job is None:
                return None
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._specs.pop(job_id, None)
                self.store.set_state(job_id, CANCELLED, message="cancelled before it started")
            else:
                w = self._worker_of(job_id)
                if w is not None:
                    w.user_cancel = True
                    self._send(w, ("cancel", now))
                    if now and w.kill_at is None:
                        w.kill_at = time.monotonic() + self.config.cancel_grace
            return self.store.get(job_id)

    def position(self, job_id: str) -> int | None:
        """0 for the next job to start, 1 for the one after... None when not queued."""
        with self._lock:
            return self._queue.index(job_id) if job_id in self._queue else None

    def worker_pid(self, job_id: str) -> int | None:
        """The process id of the worker running ``job_id``."""
        with self._lock:
            w = self._worker_of(job_id)
            return None if w is None else w.process.pid

    def counts(self) -> dict[str, int]:
        """Queued and running jobs, and live worker processes."""
        with self._lock:
            return {"queued": len(self._queue), "running": sum(1 for w in self._workers if w.job),
                    "workers": len(self._workers), "max_workers": self.config.workers,
                    "max_queue": self.config.max_queue}

    # ---- the pump --------------------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(None)
        except OSError:
            pass

    def _send(self, w: _Worker, message: tuple[Any, ...]) -> None:
        try:
            w.conn.send(message)
        except OSError:
            pass  # the worker is dead; its sentinel reports it

    def _worker_of(self, job_id: str) -> _Worker | None:
        return next((w for w in self._workers if w.job == job_id), None)

    def _pump(self) -> None:
        while True:
            with self._lock:
                if self._stopping and not any(w.job for w in self._workers) and not self._workers_alive():
                    return
                waitables: list[Any] = [self._wake_r]
                for w in self._workers:
                    waitables += [w.conn, w.process.sentinel]
            try:
                ready = wait(waitables, timeout=0.5)
            except OSError:
                ready = []
            try:
                self._handle(ready)
            except Exception:  # noqa: BLE001 - the pump must outlive any one bad message
                log.exception("job scheduler error")
            if self._stopping and not any(w.job for w in self._workers):
                return

    def _workers_alive(self) -> bool:
        return any(w.process.is_alive() for w in self._workers)

    def _handle(self, ready: list[Any]) -> None:
        if self._wake_r in ready:
            while self._wake_r.poll():
                self._wake_r.recv()
        for w in list(self._workers):
            if w.conn in ready:
                self._read(w)
            if w.process.sentinel in ready or not w.process.is_alive():
                self._read(w)
                self._dead(w)
        now = time.monotonic()
        with self._lock:
            for w in self._workers:
                if w.kill_at is not None and now >= w.kill_at and not w.killed:
                    w.killed = True
                    w.process.kill()
        self._schedule()

    def _read(self, w: _Worker) -> None:
        """Store every message the worker has sent so far (events in one transaction per job)."""
        batch: list[tuple[str, str]] = []
        progress: dict[str, Any] | None = None
        done: dict[str, Any] | None = None
        try:
            while w.conn.poll():
                message = w.conn.recv()
                if message[0] == "event" and w.job is not None:
                    batch.append((message[1], message[2]))
                    if message[1] == "progress":
                        progress = json.loads(message[2])
                    elif message[1] == "start":
                        # the frame total is known from the start, before the first progress event
                        total = json.loads(message[2]).get("total_frames")
                        progress = {"frames": 0, "total_frames": total, "fps": 0.0, "eta": None, "elapsed": 0.0,
                                    "nodes": []}
                elif message[0] == "done":
                    done = message[1]
                    break
        except (EOFError, OSError):
            pass
        if w.job is not None and (batch or progress):
            self.store.append_events(w.job, batch, progress)
        if done is not None and w.job is not None:
            self._finish(w, done)

    def _finish(self, w: _Worker, outcome: dict[str, Any]) -> None:
        job_id = w.job
        assert job_id is not None
        state = outcome["state"]
        if state == CANCELLED and not w.user_cancel:
            state = INTERRUPTED  # stopped by the server's shutdown, not by a request
        summary = outcome.get("summary")
        self.store.set_state(job_id, state, message=outcome.get("message"), error=outcome.get("error"),
                             summary=summary, frames=(summary or {}).get("frames"))
        with self._lock:
            w.job = None
            w.jobs_run += 1
            w.user_cancel = w.shutdown = False
            w.kill_at = None
            if state != SUCCEEDED or w.jobs_run >= _JOBS_PER_WORKER or self._stopping:
                self._send(w, ("exit",))
                self._retire(w)
        self._notify(job_id)

    def _retire(self, w: _Worker) -> None:
        if w in self._workers:
            self._workers.remove(w)
        # reap it off the pump thread: a worker still finalising may take a moment to exit
        threading.Thread(target=w.process.join, args=(30,), daemon=True).start()

    def _dead(self, w: _Worker) -> None:
        """A worker process ended: its job, if any, ends with the reason."""
        w.process.join(1)
        code = w.process.exitcode
        with self._lock:
            job_id = w.job
            w.job = None
            if w in self._workers:
                self._workers.remove(w)
        if job_id is None:
            return
        how = f"signal {-code} ({signal.Signals(-code).name})" if code is not None and code < 0 \
            else f"exit code {code}"
        if w.killed:
            self.store.set_state(job_id, CANCELLED, message=f"cancelled: the job did not stop within "
                                 f"{self.config.cancel_grace:g} s, so its worker process was killed")
        else:
            self.store.set_state(job_id, FAILED, message=f"worker process died ({how})",
                                 error={"message": f"worker process died ({how})", "type": "worker",
                                        "node": None, "frame": None})
        self._notify(job_id)

    def _schedule(self) -> None:
        with self._lock:
            if self._stopping:
                return
            busy = {d for w in self._workers if w.job for d in self._specs.get(w.job, ({}, set()))[1]}
            running = sum(1 for w in self._workers if w.job)
            waiting_before: set[str] = set()
            for job_id in list(self._queue):
                if running >= self.config.workers:
                    break
                spec, devices = self._specs[job_id]
                if devices & (busy | waiting_before):
                    waiting_before |= devices
                    continue
                self._queue.remove(job_id)
                self._launch(job_id, spec)
                busy |= devices
                running += 1

    def _launch(self, job_id: str, spec: dict[str, Any]) -> None:
        w = next((w for w in self._workers if w.job is None and w.process.is_alive()), None)
        if w is None:
            from diffusify.server.worker import worker_main

            parent, child = _CTX.Pipe()
            process = _CTX.Process(target=worker_main, args=(child,), name="diffusify-worker", daemon=True)
            process.start()
            child.close()
            w = _Worker(process, parent)
            self._workers.append(w)
        w.job = job_id
        run_spec = {**spec, "preview_path": os.path.join(self.config.previews, f"{job_id}.jpg")}
        run_spec.pop("request", None)
        self._send(w, ("job", run_spec))
        self.store.set_state(job_id, RUNNING)

    def _notify(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is not None and job.get("webhook"):
            self.notify(job)


def send_webhook(job: dict[str, Any]) -> None:
    """POST the ended job (id, state, message, error, summary) to its webhook, in a thread of its own: best
    effort, 10 s timeout, never blocking the scheduler."""
    body = json.dumps({"id": job["id"], "state": job["state"], "name": job["name"], "message": job.get("message"),
                       "error": job.get("error"), "summary": job.get("summary")}, default=str).encode()

    def post() -> None:
        req = urllib.request.Request(job["webhook"], data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "diffusify"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - http(s) only, checked at submit
                r.read(1024)
        except Exception as e:  # noqa: BLE001 - best effort: a dead receiver must not affect the job
            log.warning("webhook %s for job %s failed: %s", job["webhook"], job["id"], e)

    threading.Thread(target=post, name="diffusify:webhook", daemon=True).start()

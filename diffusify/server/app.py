"""The HTTP API (FastAPI): processors, schema, validation, jobs, their event streams, outputs and previews.

Every route answers JSON (the event stream, files and the dashboard aside); errors are ``{"detail": "..."}``
with one line, plus ``problems`` for an invalid recipe. The OpenAPI page is at ``/docs``.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from diffusify.server.config import ServerConfig
from diffusify.server.scheduler import QueueFull, Scheduler
from diffusify.server.security import Guard, PathRefused, check_inside
from diffusify.server.store import FINAL, STATES, JobStore
from diffusify.server.submit import Invalid, JobRequest, TooLarge, check_request, prepare

API = "/v1"


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def job_view(job: dict[str, Any], *, position: int | None = None, worker_pid: int | None = None) -> dict[str, Any]:
    """A job as the API shows it: state, progress (frames done/total, fps, ETA, per node), outputs, and the
    summary or the error at the end."""
    progress = job.get("progress") or {}
    summary = job.get("summary")
    frames = summary.get("frames") if summary else progress.get("frames", 0)
    return {
        "id": job["id"], "name": job["name"], "state": job["state"], "position": position,
        "created": job["created"], "started": job["started"], "ended": job["ended"],
        "frames": frames, "total_frames": progress.get("total_frames"),
        "fps": summary.get("fps") if summary else progress.get("fps"),
        "eta": None if job["state"] in FINAL else progress.get("eta"), "elapsed": progress.get("elapsed"),
        "nodes": progress.get("nodes", []), "devices": job["devices"], "outputs": job["outputs"],
        "message": job.get("message"), "error": job.get("error"), "summary": summary,
        "events": job["last_seq"], "worker_pid": worker_pid,
    }


def _system(config: ServerConfig, scheduler: Scheduler) -> dict[str, Any]:
    from importlib.metadata import version

    from diffusify.runtime.plan import visible_devices

    devices: list[dict[str, Any]] = []
    for d in visible_devices():
        entry: dict[str, Any] = {"id": d}
        if d.startswith("cuda"):
            import torch

            i = int(d.split(":")[1])
            free, total = torch.cuda.mem_get_info(i)
            entry.update(name=torch.cuda.get_device_name(i), memory_total=total, memory_free=free)
        devices.append(entry)
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    available = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    return {"version": version("diffusify"), "devices": devices, "cpus": os.cpu_count(),
            "memory": {"total": pages * page, "available": available * page},
            "jobs": scheduler.counts(), "roots": config.roots}


def _recipes(folder: str, limit: int = 500) -> list[str]:
    """Recipe files (``*.yaml``/``*.yml``) in ``folder`` and its subfolders two levels down, relative to it."""
    found: list[str] = []
    base = folder.rstrip(os.sep).count(os.sep)
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if here.count(os.sep) - base >= 2:
            dirs[:] = []
        found += [os.path.relpath(os.path.join(here, f), folder) for f in sorted(files)
                  if f.endswith((".yaml", ".yml"))]
        if len(found) >= limit:
            break
    return sorted(found)[:limit]


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The job server as an ASGI application.

    Relative paths of inline recipes start at the process's current folder: :func:`diffusify.server.serve`
    makes that the first root.
    """
    config = config or ServerConfig()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store = JobStore(config.database)
        scheduler = Scheduler(store, config)
        scheduler.start()
        state.update(store=store, scheduler=scheduler)
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.stop)
            store.close()

    app = FastAPI(title="Diffusify job server", version="1", lifespan=lifespan,
                  description="Submit recipes as jobs, follow their events, cancel them and collect outputs.")
    app.add_middleware(Guard, config=config)

    def store() -> JobStore:
        return state["store"]

    def scheduler() -> Scheduler:
        return state["scheduler"]

    def found(job_id: str) -> dict[str, Any] | JSONResponse:
        job = store().get(job_id)
        return job if job is not None else _error(404, f"no job {job_id}")

    def view(job: dict[str, Any]) -> dict[str, Any]:
        position = scheduler().position(job["id"])
        if position is None and job["state"] == "queued":
            position = 0  # read while the scheduler was starting it
        return job_view(job, position=position, worker_pid=scheduler().worker_pid(job["id"]))

    # ---- the engine's facts ----------------------------------------------------------------------------------
    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        """Liveness: the server answers."""
        return {"ok": True}

    @app.get(f"{API}/system", tags=["server"])
    def system() -> dict[str, Any]:
        """Devices (with GPU memory), host memory, CPUs, the version, the roots and the job counts."""
        return _system(config, scheduler())

    @app.get(f"{API}/processors", tags=["recipes"])
    def processors() -> list[dict[str, Any]]:
        """Every processor: parameters, ports and kinds (as ``diffusify processors NAME --format json``)."""
        from diffusify.processors.describe import describe_json
        from diffusify.processors.registry import default_registry

        return [describe_json(c) for c in default_registry()]

    @app.get(f"{API}/schema", tags=["recipes"])
    def schema() -> Response:
        """The recipe JSON Schema (as ``diffusify schema``)."""
        from diffusify.recipe.schema import schema_json

        return Response(schema_json(), media_type="application/schema+json")

    @app.get(f"{API}/recipes", tags=["recipes"])
    def recipes() -> dict[str, Any]:
        """The recipe files of the server's recipe folder (``recipe_path`` values for a job)."""
        assert config.recipes_dir is not None
        rel = os.path.relpath(config.recipes_dir, config.roots[0])
        return {"folder": config.recipes_dir,
                "recipes": [os.path.normpath(os.path.join(rel, r)) for r in _recipes(config.recipes_dir)]}

    @app.post(f"{API}/validate", tags=["recipes"])
    def validate(body: JobRequest) -> Any:
        """Every problem of a recipe with its overrides (as ``diffusify validate``), with line and column."""
        try:
            problems = check_request(body, config)
        except PathRefused as e:
            return _error(403, str(e))
        except TooLarge as e:
            return _error(413, str(e))
        except Invalid as e:
            return {"ok": False, "problems": e.problems}
        return {"ok": not any(p.severity == "error" for p in problems), "problems": [p.to_json() for p in problems]}

    # ---- jobs ------------------------------------------------------------------------------------------------
    @app.post(f"{API}/jobs", status_code=202, tags=["jobs"])
    def submit(body: JobRequest, idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Any:
        """Queue a job: 202 with its id, state and queue position; 422 with the problems of an invalid recipe;
        403 for a path outside the roots; 413 for a recipe over the bound; 429 when the queue is full."""
        key = body.idempotency_key or idempotency_key
        if key is not None:
            known = store().by_key(key)
            if known is not None:
                return JSONResponse(view(known), status_code=200)
        try:
            prepared = prepare(body, config)
            job, created = scheduler().submit(f"j{secrets.token_hex(6)}", prepared,
                                              request=body.model_dump(exclude_none=True),
                                              idempotency_key=key, webhook=body.webhook)
        except PathRefused as e:
            return _error(403, str(e))
        except TooLarge as e:
            return _error(413, str(e))
        except Invalid as e:
            return _error(422, "the recipe is invalid: " + str(e), problems=e.problems)
        except QueueFull as e:
            return JSONResponse({"detail": str(e)}, status_code=429, headers={"Retry-After": "5"})
        out = view(store().get(job["id"]) or job)  # the state now: the scheduler may have started it already
        out["warnings"] = [p.to_json() for p in prepared.warnings]
        return JSONResponse(out, status_code=202 if created else 200)

    @app.get(f"{API}/jobs", tags=["jobs"])
    def jobs(state_: Annotated[list[str] | None, Query(alias="state")] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        """Jobs, newest first: ``?state=running&state=queued``, ``limit`` and ``offset``."""
        bad = [s for s in state_ or [] if s not in STATES]
        if bad:
            return _error(422, f"unknown state {bad[0]!r}; states: {', '.join(STATES)}")
        rows, total = store().list(states=state_, limit=limit, offset=offset)
        nxt = offset + len(rows) if offset + len(rows) < total else None
        return {"jobs": [view(j) for j in rows], "total": total, "offset": offset, "next_offset": nxt}

    @app.get(f"{API}/jobs/{{job_id}}", tags=["jobs"])
    def job(job_id: str) -> Any:
        """One job: state, frames done/total, fps, ETA, per-node progress, outputs; summary or error at the end."""
        j = found(job_id)
        return j if isinstance(j, JSONResponse) else view(j)

    @app.delete(f"{API}/jobs/{{job_id}}", tags=["jobs"])
    def delete(job_id: str) -> Any:
        """Remove an ended job's record and events (409 while it is queued or running). Outputs stay."""
        j = found(job_id)
        if isinstance(j, JSONResponse):
            return j
        if j["state"] not in FINAL:
            return _error(409, f"job {job_id} is {j['state']}; cancel it first")
        store().delete(job_id)
        preview = os.path.join(config.previews, f"{job_id}.jpg")
        if os.path.exists(preview):
            os.remove(preview)
        return {"deleted": job_id}

    @app.post(f"{API}/jobs/{{job_id}}/cancel", tags=["jobs"])
    def cancel(job_id: str, now: bool = False) -> Any:
        """Cancel this job only: gracefully (drain, finalise outputs, like Ctrl-C), or ``?now=true`` at once
        (like a second Ctrl-C; outputs stay playable). Ended jobs are left as they are."""
        j = scheduler().cancel(job_id, now=now)
        return _error(404, f"no job {job_id}") if j is None else view(j)

    @app.get(f"{API}/jobs/{{job_id}}/events", tags=["jobs"])
    async def events(job_id: str, after: Annotated[int | None, Query(ge=0)] = None,
                     last_event_id: Annotated[str | None, Header()] = None) -> Any:
        """Server-sent events: ``id`` (increasing per job), ``event`` (start, progress, warning, node_finished,
        finished, error, interrupted, and ``state`` for the job's state), ``data`` (JSON). Reconnect with
        ``Last-Event-ID`` (or ``?after=N``) to get what was missed. Ends after the job's final ``state`` event."""
        j = await run_in_threadpool(store().get, job_id)
        if j is None:
            return _error(404, f"no job {job_id}")
        start = after if after is not None else int(last_event_id) if (last_event_id or "").isdigit() else 0
        if j["state"] in FINAL and store().last_seq(job_id) <= start:
            return Response(status_code=204)  # nothing missed, and 204 tells an EventSource not to reconnect
        return StreamingResponse(_sse(store(), job_id, start, config.keepalive), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ---- files -----------------------------------------------------------------------------------------------
    def outputs_of(j: dict[str, Any]) -> list[dict[str, Any]]:
        written = {o["path"]: o["frames"] for o in (j.get("summary") or {}).get("outputs", [])}
        out = []
        for i, path in enumerate(j["outputs"]):
            is_file = os.path.isfile(path)
            out.append({"index": i, "path": path, "exists": os.path.exists(path),
                        "size": os.path.getsize(path) if is_file else None, "frames": written.get(path),
                        "url": f"{API}/jobs/{j['id']}/outputs/{i}" if is_file else None})
        return out

    @app.get(f"{API}/jobs/{{job_id}}/outputs", tags=["files"])
    def outputs(job_id: str) -> Any:
        """The job's output files: path, size, frames written, and the URL to fetch each."""
        j = found(job_id)
        return j if isinstance(j, JSONResponse) else {"outputs": outputs_of(j)}

    @app.get(f"{API}/jobs/{{job_id}}/outputs/{{index}}", tags=["files"])
    def output_file(job_id: str, index: int) -> Any:
        """One output file; HTTP Range requests are honoured (scrubbing a preview)."""
        j = found(job_id)
        if isinstance(j, JSONResponse):
            return j
        if not 0 <= index < len(j["outputs"]):
            return _error(404, f"job {job_id} has no output {index}")
        path = j["outputs"][index]
        try:
            check_inside(path, config.roots, "output")
        except PathRefused as e:
            return _error(403, str(e))
        if not os.path.isfile(path):
            return _error(404, f"{path}: not written (yet)")
        media = mimetypes.guess_type(path)[0] or ("video/x-matroska" if path.endswith(".mkv") else None)
        return FileResponse(path, media_type=media or "application/octet-stream",
                            filename=os.path.basename(path), content_disposition_type="inline")

    @app.get(f"{API}/jobs/{{job_id}}/preview.jpg", tags=["files"])
    def preview(job_id: str) -> Any:
        """The latest frame of the job's preview node, small (refreshed about once a second while it runs)."""
        j = found(job_id)
        if isinstance(j, JSONResponse):
            return j
        path = os.path.join(config.previews, f"{job_id}.jpg")
        if not os.path.isfile(path):
            return _error(404, "no preview yet")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # ---- the dashboard ---------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(resources.files("diffusify.server").joinpath("dashboard.html").read_text("utf-8"),
                            headers={"Cache-Control": "no-store"})

    return app


async def _sse(store: JobStore, job_id: str, after: int, keepalive: float) -> AsyncIterator[str]:
    """The event stream of one job from event ``after`` on. Polls the store's in-memory event counter (no
    query) and reads from SQLite only when it moved."""
    yield "retry: 2000\n\n"
    last = after
    idle = 0.0
    while True:
        if store.last_seq(job_id) > last:
            rows = await run_in_threadpool(store.events_after, job_id, last)
            for seq, name, data in rows:
                last = seq
                yield f"id: {seq}\nevent: {name}\ndata: {data}\n\n"
                if name == "state" and json.loads(data).get("state") in FINAL:
                    return
            idle = 0.0
            continue
        if store.last_seq(job_id) == 0:  # deleted meanwhile
            return
        await asyncio.sleep(0.2)
        idle += 0.2
        if idle >= keepalive:
            idle = 0.0
            yield ": keep-alive\n\n"

"""A worker process: runs one job at a time with :func:`diffusify.start` and forwards its events to the server.

The server talks to it over a pipe. Server to worker: ``("job", spec)``, ``("cancel", now)``, ``("exit",)``.
Worker to server: ``("event", name, json_text)`` for every engine event, then ``("done", outcome)``.

A crash here (a segfault, a CUDA fault, the OOM killer) ends this process only; the server sees the process end
and fails the job with the reason. If the server goes away (the pipe closes), the worker cancels its run
gracefully, so the outputs are finalised, and exits.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any


def worker_main(conn: Connection) -> None:
    """The worker process's entry point (a spawn target): serve jobs from ``conn`` until told to exit."""
    # Ctrl-C in the server's terminal reaches the whole process group: the server decides what to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import diffusify.api  # noqa: F401 - import the engine once, before the first job arrives

    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "job":
            if not _run_job(conn, message[1]):
                return  # the server is gone
        elif message[0] == "exit":
            return


def _registry() -> Any:
    from diffusify.processors.registry import default_registry
    from diffusify.server.preview import PreviewSink

    reg = default_registry().copy()
    reg.add(PreviewSink)
    return reg


def _recipe(spec: dict[str, Any]) -> Any:
    """The checked recipe, with the preview tap added when the job has one."""
    if not spec.get("preview") or not spec.get("preview_path"):
        return spec["source"]
    from ruamel.yaml import YAML

    from diffusify.server.preview import PREVIEW_NODE, PREVIEW_TYPE

    if spec["is_file"]:
        with open(spec["source"], encoding="utf-8") as f:
            text = f.read()
    else:
        text = spec["source"]
    data = YAML(typ="rt").load(text)
    data["nodes"][PREVIEW_NODE] = {"type": PREVIEW_TYPE, "input": spec["preview"],
                                   "with": {"path": spec["preview_path"]}}
    return data


def _run_job(conn: Connection, spec: dict[str, Any]) -> bool:
    """Run one job to its end; False when the server went away meanwhile."""
    from diffusify.api import start
    from diffusify.core.errors import DiffusifyError, Interrupted, PipelineError, RecipeError, one_line

    lock = threading.Lock()
    server_gone = threading.Event()
    run: Any = None

    def send(message: tuple[Any, ...]) -> None:
        if server_gone.is_set():
            return
        try:
            with lock:
                conn.send(message)
        except OSError:
            server_gone.set()
            if run is not None:
                run.cancel(reason="the server went away")

    def hook(*, event: str, **fields: Any) -> None:
        from diffusify.runtime.events import event_record
        from diffusify.server.preview import PREVIEW_NODE

        # the preview tap is the server's, not the user's recipe: its node stays out of what the user sees
        if fields.get("node") == PREVIEW_NODE:
            return
        for holder in (fields, fields.get("summary")):
            if isinstance(holder, dict) and isinstance(holder.get("nodes"), list):
                holder["nodes"] = [n for n in holder["nodes"] if n.get("id") != PREVIEW_NODE]
        send(("event", event, json.dumps(event_record(event, fields), default=str)))

    # relative paths of the recipe start here (its folder, or the first root for an inline recipe), as when the
    # server checked it; every path from the request is absolute already
    os.chdir(spec["cwd"])
    try:
        run = start(_recipe(spec), input=spec["input"], output=spec["output"], set=spec["set"],
                        devices=spec["devices"], max_frames=spec["max_frames"], overwrite=spec["overwrite"],
                        hooks=[hook], registry=_registry())
    except RecipeError as e:
        send(("done", {"state": "failed", "message": one_line("; ".join(p.format() for p in e.problems)),
                       "error": {"message": one_line(str(e)), "type": "invalid",
                                 "problems": [p.to_json() for p in e.problems]}}))
        return not server_gone.is_set()
    except DiffusifyError as e:
        send(("done", {"state": "failed", "message": one_line(str(e)), "error": {"message": one_line(str(e))}}))
        return not server_gone.is_set()
    while not run.done():
        try:
            if not conn.poll(0.2):
                continue
            message = conn.recv()
        except (EOFError, OSError):
            server_gone.set()
            run.cancel(reason="the server went away")
            run.wait()
            break
        if message[0] == "cancel":
            run.cancel(now=bool(message[1]), reason="cancelled by a request")
    try:
        summary = run.result()
        outcome: dict[str, Any] = {"state": "succeeded", "summary": summary}
    except Interrupted as e:
        outcome = {"state": "cancelled", "message": one_line(str(e)), "summary": getattr(e, "summary", None)}
    except PipelineError as e:
        outcome = {"state": "failed", "message": one_line(str(e)), "summary": getattr(e, "summary", None),
                   "error": {"message": one_line(str(e)), "node": e.node, "type": e.node_type, "frame": e.frame}}
    except DiffusifyError as e:
        outcome = {"state": "failed", "message": one_line(str(e)), "error": {"message": one_line(str(e))}}
    send(("done", json.loads(json.dumps(outcome, default=str))))
    return not server_gone.is_set()

"""Run events and hooks: JSON lines for programs, a progress display for people.

A hook is any callable taking keyword arguments only: ``hook(event="progress", **fields)``. Hooks must accept
``**future_fields``: new fields are added to events without notice, never removed or renamed.

Events: ``start`` (plan), ``progress`` (about once a second; per node its frames, fps, busy share, queue fill
and ``ready``, false while the node still sets up: loading or compiling a model; ``status`` where the node
reports work inside a frame, e.g. a generator's ``{step, steps, shot, shots}``), ``warning``, ``node_finished``,
``finished`` (summary), ``error``, ``interrupted``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

Hook = Callable[..., None]


def event_record(event: str, fields: dict[str, Any]) -> dict[str, Any]:
    """An event as the dict programs see: ``{"event": ..., "time": ..., ...fields}``."""
    return {"event": event, "time": round(time.time(), 3), **fields}


class JsonEvents:
    """Writes one JSON object per line: ``{"event": ..., "time": ..., ...fields}``."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()

    def __call__(self, *, event: str, **fields: Any) -> None:
        record = event_record(event, fields)
        with self._lock:
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _rate(fps: float) -> str:
    """``12.3 fps``, or seconds per frame below 0.1 fps (a model on a CPU: ``8.2 s/frame``, not ``0.0 fps``)."""
    if fps >= 0.1:
        return f"{fps:.1f} fps"
    return f"{1 / fps:.1f} s/frame" if fps > 0 else "-- fps"


def _status(status: dict[str, Any]) -> str:
    """A node's own progress inside a frame: ``step 3/25 (shot 1/2)`` for a generator."""
    text = f"step {status.get('step', 0)}/{status.get('steps', '?')}" if "steps" in status else ""
    if status.get("shots", 1) > 1:
        text += f" (shot {status.get('shot', 1)}/{status['shots']})"
    return text.strip() or ", ".join(f"{k} {v}" for k, v in status.items())


class ProgressDisplay:
    """A compact progress display on stderr: overall frames, rate and ETA, the node that holds the others back,
    then per node its throughput and input-queue fill. Redraws in place on a terminal; prints a line every few
    seconds otherwise."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.quiet = quiet
        self._last_plain = 0.0
        self._drawn = 0
        self._stopping = False
        self._sources: set[str] = set()

    def _write(self, lines: list[str]) -> None:
        if self.tty:
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        else:
            self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def __call__(self, *, event: str, **f: Any) -> None:
        if self.quiet:
            return
        if event == "start":
            self._sources = {n["id"] for n in f["nodes"] if not n.get("inputs")}
            self._write([f"running {f['name']}: {f['total_frames'] or '?'} frames through {len(f['nodes'])} nodes"])
            self._drawn = 0
        elif event == "progress":
            now = time.monotonic()
            if not self.tty and now - self._last_plain < 5:
                return
            self._last_plain = now
            total = f.get("total_frames")
            pct = f" ({100 * f['frames'] / total:.0f}%)" if total else ""
            eta = "stopping" if self._stopping else f"ETA {_eta(f.get('eta'))}"
            head = f"{f['frames']}/{total or '?'} frames{pct}  {_rate(f['fps'])}  {eta}  elapsed {_eta(f['elapsed'])}"
            loading = [n["id"] for n in f["nodes"] if not n.get("ready", True)]
            if loading:
                head += f"  loading: {', '.join(loading)}"
            elif not f["frames"]:
                head += "  waiting for the first frame"
            elif f["nodes"]:
                busiest = max(f["nodes"], key=lambda n: n["busy"])
                head += f"  slowest: {busiest['id']} (busy {100 * busiest['busy']:.0f}%)"
            steps = [f"{n['id']}: {_status(n['status'])}" for n in f["nodes"] if n.get("status")]
            if steps:
                head += "  " + ", ".join(steps)
            nodes = [f"  {n['id']:<12} {_rate(n['fps']):>13}  busy {100 * n['busy']:3.0f}%"
                     + ("" if n["id"] in self._sources else f"  queue {n['queue_frames']}/{n['queue_capacity']}")
                     + (f"  {_status(n['status'])}" if n.get("status") else "")
                     for n in f["nodes"]]
            self._write([head, *nodes] if self.tty else [head])
        elif event == "warning":
            self._drawn = 0
            # a recipe's problem is formatted "file:line:col: warning: ..." already
            self.stream.write(f"{f['message']}\n" if f.get("problem") else f"warning: {f['message']}\n")
        elif event == "finished":
            self._drawn = 0
            for line in format_summary(f["summary"]):
                self.stream.write(line + "\n")
        elif event == "interrupted" and "summary" not in f:
            # the stop is announced here; the final message is the command's (one line, with its exit code)
            self._stopping = True
            self._drawn = 0
            self.stream.write(f"{f['message']}\n")
        self.stream.flush()


def format_summary(s: dict[str, Any]) -> list[str]:
    """Human-readable lines of a run summary."""
    first = s.get("first_frame_seconds")
    torch_import = s.get("torch_import_seconds") or 0.0
    lines = [f"done: {s['frames']} frames in {s['wall_seconds']:.2f} s ({s['fps']:.2f} fps"
             + (f", first after {first:.2f} s" if first is not None else "")
             + (f" ({torch_import:.2f} s of it importing torch)" if first is not None and torch_import >= 0.01 else "")
             + f"), peak RAM {s['peak_ram_bytes'] / 2**20:.0f} MiB"
             + (f", {s['process_cpu_seconds']:.1f} CPU-s in this process" if "process_cpu_seconds" in s else "")]
    for dev, peak in (s.get("peak_gpu_bytes") or {}).items():
        lines.append(f"  peak GPU memory on {dev}: {peak / 2**20:.0f} MiB")
    for n in s["nodes"]:
        lines.append(f"  {n['id']:<12} {n['type']:<18} {n['frames']:>6} frames  busy {100 * n['busy_share']:5.1f}%"
                     f"  x{n['replicas']} on {','.join(n['devices'])}")
    if s.get("bottleneck"):
        lines.append(f"  bottleneck: {s['bottleneck']}")
    for out in s.get("outputs", []):
        lines.append(f"  wrote {out['path']} ({out['frames']} frames)")
    return lines

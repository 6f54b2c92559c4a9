"""The job server under load, on loopback: clients polling job states and streaming events while small jobs run.

    python bench/server_load.py                      # 50 clients, 20 jobs, 2 workers
    python bench/server_load.py --clients 50 --jobs 20 --workers 2 --frames 2000 --timeout 300

Half of the clients poll ``GET /v1/jobs/{id}`` in a loop (its latency is measured); the other half follow the
jobs' event streams, each dropping its connection once midway and resuming with ``Last-Event-ID``. At the end
every stream must hold each job's stored events exactly once, in order (ids 1..N, no gap, no repeat), and every
submitted job must be listed as succeeded. Bounded: the whole run stops after --timeout seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def recipe(i: int, frames: int) -> str:
    return (f"version: 1\nname: load_{i}\nnodes:\n"
            f"  src: {{type: pattern, with: {{kind: moving, width: 160, height: 90, frames: {frames}}}}}\n"
            f"  out: {{type: video.write, input: src, with: {{path: out/load_{i}.mkv, codec: libx264, "
            f"preset: ultrafast}}}}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream(client: httpx.Client, job_id: str, after: int, stop_after: int | None) -> list[int]:
    """Event ids of one connection (from ``after``), ending with the job or after ``stop_after`` events."""
    ids: list[int] = []
    headers = {"Last-Event-ID": str(after)} if after else {}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=120) as r:
        if r.status_code == 204:
            return ids
        for line in r.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
                if stop_after is not None and len(ids) >= stop_after:
                    break
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=2000, help="frames per job (160x90)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds before the run is stopped")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="diffusify-load-"))
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen([sys.executable, "-m", "diffusify", "serve", "--port", str(port), "--root", str(root),
                               "--workers", str(args.workers), "--max-queue", str(args.jobs + 10)],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.timeout
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            while True:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            t0 = time.monotonic()
            ids = [c.post("/v1/jobs", json={"recipe": recipe(i, args.frames)}).json()["id"] for i in range(args.jobs)]
            submitted = time.monotonic() - t0

        latencies: list[float] = []
        delivered: dict[str, list[list[int]]] = {j: [] for j in ids}
        errors: list[str] = []
        lock = threading.Lock()
        all_done = threading.Event()

        def poller(n: int) -> None:
            rng = random.Random(n)
            with httpx.Client(base_url=base, timeout=30) as c:
                while not all_done.is_set() and time.monotonic() < deadline:
                    job = rng.choice(ids)
                    t = time.perf_counter()
                    r = c.get(f"/v1/jobs/{job}")
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        if r.status_code != 200:
                            errors.append(f"GET {job}: {r.status_code}")
                    time.sleep(0.05)

        def streamer(n: int) -> None:
            rng = random.Random(1000 + n)
            mine = ids[n % len(ids)::max(1, args.clients // 2)] or [ids[n % len(ids)]]
            with httpx.Client(base_url=base, timeout=30) as c:
                for job in mine:
                    try:
                        got = stream(c, job, 0, stop_after=rng.randint(2, 6))  # drop the connection...
                        got += stream(c, job, got[-1] if got else 0, None)    # ...and resume where it stopped
                    except httpx.HTTPError as e:
                        with lock:
                            errors.append(f"stream {job}: {e}")
                        continue
                    with lock:
                        delivered[job].append(got)

        threads = [threading.Thread(target=poller, args=(i,), daemon=True) for i in range(args.clients // 2)]
        threads += [threading.Thread(target=streamer, args=(i,), daemon=True)
                    for i in range(args.clients - args.clients // 2)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=base, timeout=30) as c:
            while time.monotonic() < deadline:
                states = [c.get(f"/v1/jobs/{j}").json()["state"] for j in ids]
                if all(s in FINAL for s in states):
                    break
                time.sleep(0.5)
            wall = time.monotonic() - t0
            all_done.set()
            for t in threads:
                t.join(max(1.0, deadline - time.monotonic()))
            jobs = {j: c.get(f"/v1/jobs/{j}").json() for j in ids}
            listed = {j["id"] for j in c.get("/v1/jobs", params={"limit": 500}).json()["jobs"]}

        stored = {j: jobs[j]["events"] for j in ids}
        streams = [(j, got) for j in ids for got in delivered[j]]
        complete = sum(1 for j, got in streams if got == list(range(1, stored[j] + 1)))
        lost = [j for j in ids if j not in listed or jobs[j]["state"] != "succeeded"]
        lat = sorted(latencies)

        def pct(p: float) -> float:
            return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

        print(f"server: {args.workers} workers; {args.clients} clients ({args.clients // 2} polling, "
              f"{args.clients - args.clients // 2} streaming with one drop + Last-Event-ID resume each)")
        print(f"jobs: {args.jobs} x {args.frames} frames 160x90 submitted in {submitted:.2f} s, all ended after "
              f"{wall:.1f} s; succeeded {sum(jobs[j]['state'] == 'succeeded' for j in ids)}/{args.jobs}, "
              f"lost {len(lost)}")
        print(f"GET /v1/jobs/{{id}}: {len(lat)} requests, p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, "
              f"max {1000 * lat[-1] if lat else float('nan'):.1f} ms, mean {1000 * statistics.fmean(lat) if lat else 0:.1f} ms")
        print(f"events: {sum(stored.values())} stored; {len(streams)} streams followed, {complete} received every "
              f"stored event exactly once in order; "
              f"{sum(len(g) for _, g in streams)} delivered in all; jobs never streamed: "
              f"{sum(1 for j in ids if not delivered[j])}")
        print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
        ok = not lost and complete == len(streams) and not errors and all(delivered[j] for j in ids)
        print(json.dumps({"ok": ok, "p50_ms": round(pct(0.5), 1), "p99_ms": round(pct(0.99), 1)}))
        sys.exit(0 if ok else 1)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


if __name__ == "__main__":
    main()

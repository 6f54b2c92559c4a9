"""The job server, end to end: a real server process on a free local port, driven over HTTP with httpx.

Jobs are tiny synthetic clips (a ``pattern`` source written with x264 ultrafast) so that each takes a second or
two; the ones to cancel or kill are long and stopped early.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests._media import count_decodable_frames  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

TOKEN = "s3cret-token-for-tests-0123456789"


def recipe(out: str, frames: int = 12, size: str = "64, height: 36") -> str:
    """A short synthetic clip written to ``out`` (relative paths start at the server's first root)."""
    return (f"version: 1\nname: pattern_{frames}\nnodes:\n"
            f"  src: {{type: pattern, with: {{kind: moving, width: {size}, frames: {frames}}}}}\n"
            f"  out: {{type: video.write, input: src, with: {{path: \"{out}\", codec: libx264, preset: ultrafast}}}}\n")


LONG = 1_000_000  # frames: a job that runs until it is stopped


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``diffusify serve`` as a subprocess, and an httpx client for it."""

    def __init__(self, root: Path, *args: str, token: str | None = None):
        self.root = root
        self.args = args
        self.token = token
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "diffusify", "serve", "--port", str(self.port), "--root", str(self.root),
               *self.args]
        if self.token:
            cmd += ["--token", self.token]
        self.log = open(self.root / f"server-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.url, timeout=30, headers=headers)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not start: {self.output()}")

    def output(self) -> str:
        return (self.root / f"server-{self.port}.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()
        self.log.close()

    # ---- helpers ---------------------------------------------------------------------------------------------
    def submit(self, body: dict, expect: int = 202) -> dict:
        r = self.client.post("/v1/jobs", json=body)
        assert r.status_code == expect, r.text
        return r.json()

    def job(self, job_id: str) -> dict:
        r = self.client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, states: set[str] | None = None, timeout: float = 60, frames: int = 0) -> dict:
        """Poll until the job is in one of ``states`` (default: a final one) or has ``frames`` done."""
        states = states or {"succeeded", "failed", "cancelled", "interrupted"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            j = self.job(job_id)
            if j["state"] in states and (j["frames"] or 0) >= frames:
                return j
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} stayed {j['state']} ({j['frames']} frames): {j}")

    def events(self, job_id: str, headers: dict | None = None, limit: int | None = None) -> list[dict]:
        """Read the event stream (until it ends, or ``limit`` events), as ``{"id", "event", "data"}`` dicts."""
        out: list[dict] = []
        current: dict = {}
        with self.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers or {}, timeout=60) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("id: "):
                    current["id"] = int(line[4:])
                elif line.startswith("event: "):
                    current["event"] = line[7:]
                elif line.startswith("data: "):
                    current["data"] = json.loads(line[6:])
                elif line == "" and "id" in current:
                    out.append(current)
                    current = {}
                    if limit is not None and len(out) >= limit:
                        break
        return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("root")
    (root / "recipes").mkdir()
    (root / "recipes" / "pattern.yaml").write_text(recipe("../out/from_file.mkv"))
    s = Server(root, "--workers", "2")
    yield s
    s.stop()


# ---- the basics ---------------------------------------------------------------------------------------------
def test_a_job_streams_its_events_and_ends_with_its_summary_and_outputs(server):
    job = server.submit({"recipe": recipe("out/basic.mkv", frames=12)})
    assert job["id"] and (job["state"], job["position"]) in (("queued", 0), ("running", None))
    events = server.events(job["id"])
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(ids) + 1))  # increasing, no gaps
    names = [e["event"] for e in events]
    assert names[:2] == ["state", "state"] and [e["data"]["state"] for e in events[:2]] == ["queued", "running"]
    assert "start" in names and "finished" in names and names[-1] == "state"
    assert events[-1]["data"]["state"] == "succeeded"
    done = server.job(job["id"])
    assert done["state"] == "succeeded" and done["frames"] == 12 and done["total_frames"] == 12
    assert done["summary"]["frames"] == 12 and done["events"] == len(events)
    outs = server.client.get(f"/v1/jobs/{job['id']}/outputs").json()["outputs"]
    assert len(outs) == 1 and outs[0]["frames"] == 12 and outs[0]["path"] == str(server.root / "out" / "basic.mkv")
    assert count_decodable_frames(outs[0]["path"]) == 12
    # the file itself, with HTTP Range for scrubbing
    full = server.client.get(outs[0]["url"])
    assert full.status_code == 200 and len(full.content) == outs[0]["size"]
    part = server.client.get(outs[0]["url"], headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == full.content[10:110]
    resumed = server.client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": str(ids[-1])})
    assert resumed.status_code == 204  # ended and nothing missed: an EventSource stops reconnecting
    listed = server.client.get("/v1/jobs", params={"state": "succeeded"}).json()
    assert job["id"] in [j["id"] for j in listed["jobs"]] and all(j["state"] == "succeeded" for j in listed["jobs"])
    assert server.client.get("/v1/jobs", params={"state": "bogus"}).status_code == 422
    # a finished job's record can be removed, a running one's cannot
    assert server.client.delete(f"/v1/jobs/{job['id']}").status_code == 200
    assert server.client.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_a_recipe_file_under_the_root_runs_and_the_idempotency_key_returns_the_same_job(server):
    body = {"recipe_path": "recipes/pattern.yaml", "idempotency_key": "abc-1"}
    first = server.submit(body)
    again = server.submit(body, expect=200)
    assert again["id"] == first["id"]
    assert server.client.post("/v1/jobs", json={"recipe_path": "recipes/pattern.yaml"},
                              headers={"Idempotency-Key": "abc-1"}).json()["id"] == first["id"]
    assert server.wait(first["id"])["state"] == "succeeded"
    assert count_decodable_frames(server.root / "out" / "from_file.mkv") == 12


def test_cancel_stops_one_of_two_running_jobs_and_the_other_finishes(server):
    long = server.submit({"recipe": recipe("out/long.mkv", frames=LONG)})
    short = server.submit({"recipe": recipe("out/short.mkv", frames=150)})
    server.wait(long["id"], {"running"}, frames=5)
    assert server.job(short["id"])["state"] in ("running", "succeeded")  # side by side, not queued
    r = server.client.post(f"/v1/jobs/{long['id']}/cancel")
    assert r.status_code == 200
    cancelled = server.wait(long["id"])
    finished = server.wait(short["id"])
    assert cancelled["state"] == "cancelled" and finished["state"] == "succeeded"
    assert finished["frames"] == 150
    written = cancelled["summary"]["outputs"][0]["frames"]
    assert written >= 5 and count_decodable_frames(server.root / "out" / "long.mkv") == written  # finalised
    names = [e["event"] for e in server.events(long["id"], headers={"Last-Event-ID": "0"})]
    assert "interrupted" in names and "finished" not in names


def test_reconnecting_with_last_event_id_gets_exactly_the_missed_events(server):
    job = server.submit({"recipe": recipe("out/resume.mkv", frames=LONG)})
    server.wait(job["id"], {"running"}, frames=1)
    first = server.events(job["id"], limit=3)  # then the connection drops
    time.sleep(1.5)  # progress goes on meanwhile
    server.client.post(f"/v1/jobs/{job['id']}/cancel", params={"now": "true"})
    rest = server.events(job["id"], headers={"Last-Event-ID": str(first[-1]["id"])})
    ids = [e["id"] for e in first + rest]
    assert ids == list(range(1, len(ids) + 1))
    assert rest[0]["id"] == first[-1]["id"] + 1 and "progress" in [e["event"] for e in rest]
    assert rest[-1]["data"]["state"] == "cancelled"
    assert len(ids) == server.job(job["id"])["events"]  # every stored event was delivered
    # the same through ?after= (clients without EventSource)
    tail = server.client.get(f"/v1/jobs/{job['id']}/events", params={"after": ids[-2]})
    assert tail.status_code == 200 and f"id: {ids[-1]}" in tail.text and f"id: {ids[-2]}\n" not in tail.text


def test_a_job_whose_worker_is_killed_is_reported_failed_with_the_reason(server):
    job = server.submit({"recipe": recipe("out/killed.mkv", frames=LONG)})
    running = server.wait(job["id"], {"running"}, frames=2)
    assert running["worker_pid"]
    os.kill(running["worker_pid"], signal.SIGKILL)
    failed = server.wait(job["id"])
    assert failed["state"] == "failed"
    assert failed["error"]["message"] == "worker process died (signal 9 (SIGKILL))"
    assert server.client.get("/healthz").status_code == 200  # the server lives on
    again = server.submit({"recipe": recipe("out/after_kill.mkv", frames=6)})
    assert server.wait(again["id"])["state"] == "succeeded"


def test_an_existing_output_is_refused_when_the_job_is_submitted(server):
    (server.root / "out").mkdir(exist_ok=True)
    (server.root / "out" / "exists.mkv").write_bytes(b"x")
    r = server.client.post("/v1/jobs", json={"recipe": recipe("out/exists.mkv")})
    assert r.status_code == 422 and "exists" in r.json()["problems"][0]["message"]


def test_invalid_recipes_are_refused_with_line_and_column_like_validate(server):
    bad = "version: 1\nnodes:\n  src: {type: patern}\n  out: {type: video.write, input: src, with: {path: x.mkv}}\n"
    r = server.client.post("/v1/jobs", json={"recipe": bad})
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert problems[0]["line"] == 3 and problems[0]["col"] > 0 and "did you mean 'pattern'" in problems[0]["message"]
    v = server.client.post("/v1/validate", json={"recipe": bad}).json()
    assert v["ok"] is False and v["problems"] == problems
    # a recipe file: the same problems as `diffusify validate --format json`
    (server.root / "recipes" / "bad.yaml").write_text(bad)
    cli = subprocess.run([sys.executable, "-m", "diffusify", "validate", "--format", "json",
                          str(server.root / "recipes" / "bad.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 2
    via_http = server.client.post("/v1/validate", json={"recipe_path": "recipes/bad.yaml"}).json()
    assert via_http["problems"] == json.loads(cli.stdout)["problems"]
    assert server.client.post("/v1/validate", json={"recipe": recipe("out/ok.mkv")}).json() == \
        {"ok": True, "problems": []}
    assert server.client.post("/v1/jobs", json={"recipe": "x", "recipe_path": "y"}).status_code == 422
    assert server.client.post("/v1/jobs", json={"recipe": recipe("o.mkv"), "webhook": "file:///etc/passwd"}) \
        .status_code == 422


def test_path_escapes_are_refused_with_403_and_the_reason(server, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(recipe("x.mkv"))
    (server.root / "link.yaml").unlink(missing_ok=True)
    (server.root / "link.yaml").symlink_to(outside)
    (server.root / "linkdir").unlink(missing_ok=True)
    (server.root / "linkdir").symlink_to(tmp_path)
    fifo = server.root / "pipe.mkv"
    if not fifo.exists():
        os.mkfifo(fifo)
    cases = [
        {"recipe_path": "../outside.yaml"},
        {"recipe_path": str(outside)},
        {"recipe_path": "link.yaml"},
        {"recipe_path": "/etc/passwd"},
        {"recipe": recipe("out/a.mkv"), "output": str(tmp_path / "out.mkv")},
        {"recipe": recipe("out/a.mkv"), "output": "linkdir/out.mkv"},
        {"recipe": recipe("out/a.mkv"), "output": "../../escape.mkv"},
        {"recipe": recipe(str(tmp_path / "inline.mkv"))},  # a path written inside the recipe
        {"recipe": recipe("../inline_up.mkv")},
        {"recipe": "version: 1\nnodes:\n  src: {type: video.read, with: {path: pipe.mkv}}\n"
                   "  out: {type: video.write, input: src, with: {path: out/f.mkv}}\n"},
        {"recipe": recipe("out/a.mkv"), "input": "/dev/zero"},
        {"recipe": recipe(".diffusify-server/jobs.sqlite3")},
    ]
    for body in cases:
        r = server.client.post("/v1/jobs", json=body)
        assert r.status_code == 403, (body, r.text)
        detail = r.json()["detail"]
        assert "root" in detail or "FIFO" in detail or "state folder" in detail, detail
        assert server.client.post("/v1/validate", json=body).status_code == 403
    link = server.client.post("/v1/jobs", json={"recipe_path": "link.yaml"}).json()["detail"]
    assert "symbolic link" in link
    assert not (tmp_path / "out.mkv").exists() and not (tmp_path / "inline.mkv").exists()


def test_bodies_and_recipes_over_the_bounds_are_refused(server):
    r = server.client.post("/v1/jobs", content=b"{" + b" " * (2 << 20) + b"}",
                           headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    big = recipe("out/big.mkv") + "#" * (300 << 10) + "\n"
    assert server.client.post("/v1/jobs", json={"recipe": big}).status_code == 413


def test_the_engine_facts_answer_like_the_command_line(server):
    procs = server.client.get("/v1/processors").json()
    cli = subprocess.run([sys.executable, "-m", "diffusify", "processors", "pattern", "--format", "json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert json.loads(cli.stdout) in procs
    assert {p["type"] for p in procs} >= {"pattern", "video.read", "video.write"}
    schema = subprocess.run([sys.executable, "-m", "diffusify", "schema"], capture_output=True, text=True, cwd=ROOT)
    assert server.client.get("/v1/schema").json() == json.loads(schema.stdout)
    system = server.client.get("/v1/system").json()
    assert system["devices"] and system["version"] and system["memory"]["total"] > 0
    assert server.client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]


def test_the_dashboard_names_only_endpoints_that_answer(server):
    page = server.client.get("/")
    assert page.status_code == 200 and "<title>Diffusify jobs</title>" in page.text
    assert "unpkg" not in page.text and "cdn" not in page.text.lower()  # nothing downloaded at run time
    job = server.submit({"recipe": recipe("out/dash.mkv", frames=40, size="320, height: 180")})
    server.wait(job["id"])
    paths = set(re.findall(r'"(/v1/[a-z]+)"', page.text))
    assert paths == {"/v1/system", "/v1/jobs", "/v1/recipes"}
    for p in paths:
        assert server.client.get(p).status_code == 200, p
    templates = re.findall(r"`(/v1/jobs/\$\{id\}[^`]*)`", page.text)
    assert set(templates) == {"/v1/jobs/${id}", "/v1/jobs/${id}/events", "/v1/jobs/${id}/cancel",
                              "/v1/jobs/${id}/preview.jpg"}
    assert "recipes/pattern.yaml" in server.client.get("/v1/recipes").json()["recipes"]
    preview = server.client.get(f"/v1/jobs/{job['id']}/preview.jpg")
    assert preview.status_code == 200 and preview.content[:3] == b"\xff\xd8\xff"  # a JPEG
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(preview.content)).size == (320, 180)
    assert server.client.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "succeeded"  # ended: unchanged


# ---- servers of their own -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_queue_answers_429(tmp_path):
    s = Server(tmp_path, "--workers", "1", "--max-queue", "1")
    try:
        running = s.submit({"recipe": recipe("out/q1.mkv", frames=LONG)})
        s.wait(running["id"], {"running"})
        queued = s.submit({"recipe": recipe("out/q2.mkv")})
        assert queued["state"] == "queued" and queued["position"] == 0
        r = s.client.post("/v1/jobs", json={"recipe": recipe("out/q3.mkv")})
        assert r.status_code == 429 and r.headers["retry-after"]
        assert s.client.post(f"/v1/jobs/{queued['id']}/cancel").json()["state"] == "cancelled"
        assert s.job(running["id"])["state"] == "running"  # cancel touches that job only
        s.client.post(f"/v1/jobs/{running['id']}/cancel", params={"now": "true"})
        assert s.wait(running["id"])["state"] == "cancelled"
    finally:
        s.stop()


@pytest.mark.slow
def test_the_token_is_required_and_foreign_hosts_and_origins_are_refused(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "diffusify", "serve", "--host", "0.0.0.0", "--root", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "needs --token" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    s = Server(tmp_path, token=TOKEN)
    try:
        plain = httpx.Client(base_url=s.url, timeout=10)
        assert plain.get("/v1/jobs").status_code == 401
        assert plain.get("/healthz").status_code == 401
        assert plain.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert plain.post("/v1/jobs", json={"recipe": recipe("out/t.mkv")}).status_code == 401
        assert s.client.get("/v1/jobs").status_code == 200
        # a browser opens /?token=... once; the cookie then carries it (EventSource cannot send headers)
        page = plain.get("/", params={"token": TOKEN})
        assert page.status_code == 200 and plain.cookies.get("diffusify_token") == TOKEN
        assert plain.get("/v1/jobs").status_code == 200
        assert s.client.post("/v1/jobs", json={"recipe": recipe("out/o.mkv")},
                             headers={"Origin": "http://evil.example"}).status_code == 403
        plain.close()
    finally:
        s.stop()
    s = Server(tmp_path)  # no token: loopback names only (no DNS rebinding)
    try:
        assert s.client.get("/v1/jobs", headers={"Host": "evil.example"}).status_code == 403
        assert s.client.get("/v1/jobs", headers={"Host": f"localhost:{s.port}"}).status_code == 200
    finally:
        s.stop()


@pytest.mark.slow
def test_after_kill_9_a_restarted_server_lists_every_job_with_a_true_state(tmp_path):
    s = Server(tmp_path, "--workers", "1")
    try:
        done = s.submit({"recipe": recipe("out/done.mkv", frames=6)})
        s.wait(done["id"])
        running = s.submit({"recipe": recipe("out/running.mkv", frames=LONG)})
        queued = s.submit({"recipe": recipe("out/queued.mkv", frames=6)})
        s.wait(running["id"], {"running"}, frames=3)
        time.sleep(1.2)  # a progress event with frames is stored
        s.stop(signal.SIGKILL)
        s.start()
        jobs = {j["id"]: j for j in s.client.get("/v1/jobs").json()["jobs"]}
        assert jobs[done["id"]]["state"] == "succeeded" and jobs[done["id"]]["frames"] == 6
        interrupted = jobs[running["id"]]
        assert interrupted["state"] == "interrupted" and interrupted["frames"] >= 3
        assert "server stopped" in interrupted["message"]
        events = s.events(running["id"])
        assert events[-1]["data"] == {**events[-1]["data"], "state": "interrupted", "frames": interrupted["frames"]}
        assert s.wait(queued["id"])["state"] == "succeeded"  # the queue survives and runs
    finally:
        s.stop()


def test_a_webhook_receives_the_ended_job(server):
    import http.server
    import threading

    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the handler's protocol
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        job = server.submit({"recipe": recipe("out/hook.mkv", frames=6),
                             "webhook": f"http://127.0.0.1:{httpd.server_port}/done"})
        server.wait(job["id"])
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received and received[0]["id"] == job["id"] and received[0]["state"] == "succeeded"
        assert received[0]["summary"]["frames"] == 6
    finally:
        httpd.shutdown()


def test_jobs_on_distinct_gpus_run_side_by_side_and_the_rest_wait_in_order(tmp_path):
    from diffusify.server.config import ServerConfig
    from diffusify.server.scheduler import Scheduler, _Worker
    from diffusify.server.store import JobStore

    config = ServerConfig(roots=[str(tmp_path)], workers=4)
    s = Scheduler(JobStore(config.database), config)
    launched: list[str] = []

    def launch(job_id: str, spec: dict) -> None:  # no process: record what would start
        launched.append(job_id)
        s._workers.append(_Worker(process=None, conn=None, job=job_id))  # type: ignore[arg-type]

    s._launch = launch  # type: ignore[method-assign]
    for job_id, devices in [("a", {"cuda:0"}), ("b", {"cuda:0"}), ("c", {"cuda:1"}), ("d", {"cuda:0", "cuda:1"}),
                            ("e", set()), ("f", {"cuda:1"})]:
        s._queue.append(job_id)
        s._specs[job_id] = ({}, devices)
    s._schedule()
    # b waits for a; d for both GPUs; f for c (and behind d, which wants cuda:1 first); the CPU job runs
    assert launched == ["a", "c", "e"]
    s._workers = [w for w in s._workers if w.job != "a"]
    s._schedule()
    assert launched == ["a", "c", "e", "b"]  # d still waits: cuda:0 is b's now
    s._workers = [w for w in s._workers if w.job not in ("b", "c")]
    s._schedule()
    assert launched == ["a", "c", "e", "b", "d"]  # f stays behind d, which holds cuda:1
    assert s.position("f") == 0

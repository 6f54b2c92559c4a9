"""The command line. The only place where errors become exit codes: 0 ok, 1 run failed, 2 invalid input,
130 interrupted."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from diffusify.core.errors import DiffusifyError, Interrupted, PipelineError, RecipeError, one_line

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
_STANDALONE = False  # set by main(): this process is the command, not a host calling it


def _fail(message: str, code: int, *, fast: bool = False) -> None:
    """Print ``diffusify: message`` (always one line) and exit with ``code``. ``fast`` (the command's own process
    only) leaves without the interpreter's teardown."""
    message = one_line(message)
    if not (fast and _STANDALONE):  # in-process callers (tests, an embedding app) get a normal exit
        click.echo(f"diffusify: {message}", err=True)
        sys.exit(code)
    try:
        click.echo(f"diffusify: {message}", err=True)
    except OSError:  # a reader of our output went away; the exit code still tells
        pass
    _exit_now(code)


def _exit_now(code: int, *, atexit_handlers: bool = False) -> None:
    """Leave the command's process without the interpreter's teardown, its output flushed (and its atexit
    handlers run first, if asked)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader of our output went away; the exit code still tells
        pass
    if atexit_handlers:
        import atexit

        atexit._run_exitfuncs()
    os._exit(code)


def _leave(code: int) -> None:
    """End the command's own process after a finished run, whose outputs are final and whose ffmpeg children have
    exited: the atexit handlers run (temporary folders, a local Ray cluster, log handlers), the interpreter's
    teardown does not. With torch loaded that teardown takes about half a second (measured with
    ``bench/runtime.py startup``), all of it after the work is done. In-process callers (tests, an embedding app)
    just return."""
    if _STANDALONE:
        _exit_now(code, atexit_handlers=True)


def _parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            _fail(f"--set takes name=value (got {item!r})", EXIT_INVALID)
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def _devices(value: str | None) -> list[str] | None:
    return [d.strip() for d in value.split(",") if d.strip()] if value else None


def _print_problems(problems: list[Any]) -> None:
    for p in problems:
        click.echo(p.format(), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="diffusify", prog_name="diffusify")
def cli() -> None:
    """Diffusify Engine: run declarative video AI pipelines (YAML recipes)."""


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("-i", "--input", "input_", metavar="FILE", help="Set the recipe's 'input' param.")
@click.option("-o", "--output", metavar="FILE", help="Set the recipe's 'output' param.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Override a param, or a node parameter as NODE.PARAM=VALUE (repeatable).")
@click.option("--device", metavar="LIST", help="Devices for nodes without their own: auto, cpu, cuda:0,cuda:1...")
@click.option("--dry-run", is_flag=True, help="Print the plan (devices, queues, streams, memory) and stop.")
@click.option("--json-events", is_flag=True, help="Write JSON-lines events to stdout (for programs).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--max-frames", type=click.IntRange(min=1), metavar="N", help="Read at most N frames per source.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("--strict", is_flag=True, help="Treat the recipe's warnings as errors (a truncated source...).")
@click.option("--segments", type=click.IntRange(min=1), metavar="N",
              help="Split the run into N segments, each recorded in a journal beside the output (OUTPUT.parts) "
                   "as it finishes, then joined without re-encoding: a crash loses one segment at most.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, metavar="N",
              help="Run N segments side by side (one engine each; --device cuda:0,cuda:1 deals devices out).")
@click.option("--resume", is_flag=True,
              help="Continue the journal of an interrupted segmented run (with its segments unless --segments).")
@click.option("--restart", is_flag=True, help="Delete such a journal and start over.")
@click.option("--keep-segments", is_flag=True, help="Keep the journal folder and segment files after the join.")
@click.option("--executor", "backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where segments run: here, or as tasks on a Ray cluster (the 'ray' extra).")
@click.option("--address", metavar="ADDR",
              help="With --executor ray: the cluster (auto, ray://host:10001); empty starts a local one.")
def run(recipe: str, input_: str | None, output: str | None, sets: tuple[str, ...], device: str | None,
        dry_run: bool, json_events: bool, overwrite: bool, max_frames: int | None, quiet: bool,
        strict: bool, segments: int | None, parallel: int, resume: bool, restart: bool,
        keep_segments: bool, backend: str, address: str | None) -> None:
    """Run RECIPE. Validates first; Ctrl-C stops cleanly (outputs stay playable)."""
    from diffusify import api
    from diffusify.runtime.events import JsonEvents, ProgressDisplay
    from diffusify.runtime.tuning import tune_process

    overrides = _parse_sets(sets)
    # In the command's own process the signal handlers were installed first thing (main); they never raise, so
    # no signal lands as an exception inside an import or a model load. A host calling in-process keeps its own.
    signals = _SIGNALS if _STANDALONE else None
    if signals is not None:
        signals.json = json_events
    try:
        plan, v = api.plan(recipe, input=input_, output=output, set=overrides, devices=_devices(device),
                           max_frames=max_frames, overwrite=overwrite, check_outputs=not dry_run, strict=strict)
        if dry_run:
            _print_problems(v.warnings)
            if json_events:
                click.echo(json.dumps({"event": "plan", **plan.to_json()}))
            else:
                click.echo("\n".join(plan.describe()))
            return
        hooks = [JsonEvents(sys.stdout)] if json_events else [ProgressDisplay(sys.stderr, quiet=quiet)]
        tune_process()
        if signals is not None:
            signals.launching = True  # from here a signal is acted on by the run: it finalises what it wrote
        segmented = segments is not None or parallel > 1 or resume or restart or backend != "local"
        executor = api.segmented_executor(
            recipe, input=input_, output=output, set=overrides, devices=_devices(device), max_frames=max_frames,
            segments=segments, workers=parallel, resume=resume, restart=restart, keep_segments=keep_segments,
            backend=backend, address=address) if segmented else None
        handle = api.launch(plan, warnings=v.warnings, hooks=hooks, executor=executor)
        if signals is not None:
            signals.attach(handle)
        handle.result()
        _leave(EXIT_OK)
    except KeyboardInterrupt:
        from diffusify.__main__ import BEFORE_START as message

        if json_events:
            click.echo(json.dumps({"event": "interrupted", "message": message}))
        _fail(message, EXIT_INTERRUPTED)
    except RecipeError as e:
        _print_problems(e.problems)
        if json_events:
            click.echo(json.dumps({"event": "error", "kind": "invalid",
                                   "problems": [p.to_json() for p in e.problems]}))
        sys.exit(EXIT_INVALID)
    except (Interrupted, PipelineError) as e:
        # The outputs are final and every ffmpeg child has exited. Leave without the interpreter's teardown: a
        # worker can still sit in a long GPU kernel (it is a daemon thread), and tearing the CUDA context down
        # under it takes seconds or hangs, while a second Ctrl-C promises a stop within 2 s.
        _fail(str(e), e.exit_code, fast=True)
    except DiffusifyError as e:
        _fail(str(e), e.exit_code)
    except Exception as e:  # a bug: still one line, never a traceback (set DIFFUSIFY_DEBUG=1 to see it)
        if os.environ.get("DIFFUSIFY_DEBUG"):
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (set DIFFUSIFY_DEBUG=1 for details)", EXIT_FAILED)


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Output format.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def validate(recipes: tuple[str, ...], fmt: str, strict: bool) -> None:
    """Check RECIPES: every problem, as file:line:col: path: message. Exit 2 on any error."""
    from diffusify.api import validate as validate_all

    problems = validate_all(recipes)
    errors = [p for p in problems if p.severity == "error" or strict]
    if fmt == "json":
        click.echo(json.dumps({"ok": not errors, "files": list(recipes),
                               "problems": [p.to_json() for p in problems]}, indent=2))
    else:
        for p in problems:
            click.echo(p.format())
        warnings = len(problems) - len([p for p in problems if p.severity == "error"])
        n_err = len(problems) - warnings
        click.echo(f"{len(recipes)} file{'s' if len(recipes) != 1 else ''}: {n_err} error{'s' if n_err != 1 else ''}, "
                   f"{warnings} warning{'s' if warnings != 1 else ''}", err=True)
    sys.exit(EXIT_INVALID if errors else EXIT_OK)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot", "json"]), default="text")
@click.option("-i", "--input", "input_", metavar="FILE", help="Set the recipe's 'input' param.")
@click.option("-o", "--output", metavar="FILE", help="Set the recipe's 'output' param.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Override a param, or a node parameter as NODE.PARAM=VALUE (repeatable).")
def graph(recipe: str, fmt: str, input_: str | None, output: str | None, sets: tuple[str, ...]) -> None:
    """Print the resolved DAG of RECIPE with the stream info of every node."""
    from diffusify.api import check
    from diffusify.graph import render

    v = check(recipe, input=input_, output=output, set=_parse_sets(sets))
    _print_problems(v.problems)
    if v.recipe is None or not v.order:
        sys.exit(EXIT_INVALID)
    out = {"text": render.render_text, "mermaid": render.render_mermaid, "dot": render.render_dot,
           "json": render.render_json}[fmt](v)
    click.echo(out)
    sys.exit(EXIT_INVALID if v.errors else EXIT_OK)


@cli.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def processors(name: str | None, fmt: str) -> None:
    """List processor types, or document NAME: parameters, ports, temporal behaviour, resources."""
    from diffusify.processors.registry import default_registry

    reg = default_registry()
    for err in reg.plugin_errors:
        click.echo(f"warning: {err}", err=True)
    if name is None:
        if fmt == "json":
            click.echo(json.dumps([{"type": c.type_name, "summary": c.summary(), "implemented": c.implemented}
                                   for c in reg], indent=2))
            return
        width = max(len(n) for n in reg.names())
        for c in reg:
            note = "" if c.implemented else "  [not implemented yet]"
            click.echo(f"{c.type_name:<{width}}  {c.summary()}{note}")
        return
    try:
        cls = reg.get(name)
    except KeyError as e:
        _fail(str(e.args[0]), EXIT_INVALID)
    from diffusify.processors.describe import describe, describe_json

    click.echo(json.dumps(describe_json(cls), indent=2) if fmt == "json" else describe(cls))


@cli.command()
def schema() -> None:
    """Print the recipe JSON Schema (for yaml-language-server and other editors)."""
    from diffusify.recipe.schema import schema_json

    click.echo(schema_json(), nl=False)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", default=8188, show_default=True, type=click.IntRange(0, 65535))
@click.option("--root", "roots", multiple=True, type=click.Path(file_okay=False, exists=True), metavar="DIR",
              help="A folder recipes, inputs and outputs must lie in (repeatable; default: the current folder).")
@click.option("--token", envvar="DIFFUSIFY_TOKEN", metavar="TOKEN",
              help="Bearer token every request must carry (or set DIFFUSIFY_TOKEN).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Jobs that may run at once, each in a worker process.")
@click.option("--max-queue", default=64, show_default=True, type=click.IntRange(min=1),
              help="Jobs that may wait; one more is refused (HTTP 429).")
@click.option("--recipes", "recipes_dir", type=click.Path(file_okay=False, exists=True), metavar="DIR",
              help="The folder whose recipes the dashboard offers (default: the first root).")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where the jobs database and previews live (default: .diffusify-server in the first root).")
def serve(host: str, port: int, roots: tuple[str, ...], token: str | None, workers: int, max_queue: int,
          recipes_dir: str | None, state_dir: str | None) -> None:
    """Run the job server: an HTTP API (/docs), live events and a dashboard (/)."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

        from diffusify.server import ServerConfig
        from diffusify.server import serve as run_server
    except ImportError as e:
        _fail(f"the job server needs its extra ({e.name} is missing): pip install -e \".[server]\"", EXIT_INVALID)
    try:
        config = ServerConfig(roots=list(roots) or [os.getcwd()], host=host, port=port, token=token,
                              workers=workers, max_queue=max_queue, recipes_dir=recipes_dir, state_dir=state_dir)
        config.check_binding()
    except ValueError as e:
        _fail(str(e), EXIT_INVALID)
    click.echo(f"diffusify: serving on http://{host}:{port}/ (API docs at /docs; roots: {', '.join(config.roots)})",
               err=True)
    run_server(config)


class _Signals:
    """SIGINT/SIGTERM in the command's own process, installed before anything else is imported.

    Before a run is launched nothing has been written, so a signal ends the command at once: one line (and an
    ``interrupted`` event with ``--json-events``), exit 130. Once a run is launched the first signal stops it
    gracefully (drain, finalise) and the second at once. The handler never raises, so no signal can land as an
    exception inside an import, a model load or an interpreter lock. It stays installed until the process exits:
    a second Ctrl-C just after a drained run has finished changes nothing."""

    def __init__(self) -> None:
        import signal

        self.count = 0
        self.name = ""
        self.json = False
        self.launching = False
        self._run: Any = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def attach(self, run: Any) -> None:
        self._run = run
        if self.count:
            run.cancel(now=self.count > 1, reason=self.name)

    def _handler(self, signum: int, _frame: object) -> None:
        import signal

        self.count += 1
        self.name = signal.Signals(signum).name
        if self._run is not None:
            self._run.cancel(now=self.count > 1, reason=self.name)
        elif not self.launching:
            from diffusify.__main__ import exit_before_start

            exit_before_start(self.json)


_SIGNALS: _Signals | None = None


def main() -> None:
    """Console-script entry point."""
    global _STANDALONE, _SIGNALS
    _STANDALONE = True
    _SIGNALS = _Signals()
    try:
        from diffusify.weights.cli import weights

        cli.add_command(weights)
    except ImportError:
        pass
    cli(prog_name="diffusify")

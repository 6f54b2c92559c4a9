"""``diffusify weights``: the model manifest, downloads, verification and ncnn conversion."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from diffusify.weights.errors import WeightsError


def _fail(message: str) -> None:
    click.echo(f"diffusify: {message}", err=True)
    sys.exit(2)


@click.group()
def weights() -> None:
    """Known models (weights/models.yaml): list, pull, verify, import."""


@weights.command("list")
@click.option("--purpose", help="Only models for this purpose (upscale, denoise, ...).")
def list_cmd(purpose: str | None) -> None:
    """List the manifest's models and whether each is present locally."""
    from diffusify.weights.manifest import list_models, local_path

    try:
        models = list_models(purpose=purpose)
    except WeightsError as e:
        _fail(str(e))
    for m in models:
        here = local_path(m)
        state = "bundled" if m.bundled else ("present" if here else "not downloaded")
        click.echo(f"{m.name:<28} x{m.scale:<2} {m.purpose:<8} {m.architecture:<10} {m.licence:<14} {state}")
    from diffusify.weights.hub import hub_models, snapshot

    try:
        hub = [h for h in hub_models() if purpose is None or h.purpose == purpose]
    except WeightsError as e:
        _fail(str(e))
    for h in hub:
        size = f"{h.size / 2**30:.1f} GiB" if h.size else "size ?"
        state = "present" if snapshot(h.repo, h.revision) else "not downloaded"
        click.echo(f"{h.name:<28} {h.purpose:<11} {h.pipeline:<24} {h.licence:<20} {size:<9} {state}  "
                   f"{h.repo}@{h.revision}")


@weights.command()
@click.argument("name")
@click.option("--dest", type=click.Path(file_okay=False), help="Folder to download into (default: the cache).")
@click.option("--allow-unverified", is_flag=True, help="Download an entry whose sha256 is not pinned yet.")
def pull(name: str, dest: str | None, allow_unverified: bool) -> None:
    """Download NAME (resuming a partial download) and verify its sha256; a Hub model goes into
    huggingface_hub's cache."""
    from diffusify.weights.hub import find_hub, pull_hub
    from diffusify.weights.manifest import default_cache_dir, find
    from diffusify.weights.pull import pull as do_pull

    try:
        hub = find_hub(name)
        if hub is not None:  # a diffusers pipeline: into huggingface_hub's cache, with its progress bars
            click.echo(f"{hub.name}: downloading {hub.repo}@{hub.revision} ({hub.licence})", err=True)
            click.echo(str(pull_hub(hub)))
            return
        entry = find(name)
        last = [0.0]

        def progress(done: int, total: int | None) -> None:
            import time

            now = time.monotonic()
            if now - last[0] < 0.5 and done != total:
                return
            last[0] = now
            pct = f" {100 * done / total:5.1f}%" if total else ""
            click.echo(f"\r{name}: {done / 2**20:8.1f} MiB{pct}", nl=False, err=True)

        path = do_pull(entry, Path(dest) if dest else default_cache_dir(), progress=progress,
                       allow_unverified=allow_unverified)
        click.echo("", err=True)
        click.echo(str(path))
    except WeightsError as e:
        click.echo("", err=True)
        _fail(str(e))


@weights.command()
@click.argument("names", nargs=-1)
def verify(names: tuple[str, ...]) -> None:
    """Check the sha256 of NAMES (default: every model present locally)."""
    from diffusify.weights.manifest import find, list_models, local_path
    from diffusify.weights.pull import verify as do_verify

    try:
        entries = [find(n) for n in names] if names else [m for m in list_models() if local_path(m)]
    except WeightsError as e:
        _fail(str(e))
    bad = 0
    for entry in entries:
        path = local_path(entry)
        if path is None:
            click.echo(f"{entry.name}: missing (diffusify weights pull {entry.name})")
            bad += 1
            continue
        try:
            digest = do_verify(entry, path)
            click.echo(f"{entry.name}: ok {digest[:16]}  {path}")
        except WeightsError as e:
            click.echo(f"{entry.name}: {e}")
            bad += 1
    sys.exit(1 if bad else 0)


@weights.command("import")
@click.argument("param", type=click.Path(exists=True, dir_okay=False))
@click.argument("bin_", metavar="BIN", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--name", help="Model name stored in the file's metadata.")
def import_cmd(param: str, bin_: str, out: str, name: str | None) -> None:
    """Convert an ncnn model (PARAM + BIN) to a safetensors file spandrel loads."""
    from diffusify.weights.ncnn.convert import import_ncnn

    try:
        r = import_ncnn(param, bin_, out, name=name)
    except WeightsError as e:
        _fail(str(e))
    post = f", post-scale {r.post_scale}" if r.post_scale else ""
    click.echo(f"{r.out_path}: {r.architecture} x{r.scale}{post} (effective x{r.effective_scale}), "
               f"{r.parameters} parameters, sha256 {r.sha256}")

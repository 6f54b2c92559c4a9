"""Validation cost on hostile sizes, against the YAML parse alone measured in the same invocation.

    python bench/validate.py            # a 10,000-node chain, a 50,000-character id with a typo, a ~50 MB recipe

Validation should stay near-linear in the recipe's size: its time over the parse's time should not grow with the
size. Each figure is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffusify.graph.validate import validate_text  # noqa: E402
from diffusify.recipe.yamlpos import load_yaml  # noqa: E402

SRC = "{type: pattern, with: {width: 16, height: 16, frames: 2}}"


def chain(n: int) -> str:
    lines = [f"  n0: {SRC}"] + [f"  n{i}: {{type: color, input: n{i - 1}}}" for i in range(1, n)]
    return "version: 1\nnodes:\n" + "\n".join(lines + [f"  out: {{type: discard, input: n{n - 1}}}"]) + "\n"


def long_id(n: int) -> str:
    """A node id of ``n`` characters (an explicit key: YAML caps implicit keys at 1024), referenced with a typo."""
    node = "n" * n
    return (f"version: 1\nnodes:\n  ? {node}\n  : {SRC}\n"
            f"  out: {{type: discard, input: {node[:-1]}m}}\n")


def big(megabytes: int) -> str:
    """Many writers of one source, each with a long description-like param: ~``megabytes`` MB of YAML."""
    pad = "x" * 900
    head = f"version: 1\nparams:\n  note: {pad}\nnodes:\n  src: {SRC}\n"
    per = len(f"  w00000: {{type: discard, input: src}}  # {pad}\n")
    n = megabytes * 1_000_000 // per
    return head + "".join(f"  w{i:05d}: {{type: discard, input: src}}  # {pad}\n" for i in range(n))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cases", type=int, default=4, help="run the first N cases (the 50 MB one is last)")
    args = ap.parse_args()
    cases = [("10,000-node chain", chain(10_000)), ("2,000-character id", long_id(2_000)),
             ("50,000-character id", long_id(50_000)), ("~50 MB recipe", big(50))]
    for name, text in cases[: args.cases]:
        parse = best(lambda t=text: load_yaml(t), args.repeat)
        full = best(lambda t=text: validate_text(t), args.repeat)
        print(f"validate: {name:<22} {len(text) / 1e6:6.1f} MB  parse {parse:7.2f} s  validate {full:7.2f} s  "
              f"ratio {full / parse:5.2f}")


if __name__ == "__main__":
    main()

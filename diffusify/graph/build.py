"""Build the pipeline DAG with networkx and check its shape: cycles, sinks, dead ends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import networkx as nx

from diffusify.processors.base import Processor
from diffusify.spec.recipe import Recipe

if TYPE_CHECKING:
    from diffusify.spec.yamlpos import Path


class Reporter(Protocol):
    def error(self, path: Path, message: str, *, key: bool = False) -> None: ...

    def warn(self, path: Path, message: str, *, key: bool = False) -> None: ...


def to_graph(recipe: Recipe) -> nx.DiGraph:
    """The DAG: one networkx node per recipe node, an edge per input (attribute ``port``)."""
    g = nx.DiGraph()
    for nid, node in recipe.nodes.items():
        g.add_node(nid, type=node.type)
    for nid, node in recipe.nodes.items():
        for port, ref in node.inputs.items():
            if ref in recipe.nodes:
                g.add_edge(ref, nid, port=port)
    return g


def check_graph(recipe: Recipe, classes: Mapping[str, type[Processor]], all_ids: list[str],
                report: Reporter, referenced: set[str] | None = None) -> list[str]:
    """Report cycles, missing sinks and dead-end nodes. Returns a topological order ([] on a cycle)."""
    g = to_graph(recipe)
    order: list[str] = []
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [u for u, _ in cycle] + [cycle[0][0]]
        first = min(names[:-1], key=lambda n: recipe.nodes[n].line)
        i = names.index(first)
        names = names[i:-1] + names[:i] + [first]
        report.error(("nodes", first), f"cycle: {' -> '.join(names)} (a pipeline must flow one way: take one "
                     "of these inputs from a node outside the loop)", key=True)
    else:
        # stable order: by position in the file among nodes that are ready
        order = list(nx.lexicographical_topological_sort(g, key=lambda n: recipe.nodes[n].line))

    if all_ids and not any(classes[n].is_sink for n in recipe.nodes) and len(recipe.nodes) == len(all_ids):
        report.error(("nodes",), "the pipeline has no output: add a video.write or image.write node", key=True)
        return order  # every end of the graph goes nowhere then: one error says it
    for nid in recipe.nodes:
        cls = classes[nid]
        if not cls.is_sink and g.out_degree(nid) == 0 and nid not in (referenced or ()):
            report.warn(("nodes", nid), f"the output of '{nid}' goes nowhere (connect it, or remove the node)",
                        key=True)
    return order


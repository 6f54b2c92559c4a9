"""Load YAML keeping the line and column of every key and value.

ruamel's composer gives marks on every node; we build plain Python values from the node tree ourselves so
that duplicate keys are reported (all of them, with both places) instead of stopping the load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[Any, ...]


@dataclass
class Positions:
    """Maps a YAML path (tuple of keys/indices) to 1-based (line, col) of its key and of its value."""

    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Position of ``path`` (its value by default, its key with ``key=True``), else of the nearest parent."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


@dataclass
class LoadIssue:
    line: int
    col: int
    path: Path
    message: str


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag if isinstance(node.tag, str) else getattr(node.tag, "value", str(node.tag))
    text = node.value
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return text.lower() in ("true", "yes", "on")
    if tag.endswith(":int"):
        try:
            return int(text.replace("_", ""), 0)
        except ValueError:
            return text
    if tag.endswith(":float"):
        low = text.lower().replace("_", "")
        if low in (".inf", "+.inf"):
            return float("inf")
        if low == "-.inf":
            return float("-inf")
        if low == ".nan":
            return float("nan")
        try:
            return float(low)
        except ValueError:
            return text
    return text


def _build(node: Node, path: Path, pos: Positions, issues: list[LoadIssue]) -> Any:
    pos.values.setdefault(path, _mark(node))
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        return [_build(item, path + (i,), pos, issues) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag and str(getattr(key_node.tag, "value", key_node.tag)).endswith(":merge"):
                issues.append(LoadIssue(*_mark(key_node), path, "YAML merge keys ('<<') are not supported"))
                continue
            key = _build(key_node, path + ("<key>",), Positions(), issues)
            if isinstance(key, (list, dict)):
                issues.append(LoadIssue(*_mark(key_node), path, "mapping keys must be plain scalars"))
                continue
            if key in out:
                first = pos.keys[path + (key,)]
                issues.append(
                    LoadIssue(*_mark(key_node), path + (key,),
                              f"duplicate key '{key}' (first defined at line {first[0]}); remove one of them")
                )
                continue
            pos.keys[path + (key,)] = _mark(key_node)
            out[key] = _build(value_node, path + (key,), pos, issues)
        return out
    return None


def load_yaml(text: str) -> tuple[Any, Positions, list[LoadIssue]]:
    """Parse ``text``. Returns the data, the positions, and load issues (syntax errors, duplicate keys).

    A syntax error returns ``None`` as data with one issue at the error's mark.
    """
    yaml = YAML(typ="rt", pure=True)
    pos = Positions()
    issues: list[LoadIssue] = []
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        what = " ".join(str(x) for x in (e.context, e.problem) if x) or "invalid YAML"
        return None, pos, [LoadIssue(line, col, (), f"YAML syntax error: {what}")]
    except YAMLError as e:
        return None, pos, [LoadIssue(0, 0, (), f"YAML error: {str(e).splitlines()[0]}")]
    if root is None:
        return None, pos, []
    data = _build(root, (), pos, issues)
    return data, pos, issues


def dotted(path: Path) -> str:
    """``('nodes', 'up', 'with', 'tile')`` -> ``nodes.up.with.tile``; list indices as ``[i]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out

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
from ruamel.yaml.reader import ReaderError

Path = tuple[Any, ...]


@dataclass
class Positions:
    """Maps a YAML path (tuple of keys/indices) to 1-based (line, col) of its key and of its value."""

    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    _text_index: Any = field(default=None, init=False, repr=False, compare=False)

    def of(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Position of ``path`` (its value by default, its key with ``key=True``), else of the nearest parent.

        Path parts match by their text, so a node written as ``1:`` is found as ``"1"`` (validation names nodes
        and params by their text).
        """
        keys, values = self._by_text()
        table = keys if key else values
        p = tuple(str(part) for part in path)
        while p:
            if p in table:
                return table[p]
            if p in values:
                return values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))

    def _by_text(self) -> tuple[dict[Path, tuple[int, int]], dict[Path, tuple[int, int]]]:
        size = (len(self.keys), len(self.values))
        if self._text_index is None or self._text_index[0] != size:
            index = tuple({tuple(str(part) for part in k): v for k, v in reversed(table.items())}
                          for table in (self.keys, self.values))
            self._text_index = (size, index)
        return self._text_index[1]


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


MAX_DEPTH = 64
MAX_VALUES = 100_000


class _TooBig(Exception):
    """The document expands (through aliases) to more values than any recipe needs."""


@dataclass
class _BuildState:
    issues: list[LoadIssue]
    values: int = 0
    active: set[int] = field(default_factory=set)  # ids of the nodes being built: an alias loop comes back to one


def _build(node: Node, path: Path, pos: Positions, state: _BuildState, depth: int = 0) -> Any:
    pos.values.setdefault(path, _mark(node))
    state.values += 1
    if state.values > MAX_VALUES:
        raise _TooBig
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if id(node) in state.active:
        state.issues.append(LoadIssue(*_mark(node), path, "this alias refers to a value that contains it (a "
                                                          "loop); a recipe cannot be recursive: remove the alias"))
        return None
    if depth >= MAX_DEPTH:
        state.issues.append(LoadIssue(*_mark(node), path, f"values are nested more than {MAX_DEPTH} levels deep; "
                                                          "a recipe needs only a few levels: flatten it"))
        return None
    state.active.add(id(node))
    try:
        if isinstance(node, SequenceNode):
            return [_build(item, path + (i,), pos, state, depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return _build_mapping(node, path, pos, state, depth)
    finally:
        state.active.discard(id(node))
    return None


def _build_mapping(node: MappingNode, path: Path, pos: Positions, state: _BuildState,
                   depth: int) -> dict[Any, Any]:
    issues = state.issues
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag and str(getattr(key_node.tag, "value", key_node.tag)).endswith(":merge"):
            issues.append(LoadIssue(*_mark(key_node), path, "YAML merge keys ('<<') are not supported; write the "
                                                             "keys out, or alias the whole value ('*name')"))
            continue
        key = _build(key_node, path + ("<key>",), Positions(), state, depth + 1)
        if isinstance(key, (list, dict)):
            issues.append(LoadIssue(*_mark(key_node), path, "mapping keys must be plain scalars; use a name"))
            continue
        if key in out:
            first = pos.keys[path + (key,)]
            issues.append(
                LoadIssue(*_mark(key_node), path + (key,),
                          f"duplicate key '{key}' (first defined at line {first[0]}); remove one of them")
            )
            continue
        pos.keys[path + (key,)] = _mark(key_node)
        out[key] = _build(value_node, path + (key,), pos, state, depth + 1)
    return out


_TOKENS = {"'<block mapping start>'": "a key", "'?'": "a key", "'<block sequence start>'": "a list item",
           "'-'": "a list item", "'<scalar>'": "a value", "'<stream end>'": "the end of the file"}



def _token(text: str) -> str:
    text = text.strip()
    return _TOKENS.get(text, text)


def _syntax_issue(e: MarkedYAMLError) -> LoadIssue:
    """A syntax error as one issue that says what is wrong and how to fix it, at the most useful place."""
    context, problem = str(e.context or ""), str(e.problem or "")
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    opened = e.context_mark
    at_end = "<stream end>" in problem or "end of stream" in problem
    if opened is not None and ("flow sequence" in context or "flow mapping" in context):
        pair = "[]" if "sequence" in context else "{}"
        if at_end:
            # like Python's "'[' was never closed": point at the opener, the place the reader can check
            return LoadIssue(opened.line + 1, opened.column + 1, (),
                             f"YAML syntax error: this '{pair[0]}' is never closed; add '{pair[1]}'")
        if mark is not None and mark.line != opened.line:
            # a bracket left open swallows the lines after it; the parser only stops at the next key
            return LoadIssue(opened.line + 1, opened.column + 1, (),
                             f"YAML syntax error: this '{pair[0]}' is not closed before line {line}, column {col} "
                             f"(found {_token(problem.rsplit('got ', 1)[-1])} there); add '{pair[1]}'")
        return LoadIssue(line, col, (), f"YAML syntax error: {problem} inside the '{pair[0]}' opened at line "
                                        f"{opened.line + 1}, column {opened.column + 1}; close it with '{pair[1]}' "
                                        "or separate its items with ','")
    if opened is not None and "quoted scalar" in context and at_end:
        return LoadIssue(opened.line + 1, opened.column + 1, (),
                         "YAML syntax error: this quoted string is never closed; add the closing quote")
    if "'\\t'" in problem or "\t" in problem:
        message = "a tab character; YAML indents with spaces only (replace the tab with spaces)"
    elif "mapping values are not allowed" in problem:
        message = ("a ':' where a value was expected; fix the indentation of this line, or quote a value that "
                   "contains ': '")
    elif "expected <block end>" in problem or "expected <block" in problem:
        found = _token(problem.split("found", 1)[-1])
        message = (f"found {found} where it does not belong; fix the indentation of this line (it must line up "
                   "with the keys above it) or remove a stray bracket")
    elif "another document" in problem:
        message = "a recipe is a single YAML document; remove the second '---'"
    elif "undefined alias" in problem:
        message = f"{problem}; define the anchor ('&name') before using it ('*name')"
    else:
        what = " ".join(x for x in (context, problem) if x) or "invalid YAML"
        message = f"{what} (fix the YAML syntax here)"
    return LoadIssue(line, col, (), f"YAML syntax error: {message}")


def load_yaml(text: str) -> tuple[Any, Positions, list[LoadIssue]]:
    """Parse ``text``. Returns the data, the positions, and load issues (syntax errors, duplicate keys).

    A syntax error returns ``None`` as data with one issue at the error's mark.
    """
    yaml = YAML(typ="rt", pure=True)
    pos = Positions()
    issues: list[LoadIssue] = []
    try:
        root = yaml.compose(text)
    except RecursionError:
        return None, pos, [LoadIssue(1, 1, (), f"values are nested too deeply to read; a recipe needs only a few "
                                              f"levels (at most {MAX_DEPTH}): flatten it")]
    except MarkedYAMLError as e:
        return None, pos, [_syntax_issue(e)]
    except ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        return None, pos, [LoadIssue(line, col, (), f"the file holds a control character (#x{e.character:04x}) "
                                                   "that YAML does not allow; remove it")]
    except YAMLError as e:
        return None, pos, [LoadIssue(0, 0, (), f"YAML error: {str(e).splitlines()[0]} (fix the YAML syntax)")]
    if root is None:
        return None, pos, []
    try:
        data = _build(root, (), pos, _BuildState(issues))
    except _TooBig:
        return None, Positions(), [LoadIssue(1, 1, (), f"the file expands to more than {MAX_VALUES} values "
                                                      "(through aliases); a recipe needs far fewer: remove the "
                                                      "repeated aliases")]
    return data, pos, issues


def dotted(path: Path) -> str:
    """``('nodes', 'up', 'with', 'tile')`` -> ``nodes.up.with.tile``; list indices as ``[i]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            if any(ord(ch) < 32 for ch in text):  # a key with a line break is shown escaped, on one line
                text = repr(text)[1:-1]
            out += ("." if out else "") + text
    return out

"""Recipe params: their defaults, command-line overrides, references between params, and ``${name}``
substitution in the rest of the recipe.

A param's default may use other params (``dir: out``, ``path: "${dir}/x.mkv"``); they are resolved in dependency
order, and a cycle, a reference to an undefined param or an unclosed ``${name`` is reported at its line, never
written literally into a file name. A value that is exactly ``${name}`` keeps the param's type; ``$${`` writes a
literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from diffusify.core.problems import Problem, did_you_mean
from diffusify.recipe.yamlpos import Path, load_yaml

PARAM_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_WHOLE_RE = re.compile(r"\$\{([^}]*)\}\Z")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")  # \Z, not $: "$" also matches before a final newline
CLI_FILE = "<command line>"


class _Reporter(Protocol):
    problems: list[Problem]

    def error(self, path: Path, message: str, *, key: bool = False) -> None: ...


def coerce_override(raw: str, default: Any) -> Any:
    """Type a ``--set`` value by the param's default. Raises ValueError with what was expected."""
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValueError("expected true or false")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError("expected an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
    if default is None:
        data, _, issues = load_yaml(raw)
        return raw if issues or isinstance(data, (dict, list)) else (raw if data is None else data)
    return raw


def _unclosed(text: str) -> str | None:
    """The unclosed ``${name`` in ``text`` (after the closed ones and ``$${`` escapes), if any."""
    rest = PARAM_RE.sub("", text)
    i = rest.find("${")
    return rest[i:i + 40] if i >= 0 else None


class Params:
    """Reads the ``params`` section and the overrides, resolves references between params, and substitutes
    params into the rest of the recipe, reporting every problem to ``report``.

    After :meth:`read`, ``values`` holds each param's resolved value and ``from_cli`` the names set on the
    command line. :meth:`substitute` records in ``cli_rooted`` the YAML paths whose value starts with a
    command-line value (a path written on the command line is relative to the current folder, one written in
    the recipe to the recipe's folder).
    """

    def __init__(self, report: _Reporter, overrides: Mapping[str, str] | None = None):
        self.report = report
        self.overrides = dict(overrides or {})
        self.values: dict[str, Any] = {}
        self.from_cli: set[str] = set()
        self.cli_rooted: set[Path] = set()
        self._raw: dict[str, Any] = {}
        self._bad: set[str] = set()

    # ---- the params section ----------------------------------------------------------------------------------
    def read(self, raw: Any) -> dict[str, Any]:
        c = self.report
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            c.error(("params",), "must be a mapping of parameter names to default values")
            raw = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not NAME_RE.match(name):
                c.error(("params", name), f"bad parameter name {name!r}: start with a letter or '_', then use "
                        "letters, digits, '_' or '-'", key=True)
                continue
            if isinstance(value, (dict, list)):
                c.error(("params", name), "a parameter default must be a scalar (string, number, true/false)")
                continue
            self._raw[name] = value
        for name, text in self.overrides.items():
            if name not in self._raw:
                flag = {"input": "-i", "output": "-o"}.get(name, f"--set {name}=...")
                known = ", ".join(sorted(self._raw)) or "none"
                c.problems.append(Problem(
                    CLI_FILE, 0, 0, flag,
                    f"the recipe has no parameter '{name}'{did_you_mean(name, self._raw)} (its params: {known})"
                    + (f"; declare '{name}:' under params" if name in ("input", "output") else "")))
                continue
            try:
                self._raw[name] = coerce_override(text, self._raw[name])
                self.from_cli.add(name)
            except ValueError as e:
                c.problems.append(Problem(CLI_FILE, 0, 0, f"--set {name}",
                                          f"{e} (the default is {self._raw[name]!r}), got {text!r}"))
        for name in self._raw:
            self._resolve(name, ())
        return self.values

    def _where(self, name: str) -> Path:
        return ("params", name)

    def _error(self, name: str, message: str) -> None:
        if name in self.from_cli:
            self.report.problems.append(Problem(CLI_FILE, 0, 0, f"--set {name}", message))
        else:
            self.report.error(self._where(name), message)

    def _resolve(self, name: str, stack: tuple[str, ...]) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self._bad:
            return None
        value = self._raw[name]
        if isinstance(value, str) and "$" in value:
            if name in stack:
                return None  # reported by the caller that closed the loop
            value = self._substitute_param(name, value, stack + (name,))
        if name in self._bad:
            return None
        self.values[name] = value
        return value

    def _substitute_param(self, name: str, text: str, stack: tuple[str, ...]) -> Any:
        bad = _unclosed(text)
        if bad is not None:
            self._bad.add(name)
            self._error(name, f"unclosed parameter reference '{bad}': add the closing '}}' (or write '$${{' for a "
                              "literal '${')")
            return None

        def value_of(ref: str) -> Any:
            if ref in stack:
                self._bad.add(name)
                loop = " -> ".join(stack[stack.index(ref):] + (ref,))
                self._error(name, f"'${{{ref}}}' refers to itself" if ref == name
                            else f"params refer to each other in a loop: {loop}; give one of them a value")
                return None
            if ref not in self._raw:
                self._bad.add(name)
                self._error(name, f"undefined parameter '${{{ref}}}'{did_you_mean(ref, self._raw)} (declare it "
                                  "under params)")
                return None
            v = self._resolve(ref, stack)
            if ref in self._bad:
                self._bad.add(name)
            return v

        whole = _WHOLE_RE.match(text)
        if whole:
            return value_of(whole.group(1))

        def one(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            ref = m.group(1)
            if not ref.strip():
                self._bad.add(name)
                self._error(name, "empty parameter reference '${}': write '${name}', or '$${' for a literal '${'")
                return ""
            v = value_of(ref)
            return "" if v is None else str(v)

        return PARAM_RE.sub(one, text)

    # ---- the rest of the recipe ------------------------------------------------------------------------------
    def substitute(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with every ``${name}`` outside ``params`` replaced."""
        params = self.values

        def sub(value: Any, path: Path) -> Any:
            if isinstance(value, dict):
                return {k: sub(v, path + (k,)) for k, v in value.items()}
            if isinstance(value, list):
                return [sub(v, path + (i,)) for i, v in enumerate(value)]
            if not isinstance(value, str) or "$" not in value:
                return value
            bad = _unclosed(value)
            if bad is not None:
                self.report.error(path, f"unclosed parameter reference '{bad}': add the closing '}}' (or write "
                                  "'$${' for a literal '${')")
                return value
            first = PARAM_RE.search(value)
            if first is not None and first.start() == 0 and first.group(1) in self.from_cli:
                self.cli_rooted.add(path)
            whole = _WHOLE_RE.match(value)
            if whole and whole.group(1) in params:
                return params[whole.group(1)]

            def one(m: re.Match[str]) -> str:
                if m.group(0) == "$${":
                    return "${"
                name = m.group(1)
                if not name.strip():
                    self.report.error(path, "empty parameter reference '${}': write '${name}', or '$${' for a "
                                      "literal '${'")
                    return m.group(0)
                if name not in params:
                    if name not in self._bad and name not in self._raw:
                        self.report.error(path, f"undefined parameter '${{{name}}}'{did_you_mean(name, params)}"
                                          " (declare it under params)")
                    return m.group(0)
                return "" if params[name] is None else str(params[name])

            return PARAM_RE.sub(one, value)

        return {k: (v if k == "params" else sub(v, (k,))) for k, v in data.items()}

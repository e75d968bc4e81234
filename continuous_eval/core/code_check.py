"""Static validation of evaluator code a model wrote, before anything runs it.

Pure. Learned evaluators are Python written by Claude from labelled
examples; this check refuses, with a line number and a plain sentence, code
that does not define ``score(output, case)``, imports anything outside a
small allowlist of pure standard-library modules, names a builtin that
reaches files, processes, code evaluation or introspection, or touches a
dunder attribute (the usual way out of a restricted namespace:
``().__class__.__base__.__subclasses__()``). It is defence in depth, not the
boundary: the sandbox (``ports.sandbox``) is what stops whatever this misses
at run time.

Decisions:

- ``global`` and ``nonlocal`` are refused: a scoring function of one case
  needs no shared mutable state, and state across cases would make a score
  depend on the order cases ran in.
- Any name, attribute or string constant holding a dunder (``__x__``) is
  refused, and so are private attributes (``_x``) of anything but ``self``.
- Allowed modules reach other modules by plain attributes (``json.codecs``,
  ``re.enum.bltns``, ``dataclasses.inspect.linecache``); a search of every
  public attribute chain from the allowlist (depth 4) found those, and the
  attributes naming them, or a refused builtin, are refused wherever they
  appear.
- Known gap, left to the sandbox: machinery of allowed modules that
  evaluates strings. ``functools.singledispatch(...).register`` calls
  ``typing.get_type_hints``, which ``eval``s a string annotation built at run
  time; no static check of names can see what that string will say. The
  fake Anthropic server's ``escape`` script is exactly this, and it passes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Final

ALLOWED_MODULES: Final = frozenset(
    {
        "re",
        "json",
        "math",
        "statistics",
        "string",
        "difflib",
        "unicodedata",
        "collections",
        "itertools",
        "functools",
        "typing",
        "dataclasses",
        "datetime",
        "decimal",
        "fractions",
    }
)
"""Top-level modules evaluator code may import: pure computation, no I/O."""

FORBIDDEN_NAMES: Final = frozenset(
    {
        "open",
        "eval",
        "exec",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "breakpoint",
        "input",
        "exit",
        "quit",
        "memoryview",
        "help",
        "dir",
        "type",
        "object",
        "super",
        "classmethod",
        "staticmethod",
        "property",
    }
)
"""Builtins that reach files, code evaluation, introspection or the interpreter.

``type``, ``object`` and ``super`` are here too: with them a class can be
made or walked at run time without writing a dunder."""

_FORBIDDEN_ATTRIBUTES: Final = frozenset(
    {
        "open",
        "codecs",
        "os",
        "sys",
        "io",
        "subprocess",
        "socket",
        "importlib",
        "builtins",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "tb_frame",
        "mro",
        "load",
        "dump",
        "bltns",
        "inspect",
        "linecache",
        "getattr_static",
        "get_type_hints",
        "get_field",
        "ForwardRef",
    }
)
FORBIDDEN_ATTRIBUTES: Final = _FORBIDDEN_ATTRIBUTES | FORBIDDEN_NAMES
"""Attributes refused on anything: the forbidden builtins (``re.enum.bltns.getattr``),
paths from an allowed module to a refused one (``json.codecs.open``,
``dataclasses.inspect``), frame and generator internals, ``json.load`` and
``json.dump`` which take a file, and reflection helpers with a getattr's power."""

MAX_BYTES: Final = 20_000
"""Largest source accepted: a scoring function is short; more is likely a mistake."""

MAX_LINES: Final = 400
"""Most lines accepted."""

_DUNDER: Final = re.compile(r"__\w+__")

ENTRY: Final = "score"
"""The function the code must define: ``score(output, case)``."""


@dataclass(frozen=True, slots=True)
class CodeProblem:
    """Why the code is refused, and where."""

    line: int
    """1-based; 0 when the problem is the whole source (size, no ``score``)."""
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def check_code(source: str) -> tuple[CodeProblem, ...]:
    """Return every problem of ``source`` as evaluator code; empty when it may be run."""
    size = len(source.encode())
    if size > MAX_BYTES:
        return (CodeProblem(0, f"the code is {size} bytes, over the limit of {MAX_BYTES}"),)
    lines = source.count("\n") + 1
    if lines > MAX_LINES:
        return (CodeProblem(0, f"the code is {lines} lines, over the limit of {MAX_LINES}"),)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return (CodeProblem(exc.lineno or 0, f"the code does not parse: {exc.msg}"),)
    problems = [*_entry_problems(tree)]
    for node in ast.walk(tree):
        problems.extend(_node_problems(node))
    return tuple(sorted(problems, key=lambda p: (p.line, p.message)))


def _entry_problems(tree: ast.Module) -> list[CodeProblem]:
    found = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == ENTRY
    ]
    if not found:
        return [CodeProblem(0, "the code defines no top-level function score(output, case)")]
    entry = found[-1]
    if isinstance(entry, ast.AsyncFunctionDef):
        return [CodeProblem(entry.lineno, "score must be a plain function, not async")]
    args = entry.args
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    extra = args.vararg or args.kwarg or args.kwonlyargs
    if names != ["output", "case"] or extra:
        return [
            CodeProblem(
                entry.lineno,
                "score must take exactly two parameters, (output, case)",
            )
        ]
    return []


def _node_problems(node: ast.AST) -> list[CodeProblem]:
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Import):
        return [
            CodeProblem(line, _import_message(alias.name))
            for alias in node.names
            if alias.name.split(".")[0] not in ALLOWED_MODULES
        ]
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if node.level or module.split(".")[0] not in ALLOWED_MODULES:
            return [CodeProblem(line, _import_message("." * node.level + module))]
        return [
            CodeProblem(line, f"importing {alias.name!r} from {module} is not allowed")
            for alias in node.names
            if alias.name in FORBIDDEN_ATTRIBUTES or alias.name.startswith("_")
        ]
    if isinstance(node, ast.Name):
        if node.id in FORBIDDEN_NAMES:
            return [CodeProblem(line, f"using {node.id!r} is not allowed in evaluator code")]
        if _DUNDER.search(node.id):
            return [CodeProblem(line, f"the name {node.id!r} is not allowed (dunder names)")]
    if isinstance(node, ast.Attribute):
        return _attribute_problems(node, line)
    if isinstance(node, ast.Global | ast.Nonlocal):
        keyword = "global" if isinstance(node, ast.Global) else "nonlocal"
        return [CodeProblem(line, f"'{keyword}' is not allowed: a score must keep no state")]
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _DUNDER.search(node.value)
    ):
        # A dunder in a string is how getattr-free escapes spell it (format
        # fields like "{0.__class__}", names looked up by subscript).
        return [CodeProblem(line, "strings may not name dunder attributes (like __class__)")]
    return []


def _attribute_problems(node: ast.Attribute, line: int) -> list[CodeProblem]:
    name = node.attr
    if _DUNDER.search(name) or name in FORBIDDEN_ATTRIBUTES:
        return [CodeProblem(line, f"accessing the attribute {name!r} is not allowed")]
    own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
    if name.startswith("_") and not own:
        # Modules keep their imports under private names (collections._sys).
        return [CodeProblem(line, f"accessing the private attribute {name!r} is not allowed")]
    return []


def _import_message(module: str) -> str:
    allowed = ", ".join(sorted(ALLOWED_MODULES))
    return f"importing {module!r} is not allowed; evaluator code may import only {allowed}"

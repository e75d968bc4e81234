"""Static validation of learned evaluator code: what it lets through and why it refuses."""

from __future__ import annotations

import pytest

from continuous_eval.core.code_check import MAX_BYTES, MAX_LINES, check_code
from continuous_eval.fakes.evaluator_codes import CODES


def _messages(source: str) -> list[str]:
    return [str(p) for p in check_code(source)]


def test_good_code_passes() -> None:
    assert check_code(CODES["good"]) == ()
    source = (
        "import json\nfrom collections import Counter\n\n"
        "class Tally:\n    def __init__(self):\n        self._n = 0\n\n"
        "def score(output, case):\n"
        "    words = Counter(output.split())\n"
        "    return {'passed': words['yes'] > 0, 'score': json.loads('0.5')}\n"
    )
    assert check_code(source) == ()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import socket", "importing 'socket' is not allowed"),
        ("import subprocess", "importing 'subprocess' is not allowed"),
        ("import os", "importing 'os' is not allowed"),
        ("import sys", "importing 'sys' is not allowed"),
        ("import importlib", "importing 'importlib' is not allowed"),
        ("import ctypes", "importing 'ctypes' is not allowed"),
        ("import os.path", "importing 'os.path' is not allowed"),
        ("from os import system", "importing 'os' is not allowed"),
        ("from . import x", "importing '.' is not allowed"),
        ("from json import codecs", "importing 'codecs' from json is not allowed"),
        ("x = __import__('os')", "using '__import__' is not allowed"),
        ("x = open('/etc/passwd')", "using 'open' is not allowed"),
        ("x = eval('1')", "using 'eval' is not allowed"),
        ("x = exec", "using 'exec' is not allowed"),
        ("x = getattr(1, 'real')", "using 'getattr' is not allowed"),
        ("x = ().__class__.__base__.__subclasses__()", "attribute '__class__' is not allowed"),
        ("import json\nx = json.__builtins__", "attribute '__builtins__' is not allowed"),
        ("import json\nx = json.codecs.open('/etc/passwd')", "attribute 'codecs' is not allowed"),
        ("import re\nx = re.enum.bltns", "attribute 'bltns' is not allowed"),
        ("import dataclasses\nx = dataclasses.inspect", "attribute 'inspect' is not allowed"),
        ("import collections\nx = collections._sys", "private attribute '_sys' is not allowed"),
        ("x = '{0.__class__}'.format(1)", "strings may not name dunder attributes"),
        ("x = __builtins__", "the name '__builtins__' is not allowed"),
        ("def f():\n    global y", "'global' is not allowed"),
    ],
)
def test_dangerous_code_is_refused_with_a_line_and_a_reason(body: str, expected: str) -> None:
    source = body + "\n\ndef score(output, case):\n    return True\n"
    messages = _messages(source)
    assert any(expected in m for m in messages), messages
    assert all(m.startswith("line ") for m in messages)


def test_the_entry_function_must_exist_with_exactly_two_parameters() -> None:
    assert _messages("def scorer(output, case):\n    return True\n") == [
        "the code defines no top-level function score(output, case)"
    ]
    assert _messages("def score(output):\n    return True\n") == [
        "line 1: score must take exactly two parameters, (output, case)"
    ]
    assert _messages("def score(output, case, *rest):\n    return True\n") == [
        "line 1: score must take exactly two parameters, (output, case)"
    ]
    assert _messages("async def score(output, case):\n    return True\n") == [
        "line 1: score must be a plain function, not async"
    ]
    # Nested inside a class it is not the entry point.
    assert (
        "no top-level function"
        in _messages("class A:\n    def score(output, case):\n        return 1\n")[0]
    )


def test_code_that_does_not_parse_is_refused_with_its_line() -> None:
    assert _messages("def score(output, case):\n    return (\n") == [
        "line 2: the code does not parse: '(' was never closed"
    ]


def test_oversized_code_is_refused_before_parsing() -> None:
    big = "def score(output, case):\n    return True\n" + "#" * MAX_BYTES
    assert _messages(big) == [f"the code is {len(big)} bytes, over the limit of {MAX_BYTES}"]
    tall = "def score(output, case):\n    return True\n" + "\n" * MAX_LINES
    assert "lines, over the limit" in _messages(tall)[0]


@pytest.mark.parametrize("kind", ["loop", "memory", "escape"])
def test_what_only_the_sandbox_can_stop_passes_validation(kind: str) -> None:
    # Documented gaps (see core.code_check): a loop and a 2 GB allocation are
    # plain Python, and the escape builds its dunder at run time and has
    # typing.get_type_hints eval it. The sandbox's tests run these.
    assert check_code(CODES[kind]) == ()

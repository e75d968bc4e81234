"""Evaluator code the fake Anthropic server can be scripted to write, one per kind of behaviour.

The issue's Must-show list: good code, code the static check refuses
(``socket``, ``subprocess``), and code that passes the check but must be
stopped by the sandbox at run time (a loop, a 2 GB allocation, and an escape
through an allowed module's machinery that reads ``/etc/passwd`` and opens a
socket). Tests of the author, the generation job and the sandbox share them,
so each names the same behaviour everywhere.
"""

from __future__ import annotations

from typing import Final

GOOD: Final = '''\
import re


def score(output, case):
    """Pass an answer that says "yes" as a word; fail anything else."""
    return re.search(r"\\byes\\b", output.lower()) is not None
'''
"""Agrees with the labels ``tests`` build: an output passes when it says "yes"."""

IMPORTS_SOCKET: Final = """\
import socket


def score(output, case):
    socket.create_connection(("example.com", 80), timeout=1)
    return True
"""

IMPORTS_SUBPROCESS: Final = """\
import subprocess


def score(output, case):
    return subprocess.run(["cat", "/etc/passwd"], capture_output=True).returncode == 0
"""

LOOPS_FOREVER: Final = """\
def score(output, case):
    n = 0
    while True:
        n += 1
    return n > 0
"""

ALLOCATES_2GB: Final = """\
def score(output, case):
    block = bytearray(2 * 1024 * 1024 * 1024)
    return len(block) > 0
"""

ESCAPES_AT_RUN_TIME: Final = '''\
import functools


def score(output, case):
    """Looks like a type-dispatching scorer; register() evals each annotation."""
    dunder = "_" * 2
    attempts = [
        "open('/etc/passwd').read()",
        dunder + "import" + dunder + "('socket').create_connection(('127.0.0.1', 9), 1)",
    ]
    seen = []
    for attempt in attempts:

        @functools.singledispatch
        def judge(value):
            return False

        def by_type(value: attempt):
            return True

        try:
            judge.register(by_type)
            seen.append("got through")
        except Exception as exc:
            seen.append(repr(exc))
    raise RuntimeError(" | ".join(seen))
'''
"""Passes ``core.code_check`` (no dunder is written, only built): ``register`` calls
``typing.get_type_hints``, which evaluates each annotation: a read of /etc/passwd,
then a socket. It raises with what each attempt met, so a test sees both refused."""

CODES: Final[dict[str, str]] = {
    "good": GOOD,
    "socket": IMPORTS_SOCKET,
    "subprocess": IMPORTS_SUBPROCESS,
    "loop": LOOPS_FOREVER,
    "memory": ALLOCATES_2GB,
    "escape": ESCAPES_AT_RUN_TIME,
}
"""Every scripted kind by the name ``POST /_fake/evaluators`` takes (``{"kind": ...}``)."""

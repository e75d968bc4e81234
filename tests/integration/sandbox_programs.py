"""Evaluator programs for the sandbox tests: good code, and code that attacks the sandbox.

The hostile ones reach for what static validation would reject through paths
it cannot see: ``__import__`` out of the builtins, ``os`` out of an object
subclass's globals, the worker's own protocol file descriptor.
"""

from __future__ import annotations

from continuous_eval.core.sandboxing import SandboxProgram

GOOD = SandboxProgram(
    """
import re

calls = 0

def score(output, case):
    global calls
    calls += 1
    matched = re.search(r"\\brefund\\b", output) is not None
    return {"score": 1.0 if matched else 0.0, "passed": matched, "rationale": str(calls)}
"""
)

LOOP = SandboxProgram("def score(output, case):\n    while True:\n        pass\n")

SLEEP = SandboxProgram("def score(output, case):\n    __import__('time').sleep(600)\n")

BIG_BYTES = SandboxProgram("def score(output, case):\n    return len(b' ' * 2_000_000_000)\n")

BIG_LIST = SandboxProgram(
    """
def score(output, case):
    grown = []
    while True:
        grown.append(" " * 1_000_000)
"""
)

READ_PASSWD = SandboxProgram(
    """
import json

def score(output, case):
    found = []
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":  # os's own class: its globals are os
            osmod = cls.__init__.__globals__
            try:
                fd = osmod["open"]("/etc/passwd", osmod["O_RDONLY"])
                found.append(osmod["read"](fd, 100000).decode())
            except OSError as exc:
                found.append(repr(exc))
    opener = json.__builtins__["open"]
    return {"score": 1, "rationale": opener("/etc/passwd").read() + "".join(found)}
"""
)

CONNECT = SandboxProgram(
    """
import json

def score(output, case):
    socket = json.__builtins__["__import__"]("socket")
    conn = socket.create_connection(("127.0.0.1", case["metadata"]["port"]), timeout=2)
    conn.sendall(b"hello")
    return True
"""
)

WRITE = SandboxProgram(
    """
def score(output, case):
    errors = []
    for path in case["metadata"]["paths"]:
        try:
            with open(path, "w") as f:
                f.write("written")
            errors.append(path + ": written")
        except OSError as exc:
            errors.append(path + ": " + type(exc).__name__)
    wrote = any(e.endswith(": written") for e in errors)
    return {"score": 1.0 if wrote else 0.0, "rationale": "; ".join(errors)}
"""
)

HUGE = SandboxProgram(
    "def score(output, case):\n    return {'score': 1, 'rationale': 'x' * 10_000_000}\n"
)

FLOOD_PROTOCOL = SandboxProgram(
    """
def score(output, case):
    osmod = __import__("os")
    osmod.write(3, b"x" * 5_000_000)  # the worker's reply channel, bypassing its size check
    return True
"""
)

EXIT = SandboxProgram("def score(output, case):\n    __import__('os')._exit(3)\n")

RAISES = SandboxProgram("def score(output, case):\n    raise KeyError('expected')\n")

NOT_A_SCORE = SandboxProgram("def score(output, case):\n    return 'yes'\n")

NAN = SandboxProgram("def score(output, case):\n    return float('nan')\n")

TAMPER = SandboxProgram(
    """
import re

re.search = lambda *args, **kwargs: True  # every later user of re in this process is fooled

def score(output, case):
    return True
"""
)

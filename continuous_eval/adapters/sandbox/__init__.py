"""Untrusted evaluator code in bubblewrap worker processes with limits (the ``Sandbox`` port).

- ``worker_main``: the standalone worker script (standard library only);
- ``command``: the bubblewrap (or bare) command line that starts one;
- ``process``: one worker, with deadlines and a bounded reader;
- ``pool``: ``WorkerPool``, N reused workers behind the port;
- ``probe``: whether bubblewrap works here, and why not;
- ``factory``: ``make_sandbox(settings)``, refusing to run unsandboxed unless allowed.
"""

from __future__ import annotations

from continuous_eval.adapters.sandbox.factory import limits_from, make_sandbox
from continuous_eval.adapters.sandbox.pool import WorkerPool
from continuous_eval.adapters.sandbox.probe import probe, sandbox_available

__all__ = ["WorkerPool", "limits_from", "make_sandbox", "probe", "sandbox_available"]

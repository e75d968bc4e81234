"""The composition root: what turns settings and a suite file into a running process.

- ``config``: settings and the suite file to the daemon's and the detector's
  configuration (pure);
- ``scanning``: load a suite file, validate and fingerprint its datasets before a run;
- ``plans``: targets, scorers and the judge for each run;
- ``alerts``: the alert channels, planner and dispatcher;
- ``container``: open the store and a daemon with everything it needs, or the
  store and its reader for commands that only read;
- ``database``: migrate the schema, or say where it is (``continuous-eval db``);
- ``logs``: logging from the settings;
- ``documents``: runs, results and decisions as the admin API's JSON, for ``--json``;
- ``detector``: the CI gate's decision and the backtest, with the configured policies;
- ``serve``: the process runtime of ``continuous-eval serve``.

The CLI and ``serve`` reach adapters and the service only through here (an
import contract in pyproject.toml holds the CLI to it); the service layer
sees the ports alone.
"""

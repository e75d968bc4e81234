"""The composition root: what turns settings and a suite file into a running process.

- ``config``: settings and the suite file to the daemon's and the detector's
  configuration (pure);
- ``scanning``: validate and fingerprint a suite's datasets before a run;
- ``plans``: targets, scorers and the judge for each run;
- ``alerts``: the alert channels, planner and dispatcher;
- ``container``: open the store and a daemon with everything it needs;
- ``serve``: the process runtime of ``continuous-eval serve``.

The CLI and ``serve`` reach adapters only through here; the service layer
sees the ports alone.
"""

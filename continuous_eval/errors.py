"""The exception hierarchy of continuous-eval.

Adapters translate library errors (SQLAlchemy, httpx, the anthropic SDK,
PyYAML) into these, so the service layer and the CLI handle one family:

    ContinuousEvalError
    ├── ConfigError          invalid settings, suite file or dataset (CLI exit 2)
    ├── StoreError           the database failed or refused an operation
    │   └── RunNotFound      no run with that id
    ├── TargetError          the system under test failed for one case
    └── ScorerError          a scorer failed for one case
        └── JudgeError       the LLM judge failed or answered something unparsable
"""

from __future__ import annotations


class ContinuousEvalError(Exception):
    """Root of every error continuous-eval raises on purpose."""


class ConfigError(ContinuousEvalError):
    """A config file, dataset or setting is invalid.

    The message always names the file, the location inside it (a key path
    such as ``suites.support.features.refunds.scorers[1].pattern`` or a line
    number) and the problem, so the user can fix it without a traceback.
    """

    def __init__(self, file: str, location: str | None, problem: str) -> None:
        self.file = file
        self.location = location
        self.problem = problem
        where = f"{file}: {location}" if location else file
        super().__init__(f"{where}: {problem}")


class StoreError(ContinuousEvalError):
    """The database failed or refused an operation."""


class RunNotFound(StoreError):
    """No run exists with the requested id."""


class TargetError(ContinuousEvalError):
    """The system under test failed for one case; the run goes on."""


class ScorerError(ContinuousEvalError):
    """A scorer failed for one case; the case is an error, never a zero."""


class JudgeError(ScorerError):
    """The LLM judge failed, or answered something that is not a valid score."""

"""The exception hierarchy of continuous-eval.

Adapters translate library errors (SQLAlchemy, httpx, the anthropic SDK,
PyYAML) into these, so the service layer and the CLI handle one family:

    ContinuousEvalError
    ├── ConfigError          invalid settings, suite file or dataset (CLI exit 2)
    ├── GateBusy             the suite is already running here (or, locked, in another replica)
    ├── StoreError           the database failed or refused an operation
    │   ├── RunNotFound      no run with that id
    │   ├── DuplicateRun     the id, client key or scheduled slot is taken
    │   ├── RunFinished      the run is over and takes no more writes
    │   └── LeaseLost        this worker no longer owns the run (fenced off)
    └── CaseError            one case failed; ``refusal`` when a provider refused it
        ├── TargetError      the system under test failed for one case
        └── ScorerError      a scorer failed for one case
            └── JudgeError   the LLM judge failed or answered something unparsable
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


class ContinuousEvalError(Exception):
    """Root of every error continuous-eval raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, dataset or setting, and where it is."""

    file: str
    """The file (or ``environment`` for a setting)."""
    location: str | None
    """A key path such as ``suites.support.features.refunds.scorers[1].pattern``,
    a line number, or an environment variable's name."""
    problem: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}" if self.location else self.file
        return f"{where}: {self.problem}"


class ConfigError(ContinuousEvalError):
    """A config file, dataset or setting is invalid.

    Each problem names the file, the location inside it (a key path such as
    ``suites.support.features.refunds.scorers[1].pattern`` or a line number)
    and the problem, so the user can fix it without a traceback. One error
    carries every problem found in one pass, one per line of its message,
    so a user fixes them all at once instead of one per attempt; ``file``,
    ``location`` and ``problem`` are the first one's.
    """

    def __init__(
        self, file: str, location: str | None, problem: str, *, more: Sequence[ConfigProblem] = ()
    ) -> None:
        self.problems: tuple[ConfigProblem, ...] = (ConfigProblem(file, location, problem), *more)
        """Every problem, in the order found."""
        self.file = file
        self.location = location
        self.problem = problem
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def of(cls, problems: Sequence[ConfigProblem]) -> ConfigError:
        """Build one error from several problems (at least one)."""
        first, *rest = problems
        return cls(first.file, first.location, first.problem, more=rest)

    @classmethod
    def combine(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """Merge several errors into one that lists all their problems."""
        return cls.of([p for e in errors for p in e.problems])


class GateBusy(ContinuousEvalError):
    """The suite is already running in this process (or, for a lock, in another replica)."""

    def __init__(self, message: str, *, elsewhere: bool = False) -> None:
        super().__init__(message)
        self.elsewhere = elsewhere
        """True when another process holds the suite's lock."""


class StoreError(ContinuousEvalError):
    """The database failed or refused an operation."""


class RunNotFound(StoreError):
    """No run exists with the requested id."""


Conflict = Literal["id", "idempotency_key", "scheduled_for"]
"""Which unique rule a new run broke."""


class DuplicateRun(StoreError):
    """A run with the same id, client idempotency key or (suite, scheduled slot) exists.

    For the scheduler this means another replica already claimed the slot (a
    no-op); for the API it means the client retried, and ``existing_id`` lets
    it compare the stored run's spec with the new one.
    """

    def __init__(self, conflict: Conflict, existing_id: str, message: str) -> None:
        self.conflict: Conflict = conflict
        """The unique rule that was broken."""
        self.existing_id = existing_id
        """The id of the run already holding the key."""
        super().__init__(message)


class LeaseLost(StoreError):
    """This worker's (attempt, owner) no longer owns the run: write nothing more.

    Raised to a worker that stalled past its lease and was taken over, or
    whose run an admin cancelled; the worker stands down quietly.
    """


class RunFinished(StoreError):
    """The run already has a terminal status: it takes no more results or status changes.

    This is how a stale worker, or a second finish, is stopped from
    overwriting a run someone else already ended.
    """

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        """The terminal status the run already has."""
        super().__init__(f"run {run_id!r} is already {status}; it cannot change any more")


REFUSED_STATUSES = frozenset({400, 401, 403, 404})
"""Provider answers that no retry fixes: a bad request, a bad or revoked key, no access,
no such model. Every case would get the same, so the run's breaker counts them."""


class CaseError(ContinuousEvalError):
    """A failure of one case (its target or one of its scorers); the run goes on.

    ``refusal`` is set when a provider refused the request itself
    (``REFUSED_STATUSES``), e.g. ``"401 authentication_error"``: the kind
    of failure that repeats for every case, which the runner's circuit
    breaker counts to stop a run that cannot evaluate anything.
    """

    def __init__(self, message: str, *, refusal: str | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal
        """The provider's refusal (status and error class), or None."""


class TargetError(CaseError):
    """The system under test failed for one case; the run goes on."""


class ScorerError(CaseError):
    """A scorer failed for one case; the case is an error, never a zero."""


class JudgeError(ScorerError):
    """The LLM judge failed, or answered something that is not a valid score."""


class EvalSetExists(StoreError):
    """An eval set of that name exists already."""


class SandboxUnavailable(ContinuousEvalError):
    """Learned evaluator code would run without isolation, and the operator has not allowed it."""


# --- learned evaluators (issue 14) --------------------------------------------


class EvaluatorAuthorError(ContinuousEvalError):
    """The model that writes evaluators failed, or answered with no usable code."""


class EvaluatorGenerationError(ContinuousEvalError):
    """A generation job could not make a version: too few labels, or code that fails the check.

    ``problems`` lists the static check's findings when that is the reason.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
        """The code check's problems, one sentence each with its line."""


# --- jobs (issue 14: jobs stored in the database) ---------------------------


class JobNotFound(StoreError):
    """No job exists with the requested id."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id}")


class JobFinished(StoreError):
    """The job is over (succeeded, failed or cancelled): it cannot be cancelled or changed."""

    def __init__(self, job_id: int, status: str) -> None:
        self.job_id = job_id
        self.status = status
        """The terminal status the job already has."""
        super().__init__(f"job {job_id} is already {status}")


class JobLeaseLost(StoreError):
    """This runner no longer owns the job (its lease expired and it was taken over)."""

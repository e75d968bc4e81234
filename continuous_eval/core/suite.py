"""Suite configuration models: suites, features, datasets, targets and scorers.

These models validate the *shape* of a suite file. Anything that needs I/O
(reading dataset files, importing Python callables) is checked by the loader in
``continuous_eval.adapters.suite_files``; everything here is pure, so a config
can be validated in a unit test from a dict.

The YAML layout, with suites and features keyed by name so that error paths
read naturally (``suites.support.features.refunds.scorers[1].pattern``)::

    suites:
      support:
        concurrency: 8
        features:
          refunds:
            dataset: {path: data/refunds.jsonl}
            target: {type: python, callable: "my_app.bot:answer"}
            scorers:
              - {type: contains, value: "refund"}
              - {type: llm_judge, rubric: "Is the answer polite and correct?"}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    field_validator,
    model_validator,
)

from continuous_eval.core.evaluators import parse_ref
from continuous_eval.core.trajectory import Step, ToolCall

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
"""Suite, feature and scorer names: safe in URLs, metric labels and file names."""

CALLABLE_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
"""A Python import path with the attribute after a colon: ``package.module:function``."""


class _Strict(BaseModel):
    """Base for config models: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Case(_Strict):
    """One dataset row: the input given to the target and what a scorer may compare to."""

    id: str = Field(min_length=1, max_length=200, coerce_numbers_to_str=True)
    """Stable id; pairs the same case across runs for regression checks.
    Defaults to the case's 1-based position (inline index, JSONL line, CSV data row)."""
    input: JsonValue
    """Given to the target: a string or any JSON value."""
    expected: JsonValue = None
    """The reference answer deterministic scorers compare against, if any."""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    """Free-form tags, stored with nothing else and shown in reports."""
    output: str | None = None
    """A frozen output, produced once and scored as is: every case of a feature's
    ``anchors`` has one, and so does every case answered by a ``frozen`` target."""
    human_score: float | None = None
    """A person's score of the frozen output (anchors), kept with the case so the
    judge can be checked against people."""
    expected_trajectory: tuple[ToolCall, ...] | None = None
    """The tool calls a trajectory scorer expects, in order: ``[{name, arguments}]``."""
    steps: tuple[Step, ...] = ()
    """The trajectory of the answer being scored: recorded with the interaction
    (``target: recorded``), or streamed by an agent target (the runner fills it
    in before the scorers see the case). Not written in dataset files."""
    trace_id: str | None = None
    """The recorded interaction this case came from (online features), kept with
    its results so the API and the dashboard link back to it."""

    @field_validator("input")
    @classmethod
    def _input_present(cls, value: JsonValue) -> JsonValue:
        if value is None or value == "":
            raise ValueError("input must not be empty")
        return value


class Dataset(_Strict):
    """Where a feature's cases come from: inline, or a JSONL/CSV file next to the config."""

    cases: list[Case] | None = None
    """Inline cases, for small suites."""
    path: str | None = None
    """A JSONL or CSV file, relative to the config file; streamed, never loaded whole."""
    format: Literal["jsonl", "csv"] | None = None
    """The file's format; inferred from the extension when omitted."""

    @model_validator(mode="before")
    @classmethod
    def _default_ids(cls, data: Any) -> Any:
        # Inline cases without an id are numbered by position (1-based), the
        # same rule the file loader uses for JSONL lines and CSV rows.
        if isinstance(data, dict) and isinstance(data.get("cases"), list):
            cases = [
                {**case, "id": str(index)} if isinstance(case, dict) and "id" not in case else case
                for index, case in enumerate(data["cases"], start=1)
            ]
            data = {**data, "cases": cases}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        if (self.cases is None) == (self.path is None):
            raise ValueError("give exactly one of 'cases' (inline) or 'path' (a JSONL or CSV file)")
        if self.cases is not None:
            seen: set[str] = set()
            for case in self.cases:
                if case.id in seen:
                    raise ValueError(f"duplicate case id {case.id!r}")
                seen.add(case.id)
        if self.path is not None and self.format is None:
            lower = self.path.lower()
            if not (lower.endswith(".jsonl") or lower.endswith(".csv")):
                raise ValueError(
                    "cannot infer the format of 'path': use .jsonl or .csv, or set 'format'"
                )
        return self

    @property
    def file_format(self) -> Literal["jsonl", "csv"]:
        """The dataset file's format, explicit or inferred from the extension."""
        if self.format is not None:
            return self.format
        return "csv" if (self.path or "").lower().endswith(".csv") else "jsonl"


class TraceSample(_Strict):
    """How many of a window's interactions an online run scores."""

    max: int = Field(default=200, ge=1, le=100_000)
    """At most this many (the lowest sample keys of the window)."""
    rate: float = Field(default=1.0, gt=0, le=1)
    """Only traces whose sample key falls in this share of the key space."""


class TracesDataset(_Strict):
    """Cases taken from recorded production traffic: an online feature's dataset.

    The window ends at the run's scheduled time (a manual run: its creation),
    so a retry or a takeover on another replica samples the same interactions.
    """

    source: Literal["traces"]
    feature: str = Field(pattern=NAME_PATTERN)
    """The ingested feature (see ``trace_feature_attributes``) to sample."""
    window_hours: float = Field(default=24.0, gt=0, le=24 * 366)
    sample: TraceSample = Field(default_factory=TraceSample)


def _dataset_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "traces" if "source" in value else "file"
    return "traces" if isinstance(value, TracesDataset) else "file"


AnyDataset = Annotated[
    Annotated[Dataset, Tag("file")] | Annotated[TracesDataset, Tag("traces")],
    Discriminator(_dataset_kind),
]
"""A feature's dataset: inline or a file (``Dataset``), or recorded traffic."""


# --------------------------------------------------------------------- targets


class PythonTarget(_Strict):
    """A Python callable, sync or async, called with the case input; returns the output."""

    type: Literal["python"]
    callable: str = Field(pattern=CALLABLE_PATTERN)
    """Import path, ``package.module:function``."""


def _default_http_body() -> JsonValue:
    return {"input": "{{input}}"}


class HttpTarget(_Strict):
    """A JSON POST to an HTTP endpoint; the answer is read from a field of the response."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    body: JsonValue = Field(default_factory=_default_http_body)
    """JSON body template. A string that is exactly ``{{input}}`` is replaced by the
    input value (keeping its JSON type); ``{{input}}``, ``{{input.KEY}}`` and
    ``{{case_id}}`` inside longer strings are replaced by their text."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers; ``${ENV_NAME}`` is replaced from the environment at run time."""
    response_field: str = "output"
    """Dotted path into the JSON response, e.g. ``choices.0.message.content``."""
    timeout_s: float = Field(default=30.0, gt=0, le=600)


class AnthropicTarget(_Strict):
    """A Claude model called through the Messages API."""

    type: Literal["anthropic"]
    model: str = Field(min_length=1)
    system: str | None = None
    prompt_template: str = "{{input}}"
    """The user message; placeholders as in the HTTP body template."""
    max_tokens: int = Field(default=1024, ge=1, le=64000)
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    """Sent only when set here: current Messages API models choose their own sampling."""


class FrozenTarget(_Strict):
    """Answers each case with its stored ``output``: outputs produced elsewhere, or anchors."""

    type: Literal["frozen"]


class RecordedTarget(_Strict):
    """Scores what production answered: each case's recorded output and steps; calls nothing.

    Written ``target: recorded`` in a suite file; needs a ``source: traces`` dataset.
    """

    type: Literal["recorded"]


class AgentTarget(_Strict):
    """An agent endpoint that streams its steps over Server-Sent Events, then its answer.

    The case is POSTed as JSON like the ``http`` target's body; the answer is a
    ``text/event-stream`` of ``step`` events (one ``Step`` each) and one
    ``final`` event (see ``adapters.targets.agent_target`` for the protocol).
    """

    type: Literal["agent"]
    url: str = Field(pattern=r"^https?://")
    body: JsonValue = Field(default_factory=_default_http_body)
    """JSON body template, as for the ``http`` target."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers; ``${ENV_NAME}`` is replaced from the environment at run time."""
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    """Longest the whole answer may take, from the request to the ``final`` event."""
    idle_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """Longest the stream may stay silent (no event, no comment) before the case errors."""
    max_steps: int = Field(default=1000, ge=1, le=100_000)
    """More steps than this and the case errors: a looping agent must not fill the store."""


Target = Annotated[
    PythonTarget | HttpTarget | AnthropicTarget | FrozenTarget | RecordedTarget | AgentTarget,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------- scorers


class _ScorerBase(_Strict):
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    """Name in results and reports; defaults to the scorer type."""
    regression_drop: float | None = Field(default=None, gt=0)
    """The minimum effect: the smallest paired fall that alerts for this scorer
    (default 0.2 on a 1-5 judge, 0.05 on a pass rate); not part of the
    fingerprint, so tuning it keeps the baseline."""


class ExactScorer(_ScorerBase):
    """1 when the output equals the case's ``expected``, else 0."""

    type: Literal["exact"]
    strip: bool = True
    case_sensitive: bool = True


class ContainsScorer(_ScorerBase):
    """1 when the output contains every given value (or ``expected`` when none is given)."""

    type: Literal["contains"]
    value: str | None = None
    values: list[str] | None = None
    case_sensitive: bool = False


class RegexScorer(_ScorerBase):
    """1 when the pattern matches the output (search, or full match when asked)."""

    type: Literal["regex"]
    pattern: str
    fullmatch: bool = False
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from exc
        return value


class JsonScorer(_ScorerBase):
    """1 when the output is valid JSON (and, with ``schema``, valid against that JSON Schema)."""

    type: Literal["json"]
    json_schema: dict[str, JsonValue] | None = Field(default=None, alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if value is not None:
            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
        return value


class NumericScorer(_ScorerBase):
    """1 when the output, read as a number, is within ``tolerance`` of ``expected``."""

    type: Literal["numeric"]
    tolerance: float = Field(default=0.0, ge=0)
    """Absolute tolerance."""
    relative: float = Field(default=0.0, ge=0)
    """Relative tolerance, as a fraction of ``expected``; the larger of the two applies."""


class PythonScorer(_ScorerBase):
    """A Python callable ``(output, case) -> float | bool | dict`` (sync or async)."""

    type: Literal["python"]
    callable: str = Field(pattern=CALLABLE_PATTERN)


class LlmJudgeScorer(_ScorerBase):
    """A Claude model grading the output from 1 to 5 against a rubric."""

    type: Literal["llm_judge"]
    rubric: str = Field(min_length=1)
    model: str | None = None
    """Defaults to the ``judge_model`` setting."""
    max_tokens: int = Field(default=512, ge=64, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    """Sent only when set here: current Messages API models choose their own sampling."""
    pass_threshold: int = Field(default=4, ge=1, le=5)
    """A score at or above this counts as passed."""
    trajectory: bool = False
    """Show the judge the answer's whole trajectory (each tool call with its
    arguments and result, and the messages, in order) beside the output: for
    rubrics about how an agent got to its answer."""


class LearnedScorer(_ScorerBase):
    """A learned evaluator, by name and version (``evaluator: tone@3``), run in the sandbox.

    The version must be promoted; its code (stored with the evaluator, not in
    the suite file) returns a bool, a number or a dict as a python scorer does.
    """

    type: Literal["learned"]
    evaluator: str
    """``NAME@VERSION``: a fixed version, so a new generation never changes a suite silently."""
    pass_threshold: float = 0.5
    """For a number returned without ``passed``: a score at or above this counts as passed."""

    @field_validator("evaluator")
    @classmethod
    def _is_a_ref(cls, value: str) -> str:
        parse_ref(value)  # raises ValueError naming the expected form
        return value

    @property
    def ref(self) -> tuple[str, int]:
        """The evaluator's name and version."""
        return parse_ref(self.evaluator)


TrajectoryMatch = Literal["exact", "in_order", "any_order", "precision", "recall", "f1"]
"""How a trajectory scorer compares the answered tool calls with the expected ones."""

ArgumentMatch = Literal["ignore", "keys", "exact"]
"""When an answered call matches an expected one of the same name: ``ignore``
(names only), ``keys`` (the expected arguments are present with equal values;
extra ones allowed) or ``exact`` (equal arguments)."""


class TrajectoryScorer(_ScorerBase):
    """The answer's tool calls against the case's ``expected_trajectory``.

    ``exact``, ``in_order`` and ``any_order`` score 1 or 0; ``precision``,
    ``recall`` and ``f1`` score the share of matched calls, from 0 to 1.
    """

    type: Literal["trajectory"]
    match: TrajectoryMatch = "in_order"
    arguments: ArgumentMatch = "keys"
    pass_threshold: float = Field(default=1.0, ge=0.0, le=1.0)
    """For ``precision``, ``recall`` and ``f1``: a score at or above this counts as passed."""


Scorer = Annotated[
    ExactScorer
    | ContainsScorer
    | RegexScorer
    | JsonScorer
    | NumericScorer
    | PythonScorer
    | LlmJudgeScorer
    | TrajectoryScorer
    | LearnedScorer,
    Field(discriminator="type"),
]


def scorer_name(scorer: Scorer) -> str:
    """Return the name a scorer's results are stored under."""
    return scorer.name or scorer.type


ANCHOR_SUFFIX = "@anchors"
"""A feature's anchors run as a feature of their own named ``<feature>@anchors``
(``@`` is in no user's name, so it cannot collide)."""


LABELS_SUFFIX = "@labels"
"""A feature's calibration runs as a feature of its own named ``<feature>@labels``:
its judges re-score an eval set's labelled cases (never a regression key)."""


class Calibration(_Strict):
    """Check a feature's judges against people: each run scores an eval set's labelled cases.

    Written ``calibration: {eval_set: NAME, min_kappa: 0.6, min_cases: 20}``.
    Without ``min_kappa`` the agreement is measured and stored, never alerted on.
    """

    eval_set: str = Field(pattern=NAME_PATTERN)
    """The eval set (``continuous-eval eval-sets``) whose labelled cases are judged."""
    min_kappa: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Below this Cohen's kappa (quadratic-weighted on 1-5 sets) people are alerted once."""
    min_cases: int = Field(default=20, ge=2, le=100_000)
    """Fewer labelled cases with a consensus than this and no alert is raised: kappa on
    a handful of cases swings by chance."""


class Feature(_Strict):
    """One LLM feature under test: its cases, the system that answers them, and the scorers."""

    dataset: AnyDataset
    target: Target
    scorers: list[Scorer] = Field(min_length=1)
    anchors: Dataset | None = None
    """Judge canaries: frozen outputs (each case has ``output``, optionally
    ``human_score``) that every run re-judges with the feature's judges. A shift
    in their scores is the judge changing, not the product."""
    calibration: Calibration | None = None
    """Judge calibration: the feature's judges re-score an eval set's labelled
    cases every run (``<feature>@labels``) and their agreement with people is stored."""

    @model_validator(mode="before")
    @classmethod
    def _recorded_shorthand(cls, data: Any) -> Any:
        # ``target: recorded`` is the short form of ``target: {type: recorded}``.
        if isinstance(data, dict) and data.get("target") == "recorded":
            data = {**data, "target": {"type": "recorded"}}
        return data

    @model_validator(mode="after")
    def _recorded_needs_traces(self) -> Feature:
        if isinstance(self.target, RecordedTarget) and not isinstance(self.dataset, TracesDataset):
            raise ValueError(
                "target 'recorded' scores recorded traffic: use a 'source: traces' dataset"
            )
        return self

    @property
    def online(self) -> bool:
        """Whether the cases come from recorded traffic (a new sample every run)."""
        return isinstance(self.dataset, TracesDataset)

    @model_validator(mode="after")
    def _anchors_need_a_judge(self) -> Feature:
        if self.anchors is not None and not any(
            isinstance(s, LlmJudgeScorer) for s in self.scorers
        ):
            raise ValueError("anchors re-judge frozen outputs: the feature needs an llm_judge")
        return self

    @model_validator(mode="after")
    def _calibration_needs_a_judge(self) -> Feature:
        if self.calibration is not None and not self.judges():
            raise ValueError(
                "calibration checks the feature's llm_judge against people's labels: "
                "the feature needs an llm_judge"
            )
        return self

    def judges(self) -> list[LlmJudgeScorer]:
        """The feature's LLM judges, in file order."""
        return [s for s in self.scorers if isinstance(s, LlmJudgeScorer)]

    def labels_feature(self, cases: list[Case]) -> Feature | None:
        """The feature that judges an eval set's labelled ``cases`` (each with its ``output``)."""
        if self.calibration is None:
            return None
        return Feature(
            dataset=Dataset(cases=cases),
            target=FrozenTarget(type="frozen"),
            scorers=list(self.judges()),
        )

    def anchor_feature(self) -> Feature | None:
        """The feature that runs the anchors: frozen outputs, the same judges."""
        if self.anchors is None:
            return None
        judges = [s for s in self.scorers if isinstance(s, LlmJudgeScorer)]
        return Feature(dataset=self.anchors, target=FrozenTarget(type="frozen"), scorers=judges)

    @model_validator(mode="after")
    def _unique_scorer_names(self) -> Feature:
        names = [scorer_name(s) for s in self.scorers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scorer names must be unique; give 'name' to tell apart: {dupes}")
        return self


class SuiteSchedule(_Strict):
    """Per-suite overrides of the daemon's schedule settings; unset keys use the settings."""

    enabled: bool | None = None
    interval_hours: float | None = Field(default=None, gt=0)
    watchdog_s: float | None = Field(default=None, gt=0)
    """Longest a run may take before the watchdog ends it ``failed``."""
    max_attempts: int | None = Field(default=None, ge=1, le=100)


class Suite(_Strict):
    """A named group of features that runs, is scheduled and is compared as one."""

    schedule: SuiteSchedule = Field(default_factory=SuiteSchedule)

    features: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Feature] = Field(min_length=1)
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    """Cases of this suite in flight at once; defaults to the ``suite_concurrency`` setting."""
    description: str | None = None


class SuiteFile(_Strict):
    """The whole suite file."""

    suites: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Suite] = Field(min_length=1)


def parse_suite_file(data: Any) -> SuiteFile:
    """Validate parsed YAML; raises ``pydantic.ValidationError`` with key paths."""
    return SuiteFile.model_validate(data)


def format_location(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into ``suites.x.features.y.scorers[1].pattern``.

    Discriminated-union tags (the scorer or target type pydantic inserts into
    the path) are dropped, since they are not keys the user wrote.
    """
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        if item == "[key]":
            continue  # pydantic marks an invalid mapping key; the key itself precedes it
        is_tag = item in _UNION_TAGS and (
            isinstance(previous, int) or previous in ("target", "dataset", "anchors")
        )
        previous = item
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif is_tag:
            continue
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)


_UNION_TAGS = frozenset(
    {
        "python",
        "http",
        "anthropic",
        "frozen",
        "recorded",
        "agent",
        "exact",
        "contains",
        "regex",
        "json",
        "numeric",
        "llm_judge",
        "trajectory",
        "learned",
        "file",
        "traces",
    }
)

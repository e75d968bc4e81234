"""What Claude is asked to write an evaluator from, and how its code is judged afterwards.

Pure. Three steps of a generation share these rules, so they live together:

- the *split*: labelled cases go to training (shown to the model) or held
  out (used only to measure it), by a hash of the case id and a seed, so a
  re-run with the same seed makes the same split and a new case never moves
  the others; stratified by pass/fail so both splits hold both kinds;
- the *prompt*: a system message with the contract of ``score(output, case)``
  and a user message with positive and negative training examples, capped in
  size so a large eval set cannot blow the context window;
- the *metrics*: agreement of what the code returned on the held-out cases
  with the people's consensus.

What counts as a pass:

- A label: on a ``pass_fail`` set the consensus 1.0; on a ``1-5`` set a
  consensus of 4 or 5 (``PASS_RATING``): "good" is what people rated good.
- What the code returns: ``True``; a number >= 0.5 (so a 0-1 score, not a
  1-5 rating, is expected); a dict with a bool ``passed``, else a number
  ``score`` read as above. Anything else is an invalid answer, counted as a
  disagreement like an error.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue

from continuous_eval.core.evaluators import Contradiction, EvaluatorMetrics
from continuous_eval.core.labels import EvalCase, LabelledCase, LabelScale, consensus
from continuous_eval.core.sandboxing import SandboxOutcome

GENERATE_JOB_KIND: Final = "generate_evaluator"
"""The job kind of a generation: what the API enqueues and the runner routes to the handler."""

PASS_RATING: Final = 4.0
"""On a 1-5 set, the lowest consensus rating that counts as a pass."""

DEFAULT_HELD_OUT: Final = 0.3
"""Share of each label's cases held out: 70/30."""

MAX_EXAMPLES: Final = 40
"""Most training examples shown, half positive and half negative where possible."""

MAX_FIELD_CHARS: Final = 1_500
"""Longest input, output or comment shown; longer ones are cut with a marker."""

MAX_EXAMPLES_CHARS: Final = 60_000
"""Budget of all examples together (about 15k tokens); examples past it are left out."""

WRITE_EVALUATOR_TOOL_NAME: Final = "write_evaluator"

WRITE_EVALUATOR_TOOL: Final[dict[str, JsonValue]] = {
    "name": WRITE_EVALUATOR_TOOL_NAME,
    "description": (
        "Submit the Python source of the evaluator: a module defining "
        "score(output, case), and a short explanation of the rule it applies."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "description": "Python source defining a top-level def score(output, case).",
            },
            "explanation": {
                "type": "string",
                "description": "What the function checks, in a few sentences.",
            },
        },
        "required": ["code", "explanation"],
    },
}
"""The one tool the model is forced to call; its input is the answer."""

SYSTEM_PROMPT: Final = """\
You write evaluators: small, deterministic Python functions that decide whether an \
output of an AI system is acceptable, agreeing with how people labelled examples.

Write a module defining exactly:

    def score(output, case):

- `output` is the output text (str) being judged.
- `case` is a dict with "case_id", "input" (what the system was asked), "expected" \
(a reference answer, or null) and "metadata" (a dict).
- Return True when the output passes and False when it fails; or a float from 0 to \
1 (0.5 and above passes); or a dict {"passed": bool, "score": float}.

Rules the code is checked against before it runs; code that breaks one is rejected:
- Import only: re, json, math, statistics, string, difflib, unicodedata, collections, \
itertools, functools, typing, dataclasses, datetime, decimal, fractions.
- No files, processes, network, eval/exec/compile, getattr/setattr, globals, \
dunder attributes (like __class__) or private attributes (like _x) of modules.
- No global state; at most a few hundred lines.
- It runs with tight time and memory limits: keep it simple and fast.

Generalise from the examples to the rule people applied; do not hard-code case ids \
or exact outputs. Answer by calling the write_evaluator tool once."""


@dataclass(frozen=True, slots=True)
class AuthoredCode:
    """What the model answered through ``write_evaluator``."""

    code: str
    explanation: str
    model: str
    """The model asked (what is stored with the version)."""
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ReferenceCase:
    """A labelled case with its people's consensus, as the split and the metrics use it."""

    case: EvalCase
    reference: float
    """The consensus label (1.0/0.0, or 1-5)."""
    passed: bool
    """Whether the consensus is a pass (see ``PASS_RATING``)."""
    comments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Split:
    """Training cases (shown to the model) and held-out cases (used to measure its code)."""

    train: tuple[ReferenceCase, ...]
    held_out: tuple[ReferenceCase, ...]
    dropped: int = 0
    """Cases left out because people's labels tie (no consensus)."""


@dataclass(frozen=True, slots=True)
class EvaluatorPrompt:
    """The messages sent to the model."""

    system: str
    user: str

    def as_text(self) -> str:
        """Both messages in one string, as stored with the evaluator."""
        return f"[system]\n{self.system}\n\n[user]\n{self.user}"


def label_passes(scale: LabelScale, reference: float) -> bool:
    """Whether a consensus label is a pass on ``scale``."""
    return reference >= 0.5 if scale == "pass_fail" else reference >= PASS_RATING


def reference_cases(
    cases: Sequence[LabelledCase], scale: LabelScale
) -> tuple[list[ReferenceCase], int]:
    """Cases with a consensus, and how many had none (a tie)."""
    usable: list[ReferenceCase] = []
    dropped = 0
    for item in cases:
        value = consensus(item.labels, scale)
        if value is None:
            dropped += 1
            continue
        comments = tuple(
            f"{label.label.author}: {label.label.comment}"
            for label in item.labels
            if label.label.comment
        )
        usable.append(ReferenceCase(item.case, value, label_passes(scale, value), comments))
    return usable, dropped


def split_cases(
    cases: Sequence[LabelledCase],
    scale: LabelScale,
    seed: int = 0,
    held_out: float = DEFAULT_HELD_OUT,
) -> Split:
    """Split labelled cases into training and held-out, deterministically by ``seed``.

    Within each label (pass, fail) cases are ordered by a sha256 of the seed
    and case id and the first ``round(n * held_out)`` are held out; with two
    or more cases at least one is held out and at least one trains.
    """
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be between 0 and 1, not {held_out}")
    usable, dropped = reference_cases(cases, scale)
    train: list[ReferenceCase] = []
    test: list[ReferenceCase] = []
    for passed in (True, False):
        group = sorted(
            (c for c in usable if c.passed == passed), key=lambda c: _rank(seed, c.case.case_id)
        )
        count = round(len(group) * held_out)
        test.extend(group[:count])
        train.extend(group[count:])
    if not test and len(train) >= 2:
        ranked = sorted(train, key=lambda c: _rank(seed, c.case.case_id))
        test.append(ranked[0])
        train.remove(ranked[0])
    if not train and len(test) >= 2:
        ranked = sorted(test, key=lambda c: _rank(seed, c.case.case_id))
        train.append(ranked[-1])
        test.remove(ranked[-1])
    by_id = _by_case_id
    return Split(tuple(sorted(train, key=by_id)), tuple(sorted(test, key=by_id)), dropped)


def _rank(seed: int, case_id: str) -> str:
    return hashlib.sha256(f"{seed}\0{case_id}".encode()).hexdigest()


def _by_case_id(case: ReferenceCase) -> str:
    return case.case.case_id


def case_mapping(case: EvalCase) -> dict[str, JsonValue]:
    """The ``case`` argument ``score(output, case)`` gets."""
    return {
        "case_id": case.case_id,
        "input": case.input,
        "expected": case.expected,
        "metadata": dict(case.metadata),
    }


def build_prompt(
    eval_set: str, scale: LabelScale, train: Sequence[ReferenceCase]
) -> EvaluatorPrompt:
    """The system and user messages asking for an evaluator from ``train``'s examples."""
    positives = [c for c in train if c.passed]
    negatives = [c for c in train if not c.passed]
    half = MAX_EXAMPLES // 2
    shown_pos = positives[: max(half, MAX_EXAMPLES - len(negatives))]
    shown_neg = negatives[: MAX_EXAMPLES - len(shown_pos)]
    scale_text = (
        "pass (1) or fail (0)"
        if scale == "pass_fail"
        else f"a rating from 1 to 5, where {PASS_RATING:g} and above is a pass"
    )
    # Alternating, so a budget that runs out leaves both kinds shown.
    candidates = [c for pair in itertools.zip_longest(shown_pos, shown_neg) for c in pair if c]
    examples: list[str] = []
    used = passed = 0
    for example in candidates:
        text = _example_text(len(examples) + 1, example)
        if examples and used + len(text) > MAX_EXAMPLES_CHARS:
            break
        examples.append(text)
        used += len(text)
        passed += example.passed
    failed = len(examples) - passed
    shown_all = len(examples) == len(train)
    parts = [
        f"Eval set {eval_set!r}: people labelled each output {scale_text}.",
        f"Here are {passed} outputs people passed and {failed} they failed"
        + ("." if shown_all else f" (of {len(positives)} and {len(negatives)})."),
        *examples,
    ]
    parts.append("Write score(output, case) so that it passes and fails outputs as people did.")
    return EvaluatorPrompt(SYSTEM_PROMPT, "\n\n".join(parts))


def _example_text(number: int, example: ReferenceCase) -> str:
    verdict = "PASS" if example.passed else "FAIL"
    lines = [
        f"## Example {number}: {verdict} (label {example.reference:g})",
        f"case: {_cut(json.dumps(case_mapping(example.case), sort_keys=True, default=str))}",
        f"output: {_cut(example.case.output)}",
    ]
    lines.extend(f"comment: {_cut(comment)}" for comment in example.comments)
    return "\n".join(lines)


def _cut(text: str) -> str:
    if len(text) <= MAX_FIELD_CHARS:
        return text
    return text[: MAX_FIELD_CHARS - 20] + f" [... {len(text) - MAX_FIELD_CHARS + 20} chars cut]"


def verdict_of(value: JsonValue) -> bool | None:
    """Whether a returned value is a pass; none when it is no score at all."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value) >= 0.5
    if isinstance(value, Mapping):
        passed = value.get("passed")
        if isinstance(passed, bool):
            return passed
        score = value.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            return float(score) >= 0.5
    return None


def held_out_metrics(
    pairs: Sequence[tuple[ReferenceCase, SandboxOutcome]], train_cases: int
) -> EvaluatorMetrics:
    """Agreement of the code's outcomes on held-out cases with the people's labels.

    An errored call or an invalid answer is a disagreement, counted in
    ``errors``, and never a pass for precision and recall.
    """
    agree = errors = passed_by_code = true_pass = people_pass = 0
    contradictions: list[Contradiction] = []
    for reference, outcome in pairs:
        verdict = verdict_of(outcome.value) if outcome.ok else None
        if verdict is None:
            errors += 1
        people_pass += reference.passed
        passed_by_code += verdict is True
        true_pass += verdict is True and reference.passed
        if verdict is not None and verdict == reference.passed:
            agree += 1
            continue
        shown: JsonValue = outcome.value if verdict is not None else _error_text(outcome)
        contradictions.append(Contradiction(reference.case.case_id, reference.reference, shown))
    total = len(pairs)
    return EvaluatorMetrics(
        accuracy=agree / total if total else 0.0,
        precision=true_pass / passed_by_code if passed_by_code else None,
        recall=true_pass / people_pass if people_pass else None,
        train_cases=train_cases,
        test_cases=total,
        errors=errors,
        contradictions=tuple(contradictions),
    )


def _error_text(outcome: SandboxOutcome) -> str:
    if outcome.ok:
        return f"invalid: returned {json.dumps(outcome.value, default=str)[:200]}"
    return f"{outcome.reason}: {outcome.error or 'no message'}"

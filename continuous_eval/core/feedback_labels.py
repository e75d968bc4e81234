"""Production feedback as labelled cases: which feedback fits an eval set, and how.

Pure mapping for ``service.feedback_fill``. A piece of feedback on a trace of
the set's feature becomes a case (its id is the trace id; input and output
are the span's the feedback names, else the trace's root interaction's) and
a label by the feedback's author, with its comment. The value comes from the
score when it is on the set's scale (0/1 for pass/fail, an integer 1-5),
else from the label text (pass, good, thumbs_up, positive / fail, bad,
thumbs_down, negative on pass/fail; "1".."5" on 1-5). Feedback that fits
neither is skipped and counted, never guessed at: a 0.7 is not a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from continuous_eval.core.interactions import Feedback, StoredInteraction
from continuous_eval.core.labels import EvalCase, LabelScale, NewLabel, valid_label_value

POSITIVE = frozenset({"pass", "good", "thumbs_up", "positive", "true", "yes"})
NEGATIVE = frozenset({"fail", "bad", "thumbs_down", "negative", "false", "no"})


@dataclass(frozen=True, slots=True)
class FeedbackLabel:
    """One piece of feedback as a case and its label."""

    case: EvalCase
    label: NewLabel


def feedback_value(feedback: Feedback, scale: LabelScale) -> float | None:
    """The label value of the feedback on ``scale``, or None when it does not fit."""
    score = feedback.feedback.score
    if score is not None and valid_label_value(scale, float(score)):
        return float(score)
    text = (feedback.feedback.label or "").strip().lower().replace("-", "_").replace(" ", "_")
    if not text:
        return None
    if scale == "pass_fail":
        if text in POSITIVE:
            return 1.0
        if text in NEGATIVE:
            return 0.0
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if valid_label_value(scale, value) else None


def judged_interaction(
    feedback: Feedback, trace: Sequence[StoredInteraction], feature: str
) -> StoredInteraction | None:
    """The interaction the feedback judges, if it is of ``feature``: the span it names,
    else the trace's first root interaction of the feature (else its first of it)."""
    mine = [row for row in trace if row.interaction.feature == feature]
    span = feedback.feedback.span_id
    if span is not None:
        return next((row for row in mine if row.interaction.span_id == span), None)
    spans = {row.interaction.span_id for row in trace}
    roots = [row for row in mine if row.interaction.parent_span_id not in spans]
    first = roots or mine
    return first[0] if first else None


def feedback_label(
    feedback: Feedback, judged: StoredInteraction, scale: LabelScale
) -> FeedbackLabel | None:
    """The case and label the feedback gives, or None when its value is off the scale."""
    value = feedback_value(feedback, scale)
    if value is None:
        return None
    item = judged.interaction
    metadata: dict[str, JsonValue] = {"feature": item.feature, "span_id": item.span_id}
    if item.model is not None:
        metadata["model"] = item.model
    case = EvalCase(
        case_id=item.trace_id,
        input=item.input,
        output=item.output,
        metadata=metadata,
        trace_id=item.trace_id,
    )
    label = NewLabel(
        case_id=item.trace_id,
        author=feedback.feedback.author,
        value=value,
        comment=feedback.feedback.comment,
        source="feedback",
    )
    return FeedbackLabel(case, label)

"""Eval sets filled from production feedback, in memory and on SQLite: the mapping, the
cursor that makes a fill resume without relabelling, and what is skipped and counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.adapters.db.labels import SqlEvalSetStore
from continuous_eval.core.interactions import NewFeedback
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.ports.labels import FeedbackFillStore
from continuous_eval.service.feedback_fill import FeedbackFillTick, fill_from_feedback
from continuous_eval.testing import FakeClock, InMemoryInteractionStore
from continuous_eval.testing.labels import InMemoryEvalSetStore
from tests.fixtures.interactions import interaction, span_id, trace_id


@dataclass
class Stores:
    labels: FeedbackFillStore
    traffic: InteractionStore


@pytest.fixture(params=["memory", "sqlite"])
def stores(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Stores]:
    if request.param == "memory":
        yield Stores(InMemoryEvalSetStore(clock), InMemoryInteractionStore(clock))
        return
    engine = make_engine(request.getfixturevalue("migrated_sqlite_url"))
    try:
        yield Stores(SqlEvalSetStore(engine, clock), SqlInteractionStore(engine, clock))
    finally:
        engine.dispose()


def feedback(n: int, author: str = "ann", **fields: object) -> NewFeedback:
    return NewFeedback(trace_id=trace_id(n), author=author, **fields)  # type: ignore[arg-type]


def test_feedback_on_the_feature_becomes_cases_and_labels(stores: Stores) -> None:
    traffic, labels = stores.traffic, stores.labels
    traffic.add_interactions(
        [
            interaction(1, model="claude-haiku-4-5"),
            interaction(2),
            interaction(3, trace=2, parent_span_id=span_id(2), input="tool q", output="tool a"),
            interaction(4, feature="billing"),
        ]
    )
    s = labels.create_eval_set("support-pf", "pass_fail", feature="support")
    traffic.add_feedback(feedback(1, score=1.0, comment="right"))
    traffic.add_feedback(feedback(2, "bob", label="Thumbs-Down"))
    traffic.add_feedback(feedback(2, "cat", label="good", span_id=span_id(3)))
    traffic.add_feedback(feedback(1, "dan", score=0.7))  # off the scale: skipped
    traffic.add_feedback(feedback(4, score=1.0))  # another feature: ignored

    outcome = fill_from_feedback(labels, traffic, batch=2)
    [done] = outcome.sets
    assert (done.eval_set, done.labels, done.cases, done.skipped, done.missing) == (
        "support-pf",
        3,
        2,
        1,
        0,
    )
    got = {lc.case.case_id: lc for lc in labels.labelled_cases(s.id)}
    assert sorted(got) == sorted([trace_id(1), trace_id(2)])
    one = got[trace_id(1)]
    assert (one.case.input, one.case.output, one.case.trace_id) == (
        "question 1",
        "answer 1",
        trace_id(1),
    )
    assert one.case.metadata == {
        "feature": "support",
        "span_id": span_id(1),
        "model": "claude-haiku-4-5",
    }
    assert [
        (x.label.author, x.label.value, x.label.comment, x.label.source) for x in one.labels
    ] == [("ann", 1.0, "right", "feedback")]
    two = got[trace_id(2)]
    assert [(x.label.author, x.label.value) for x in two.labels] == [("bob", 0.0), ("cat", 1.0)]
    # The later feedback named the tool span: the case is that span's.
    assert (two.case.input, two.case.output) == ("tool q", "tool a")

    assert fill_from_feedback(labels, traffic).labels == 0  # the cursor: nothing twice
    traffic.add_feedback(feedback(1, score=0.0))
    again = fill_from_feedback(labels, traffic)
    assert (again.labels, again.skipped) == (1, 0)
    [now] = [lc for lc in labels.labelled_cases(s.id) if lc.case.case_id == trace_id(1)]
    assert [x.label.value for x in now.labels] == [0.0]  # ann changed her mind
    assert len(labels.label_history(s.id, trace_id(1))) == 2


def test_a_rating_set_takes_scores_1_to_5_and_skips_the_rest(stores: Stores) -> None:
    traffic, labels = stores.traffic, stores.labels
    traffic.add_interactions([interaction(1), interaction(2)])
    labels.create_eval_set("plain", "pass_fail")  # no feature: not filled
    s = labels.create_eval_set("support-15", "1-5", feature="support")
    traffic.add_feedback(feedback(1, score=4.0))
    traffic.add_feedback(feedback(2, label="5"))
    traffic.add_feedback(feedback(2, "bob", label="thumbs_up"))
    traffic.add_feedback(feedback(2, "cat", score=0.0))
    outcome = fill_from_feedback(labels, traffic)
    assert [(d.eval_set, d.labels, d.skipped) for d in outcome.sets] == [("support-15", 2, 2)]
    values = {
        lc.case.case_id: [x.label.value for x in lc.labels] for lc in labels.labelled_cases(s.id)
    }
    assert values == {trace_id(1): [4.0], trace_id(2): [5.0]}


def test_feedback_on_a_span_no_longer_stored_is_counted_missing(stores: Stores) -> None:
    traffic, labels = stores.traffic, stores.labels
    traffic.add_interactions([interaction(1)])
    labels.create_eval_set("s", "pass_fail", feature="support")
    traffic.add_feedback(feedback(1, score=1.0, span_id=span_id(99)))
    [done] = fill_from_feedback(labels, traffic).sets
    assert (done.labels, done.missing) == (0, 1)


def test_a_fill_of_one_set_by_name(stores: Stores) -> None:
    traffic, labels = stores.traffic, stores.labels
    traffic.add_interactions([interaction(1)])
    labels.create_eval_set("a", "pass_fail", feature="support")
    labels.create_eval_set("b", "pass_fail", feature="support")
    labels.create_eval_set("plain", "pass_fail")
    traffic.add_feedback(feedback(1, label="pass"))
    assert [d.eval_set for d in fill_from_feedback(labels, traffic, only="b").sets] == ["b"]
    assert [d.labels for d in fill_from_feedback(labels, traffic).sets] == [1, 0]
    with pytest.raises(LookupError, match="nope"):
        fill_from_feedback(labels, traffic, only="nope")
    with pytest.raises(ValueError, match="no feature"):
        fill_from_feedback(labels, traffic, only="plain")


class _Contended(InMemoryEvalSetStore):
    """Another replica moves the cursor just before this one writes."""

    def record_fill(self, eval_set_id: int, *args: object, **kwargs: object) -> bool:
        self.cursors[eval_set_id] = 10_000
        return super().record_fill(eval_set_id, *args, **kwargs)  # type: ignore[arg-type]


def test_a_batch_another_replica_filled_first_is_not_written_twice() -> None:
    traffic, labels = InMemoryInteractionStore(), _Contended()
    traffic.add_interactions([interaction(1)])
    s = labels.create_eval_set("s", "pass_fail", feature="support")
    traffic.add_feedback(feedback(1, score=1.0))
    [done] = fill_from_feedback(labels, traffic).sets
    assert done.contended
    assert done.labels == 0
    assert labels.labelled_cases(s.id) == []


async def test_the_scheduled_tick_never_raises() -> None:
    def broken() -> object:
        raise RuntimeError("database down")

    assert await FeedbackFillTick(broken)() is None  # type: ignore[arg-type]
    labels, traffic = InMemoryEvalSetStore(), InMemoryInteractionStore()
    traffic.add_interactions([interaction(1)])
    labels.create_eval_set("s", "pass_fail", feature="support")
    traffic.add_feedback(feedback(1, score=1.0))
    outcome = await FeedbackFillTick(lambda: fill_from_feedback(labels, traffic))()
    assert outcome is not None
    assert outcome.labels == 1

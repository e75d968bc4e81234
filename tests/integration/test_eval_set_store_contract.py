"""The ``EvalSetStore`` contract, on memory, SQLite and Postgres alike.

Each test runs on every backend (``eval_set_store``), so the fake the unit
tests use and the real stores cannot drift apart.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from continuous_eval.core.labels import NewLabel, consensus
from continuous_eval.errors import EvalSetExists
from continuous_eval.ports.labels import FeedbackFillStore
from continuous_eval.testing import DEFAULT_START, FakeClock
from tests.fixtures.labels import case, eval_set_store

__all__ = ["eval_set_store"]


def label(case_id: str, author: str, value: float, **fields: object) -> NewLabel:
    return NewLabel(case_id=case_id, author=author, value=value, **fields)  # type: ignore[arg-type]


def test_names_are_unique_and_sets_are_listed_by_name(eval_set_store: FeedbackFillStore) -> None:
    b = eval_set_store.create_eval_set("b-set", "1-5", description="ratings", feature="support")
    a = eval_set_store.create_eval_set("a-set", "pass_fail")
    with pytest.raises(EvalSetExists):
        eval_set_store.create_eval_set("b-set", "pass_fail")
    assert [s.name for s in eval_set_store.list_eval_sets()] == ["a-set", "b-set"]
    assert eval_set_store.eval_set("b-set") == b
    assert eval_set_store.eval_set_by_id(a.id) == a
    assert (b.scale, b.description, b.feature, b.created_at) == (
        "1-5",
        "ratings",
        "support",
        DEFAULT_START,
    )
    assert eval_set_store.eval_set("missing") is None
    assert eval_set_store.eval_set_by_id(999) is None


def test_put_cases_adds_new_and_replaces_existing_ones(eval_set_store: FeedbackFillStore) -> None:
    s = eval_set_store.create_eval_set("s", "pass_fail")
    full = case(1, expected={"answer": [1, 2.5]}, metadata={"lang": "fr"}, trace_id="ab" * 16)
    assert eval_set_store.put_cases(s.id, [full, case(2)]) == 2
    changed = case(2, output="a better answer", input="plain text")
    assert eval_set_store.put_cases(s.id, [changed, case(3), case(3)]) == 1
    eval_set_store.add_labels(s.id, [label(c, "ann", 1.0) for c in ("c001", "c002", "c003")])
    got = {lc.case.case_id: lc.case for lc in eval_set_store.labelled_cases(s.id)}
    assert got == {"c001": full, "c002": changed, "c003": case(3)}


def test_cases_of_an_unknown_set_are_refused(eval_set_store: FeedbackFillStore) -> None:
    with pytest.raises(LookupError):
        eval_set_store.put_cases(42, [case(1)])
    with pytest.raises(LookupError):
        eval_set_store.add_labels(42, [label("c001", "ann", 1.0)])


def test_labels_are_all_or_nothing(eval_set_store: FeedbackFillStore) -> None:
    s = eval_set_store.create_eval_set("s", "pass_fail")
    eval_set_store.put_cases(s.id, [case(1), case(2)])
    with pytest.raises(LookupError, match="c404"):
        eval_set_store.add_labels(s.id, [label("c001", "ann", 1.0), label("c404", "ann", 0.0)])
    with pytest.raises(ValueError, match="pass_fail"):
        eval_set_store.add_labels(s.id, [label("c001", "ann", 1.0), label("c002", "ann", 0.5)])
    assert eval_set_store.labelled_cases(s.id) == []
    assert eval_set_store.label_history(s.id, "c001") == []


def test_a_value_off_the_1_to_5_scale_is_refused(eval_set_store: FeedbackFillStore) -> None:
    s = eval_set_store.create_eval_set("s", "1-5")
    eval_set_store.put_cases(s.id, [case(1)])
    for bad in (0.0, 6.0, 2.5):
        with pytest.raises(ValueError, match="1-5"):
            eval_set_store.add_labels(s.id, [label("c001", "ann", bad)])
    made = eval_set_store.add_labels(s.id, [label("c001", "ann", 5.0, comment="great")])
    assert [(m.label.value, m.label.comment) for m in made] == [(5.0, "great")]


def test_several_authors_label_one_case(eval_set_store: FeedbackFillStore) -> None:
    s = eval_set_store.create_eval_set("s", "pass_fail")
    eval_set_store.put_cases(s.id, [case(1), case(2)])
    made = eval_set_store.add_labels(
        s.id,
        [
            label("c001", "zoe", 1.0, source="import"),
            label("c001", "ann", 0.0, comment="wrong"),
            label("c001", "bob", 1.0),
        ],
    )
    assert len({m.id for m in made}) == 3
    [only] = eval_set_store.labelled_cases(s.id)  # c002 has no label: not listed
    assert only.case.case_id == "c001"
    assert [x.label.author for x in only.labels] == ["ann", "bob", "zoe"]
    assert only.labels[2].label.source == "import"
    assert only.labels[0].label.comment == "wrong"
    assert consensus(only.labels, s.scale) == 1.0


def test_a_later_label_supersedes_and_as_of_sees_the_old_one(
    eval_set_store: FeedbackFillStore, clock: FakeClock
) -> None:
    s = eval_set_store.create_eval_set("s", "1-5")
    eval_set_store.put_cases(s.id, [case(1)])
    [first] = eval_set_store.add_labels(s.id, [label("c001", "ann", 2.0)])
    clock.advance(seconds=60)
    [second] = eval_set_store.add_labels(s.id, [label("c001", "ann", 4.0)])
    assert second.created_at == first.created_at + timedelta(seconds=60)

    [now] = eval_set_store.labelled_cases(s.id)
    assert [x.label.value for x in now.labels] == [4.0]
    [before] = eval_set_store.labelled_cases(s.id, as_of=DEFAULT_START + timedelta(seconds=30))
    assert [x.label.value for x in before.labels] == [2.0]
    assert eval_set_store.labelled_cases(s.id, as_of=DEFAULT_START - timedelta(seconds=1)) == []
    history = eval_set_store.label_history(s.id, "c001")
    assert [(x.id, x.label.value) for x in history] == [(first.id, 2.0), (second.id, 4.0)]


def test_labelled_cases_read_many_cases_whole(eval_set_store: FeedbackFillStore) -> None:
    s = eval_set_store.create_eval_set("s", "pass_fail")
    cases = [case(n) for n in range(1200)]
    assert eval_set_store.put_cases(s.id, cases) == 1200
    eval_set_store.add_labels(
        s.id, [label(c.case_id, "ann", float(n % 2)) for n, c in enumerate(cases)]
    )
    got = eval_set_store.labelled_cases(s.id)
    assert [lc.case for lc in got] == sorted(cases, key=lambda c: c.case_id)
    assert [lc.labels[0].label.value for lc in got[:3]] == [0.0, 1.0, 0.0]


def test_the_fill_moves_its_cursor_once(eval_set_store: FeedbackFillStore) -> None:
    s = eval_set_store.create_eval_set("s", "pass_fail", feature="support")
    assert eval_set_store.feedback_cursor(s.id) is None
    batch = [case(1)]
    labels = [label("c001", "ann", 1.0, source="feedback")]
    assert eval_set_store.record_fill(s.id, batch, labels, after=None, cursor=7)
    assert not eval_set_store.record_fill(s.id, batch, labels, after=None, cursor=9)
    assert eval_set_store.feedback_cursor(s.id) == 7
    with pytest.raises(ValueError, match="scale"):
        eval_set_store.record_fill(s.id, [], [label("c001", "ann", 3.0)], after=7, cursor=8)
    assert eval_set_store.feedback_cursor(s.id) == 7
    assert len(eval_set_store.label_history(s.id, "c001")) == 1

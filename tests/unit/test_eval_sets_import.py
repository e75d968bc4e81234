"""``eval-sets import``'s reading: CSV and JSONL, all or nothing, every bad line named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from continuous_eval.app.eval_sets import import_file
from continuous_eval.core.label_summary import summary
from continuous_eval.core.labels import consensus
from continuous_eval.errors import ConfigError
from continuous_eval.testing.labels import InMemoryEvalSetStore

CSV = """\
case_id,input,output,expected,label,author,comment,metadata.lang
c1,Where is my refund?,It is on its way,,pass,ann,,en
c1,Where is my refund?,It is on its way,,fail,bob,too vague,en
c2,"Cancel, please",Done,cancelled,true,ann,,fr
c3,Hi,Hello,,,,,
"""


def test_a_csv_file_imports_cases_and_labels_of_several_authors(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(CSV)
    store = InMemoryEvalSetStore()
    outcome = import_file(path, store, "support", create=True)
    assert (outcome.created, outcome.rows, outcome.cases_new, outcome.labels) == (True, 4, 3, 3)
    s = store.eval_set("support")
    assert s is not None
    assert s.scale == "pass_fail"
    got = {lc.case.case_id: lc for lc in store.labelled_cases(s.id)}
    assert sorted(got) == ["c1", "c2"]  # c3 has no label
    assert [x.label.author for x in got["c1"].labels] == ["ann", "bob"]
    assert got["c1"].labels[1].label.comment == "too vague"
    assert got["c2"].case.input == "Cancel, please"
    assert got["c2"].case.metadata == {"lang": "fr"}
    assert consensus(got["c1"].labels, "pass_fail") is None  # a tie

    shown = summary(s, store.labelled_cases(s.id))
    assert shown.authors == {"ann": 2, "bob": 1}
    assert shown.distribution == {"none": 1, "pass": 1}

    again = import_file(path, store, "support")
    assert (again.created, again.cases_new, again.cases_updated) == (False, 0, 3)


def test_a_jsonl_file_on_the_1_to_5_scale(tmp_path: Path) -> None:
    path = tmp_path / "ratings.jsonl"
    rows = [
        {"id": "a", "input": {"q": 1}, "output": "x", "label": 4, "author": "ann"},
        {
            "id": "b",
            "input": "q",
            "output": "y",
            "label": "2",
            "author": "ann",
            "metadata": {"k": 1},
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    store = InMemoryEvalSetStore()
    import_file(path, store, "ratings", scale="1-5", create=True)
    s = store.eval_set("ratings")
    assert s is not None
    assert s.scale == "1-5"
    values = {lc.case.case_id: lc.labels[0].label.value for lc in store.labelled_cases(s.id)}
    assert values == {"a": 4.0, "b": 2.0}


def test_a_bad_row_imports_nothing_and_every_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(CSV + "c4,q,a,,maybe,ann,,\nc5,q,,,pass,ann,,\n")
    store = InMemoryEvalSetStore()
    with pytest.raises(ConfigError) as caught:
        import_file(path, store, "support", create=True)
    assert str(caught.value).splitlines() == [
        f"{path}: line 6: label: 'maybe' is not pass/fail (pass, fail, true, false, 1, 0)",
        f"{path}: line 7: output: required",
    ]
    assert store.list_eval_sets() == []  # not even the set


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("x.jsonl", '{"id": "a"\n', "line 1: not JSON"),
        ("x.jsonl", "[1, 2]\n", "line 1: not a JSON object"),
        ("x.txt", "id\n", "not a .csv or .jsonl file"),
        ("x.csv", "case_id,input,output\n", "no row to import"),
        ("x.csv", "case_id,input,output\na,b,c,d\n", "line 2: more cells than columns"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        import_file(path, InMemoryEvalSetStore(), "s", create=True)


def test_the_set_must_exist_or_be_created_and_keep_its_scale(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(CSV)
    store = InMemoryEvalSetStore()
    with pytest.raises(ConfigError, match="pass --create"):
        import_file(path, store, "support")
    store.create_eval_set("support", "pass_fail")
    with pytest.raises(ConfigError, match="labelled pass_fail, not 1-5"):
        import_file(path, store, "support", scale="1-5")
    with pytest.raises(ConfigError, match=r"missing\.csv: cannot read"):
        import_file(tmp_path / "missing.csv", store, "support")

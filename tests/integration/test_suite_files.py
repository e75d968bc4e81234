"""Reading suite files and datasets from disk: every failure is one ConfigError line."""

from __future__ import annotations

import json
import sys
import textwrap
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from continuous_eval.adapters.suite_files import (
    LoadedSuites,
    import_callable,
    iter_cases,
    load_suite_file,
    scan_dataset,
)
from continuous_eval.core.suite import Dataset
from continuous_eval.errors import ConfigError

ORIGIN: dict[str, Any] = {"config_file": "suites.yaml", "where": "suites.s.features.f.dataset"}
"""Where the datasets built directly in these tests are said to be declared."""

TARGET = {"type": "python", "callable": "my_app.bot:answer"}


def suite_doc(dataset: dict[str, Any], **suite: Any) -> dict[str, Any]:
    """A one-suite, one-feature config around ``dataset``."""
    feature = {"dataset": dataset, "target": dict(TARGET), "scorers": [{"type": "exact"}]}
    return {"suites": {"support": {"features": {"refunds": feature}, **suite}}}


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_suite_file(path)
    return info.value


def dataset_error(tmp_path: Path, name: str, content: str) -> ConfigError:
    """Write a dataset next to a suite file, scan it, and return the error."""
    (tmp_path / name).write_text(content, encoding="utf-8")
    loaded = load_suite_file(write_yaml(tmp_path / "suites.yaml", suite_doc({"path": name})))
    with pytest.raises(ConfigError) as info:
        loaded.scan_dataset("support", "refunds")
    return info.value


def one_line(err: ConfigError) -> str:
    text = str(err)
    assert "\n" not in text
    return text


# --------------------------------------------------------------- suite files


def test_loads_a_valid_file_and_records_where_it_lives(tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "suites.yaml",
        suite_doc({"cases": [{"input": "a", "expected": "A"}, {"input": "b"}]}, concurrency=4),
    )

    loaded = load_suite_file(config)

    assert isinstance(loaded, LoadedSuites)
    assert loaded.path == config.resolve()
    assert loaded.base_dir == tmp_path.resolve()
    assert loaded.suites.suites["support"].concurrency == 4
    assert [c.id for c in loaded.iter_cases("support", "refunds")] == ["1", "2"]


def test_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in one_line(err)
    assert err.problem == "file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    err = load_error(tmp_path)
    assert "directory" in err.problem


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "suites.yaml"
    config.write_text("suites:\n  support:\n    features: [unclosed\n", encoding="utf-8")

    err = load_error(config)

    assert err.file.endswith("suites.yaml")
    assert err.location is not None
    assert err.location.startswith("line ")
    assert ", column " in err.location
    assert err.problem.startswith("invalid YAML: ")
    one_line(err)


def test_duplicate_yaml_keys_are_rejected(tmp_path: Path) -> None:
    config = tmp_path / "suites.yaml"
    config.write_text("suites:\n  a: {}\n  a: {}\n", encoding="utf-8")

    err = load_error(config)

    assert err.location == "line 3, column 3"
    assert "duplicate key 'a' (first at line 2)" in err.problem


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "expected a mapping with a 'suites' key, got a list"),
    ],
)
def test_not_a_mapping(tmp_path: Path, content: str, problem: str) -> None:
    config = tmp_path / "suites.yaml"
    config.write_text(content, encoding="utf-8")
    assert problem in load_error(config).problem


def test_invalid_utf8_suite_file(tmp_path: Path) -> None:
    config = tmp_path / "suites.yaml"
    config.write_bytes(b"suites:\n  bad: \xff\n")
    err = load_error(config)
    assert (err.location, err.problem) == ("line 2", "not valid UTF-8")


def test_unknown_scorer_type(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    doc["suites"]["support"]["features"]["refunds"]["scorers"] = [
        {"type": "exact"},
        {"type": "bogus"},
    ]

    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))

    assert err.location == "suites.support.features.refunds.scorers[1].type"
    assert err.problem.startswith("unknown scorer type 'bogus'; expected one of: exact, contains")
    assert "suites.yaml: suites.support.features.refunds.scorers[1].type: unknown" in one_line(err)


def test_unknown_target_type(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    doc["suites"]["support"]["features"]["refunds"]["target"] = {"type": "grpc"}
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert err.location == "suites.support.features.refunds.target.type"
    assert err.problem == (
        "unknown target type 'grpc'; expected one of: "
        "python, http, anthropic, frozen, recorded, agent"
    )


def test_scorer_without_type(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    doc["suites"]["support"]["features"]["refunds"]["scorers"] = [{"name": "x"}]
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert err.location == "suites.support.features.refunds.scorers[0]"
    assert err.problem.startswith("missing required key 'type'")


def test_invalid_regex(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    doc["suites"]["support"]["features"]["refunds"]["scorers"] = [
        {"type": "regex", "pattern": "(unclosed"}
    ]

    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))

    assert err.location == "suites.support.features.refunds.scorers[0].pattern"
    assert err.problem.startswith("invalid regex: missing )")
    assert "Value error" not in str(err)


def test_wrong_type(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]}, concurrency="many")
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert err.location == "suites.support.concurrency"
    assert "valid integer" in err.problem
    assert "(got 'many')" in err.problem


def test_unknown_key_points_at_its_mapping(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]}, concurency=3)
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert (err.location, err.problem) == (
        "suites.support",
        "unknown key 'concurency' (did you mean 'concurrency'?)",
    )


def test_an_unknown_key_far_from_every_known_one_gets_no_suggestion(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]}, owner_team="search")
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert (err.location, err.problem) == ("suites.support", "unknown key 'owner_team'")


def test_a_mistyped_required_key_is_unknown_not_missing(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    target = doc["suites"]["support"]["features"]["refunds"]["target"]
    target["calable"] = target.pop("callable")
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert [(p.location, p.problem) for p in err.problems] == [
        (
            "suites.support.features.refunds.target",
            "unknown key 'calable' (did you mean 'callable'?)",
        )
    ]


def test_suggestions_follow_scorer_types_and_aliases(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    doc["suites"]["support"]["features"]["refunds"]["scorers"] = [
        {"type": "json", "shema": {}},
        {"type": "containz"},
    ]
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert [(p.location, p.problem) for p in err.problems] == [
        (
            "suites.support.features.refunds.scorers[0]",
            "unknown key 'shema' (did you mean 'schema'?)",
        ),
        (
            "suites.support.features.refunds.scorers[1].type",
            "unknown scorer type 'containz' (did you mean 'contains'?); expected one of: "
            "exact, contains, regex, json, numeric, python, llm_judge, trajectory, learned",
        ),
    ]


def test_missing_key_points_at_its_mapping(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    del doc["suites"]["support"]["features"]["refunds"]["target"]
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert err.location == "suites.support.features.refunds"
    assert err.problem == "missing required key 'target'"


def test_top_level_problem_has_no_location(tmp_path: Path) -> None:
    err = load_error(write_yaml(tmp_path / "suites.yaml", {"suite": {}}))
    assert err.location is None
    assert err.problem == "unknown key 'suite' (did you mean 'suites'?)"
    assert len(err.problems) == 1  # 'suites' is missing only because it was mistyped


def test_a_missing_top_level_key_is_reported(tmp_path: Path) -> None:
    err = load_error(write_yaml(tmp_path / "suites.yaml", {"version": 1}))
    assert [(p.location, p.problem) for p in err.problems] == [
        (None, "missing required key 'suites'"),
        (None, "unknown key 'version'"),
    ]


def test_every_error_is_reported_each_on_its_own_line(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]}, concurrency="many", description=3)
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    file = str(tmp_path / "suites.yaml")
    assert str(err).splitlines() == [
        f"{file}: suites.support.concurrency: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')",
        f"{file}: suites.support.description: Input should be a valid string (got 3)",
    ]


def test_invalid_suite_name(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    doc["suites"]["bad name!"] = doc["suites"].pop("support")
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert err.location == "suites"
    assert err.problem.startswith("invalid name 'bad name!': names use letters, digits")


def test_bad_callable_path_is_explained(tmp_path: Path) -> None:
    doc = suite_doc({"cases": [{"input": "a"}]})
    doc["suites"]["support"]["features"]["refunds"]["target"]["callable"] = "my_app.bot.answer"
    err = load_error(write_yaml(tmp_path / "suites.yaml", doc))
    assert err.location == "suites.support.features.refunds.target.callable"
    assert "'package.module:function'" in err.problem


def test_dates_stay_text(tmp_path: Path) -> None:
    config = tmp_path / "suites.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            suites:
              support:
                features:
                  refunds:
                    dataset: {cases: [{input: 2024-05-01, expected: 2024-05-01}]}
                    target: {type: python, callable: "my_app.bot:answer"}
                    scorers: [{type: exact}]
            """
        ),
        encoding="utf-8",
    )
    [case] = load_suite_file(config).iter_cases("support", "refunds")
    assert case.input == "2024-05-01"


def test_unknown_suite_and_feature_names(tmp_path: Path) -> None:
    loaded = load_suite_file(
        write_yaml(tmp_path / "suites.yaml", suite_doc({"cases": [{"input": "a"}]}))
    )
    with pytest.raises(ConfigError, match="no suite named 'other'; have: support"):
        loaded.suite("other")
    with pytest.raises(ConfigError, match="no feature named 'x'; have: refunds"):
        loaded.feature("support", "x")


# ------------------------------------------------------------------ JSONL


def test_jsonl_rows_with_default_ids_and_blank_lines(tmp_path: Path) -> None:
    rows = [
        {"input": "first", "expected": "1"},
        {"id": "named", "input": {"question": "q"}, "metadata": {"lang": "en"}},
        {"input": ["a", "b"]},
    ]
    content = json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n   \n" + json.dumps(rows[2])
    (tmp_path / "cases.jsonl").write_text(content, encoding="utf-8")
    loaded = load_suite_file(
        write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "cases.jsonl"}))
    )

    cases = list(loaded.iter_cases("support", "refunds"))

    # Default ids count data rows only: blank lines do not shift them.
    assert [c.id for c in cases] == ["1", "named", "3"]
    assert cases[0].expected == "1"
    assert cases[1].input == {"question": "q"}
    assert cases[1].metadata == {"lang": "en"}
    assert loaded.scan_dataset("support", "refunds").count == 3


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"id": "x", "expected": "y"}', "missing required key 'input'"),
        ('{"input": "a", "expectd": "y"}', "unknown key 'expectd'"),
        ('{"input": "a",', "invalid JSON: "),
        ('["a", "b"]', "expected a JSON object, got a list"),
        ('"just text"', "expected a JSON object, got a string"),
        ('{"input": ""}', "input: input must not be empty"),
        ('{"input": "a", "metadata": "x"}', "metadata: "),
        ('{"input": "a", "id": true}', "id: Input should be a valid string (got True)"),
    ],
)
def test_jsonl_bad_row(tmp_path: Path, bad_line: str, problem: str) -> None:
    content = '{"input": "ok"}\n\n' + bad_line + "\n"
    err = dataset_error(tmp_path, "cases.jsonl", content)
    assert err.file.endswith("cases.jsonl")
    assert err.location == "line 3"
    assert problem in err.problem
    one_line(err)


def test_jsonl_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    good = b'{"input": "ok"}\n' * 1000
    path.write_bytes(good + b'{"input": "\xff"}\n')
    loaded = load_suite_file(
        write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "cases.jsonl"}))
    )
    with pytest.raises(ConfigError) as info:
        loaded.scan_dataset("support", "refunds")
    assert (info.value.location, info.value.problem) == ("line 1001", "not valid UTF-8")


def test_jsonl_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_bytes(b'\xef\xbb\xbf{"input": "a"}\n')
    loaded = load_suite_file(
        write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "cases.jsonl"}))
    )
    assert [c.input for c in loaded.iter_cases("support", "refunds")] == ["a"]


def test_duplicate_ids_jsonl(tmp_path: Path) -> None:
    content = '{"id": "a", "input": "1"}\n{"input": "2"}\n{"id": "a", "input": "3"}\n'
    err = dataset_error(tmp_path, "cases.jsonl", content)
    assert err.location == "line 3"
    assert err.problem == "duplicate case id 'a' (first at line 1)"


def test_explicit_id_colliding_with_a_default_id(tmp_path: Path) -> None:
    content = '{"id": "2", "input": "1"}\n{"input": "2"}\n'
    err = dataset_error(tmp_path, "cases.jsonl", content)
    assert err.problem == "duplicate case id '2' (first at line 1)"


# ------------------------------------------------------------------ CSV


def test_csv_rows(tmp_path: Path) -> None:
    content = (
        "id, input ,expected,lang,tier\n"
        'a,"Where is my refund?",refund,en,gold\n'
        ",Bonjour,,fr,\n"
        "\n"
        'c,"two\nlines",x,en,silver\n'
    )
    (tmp_path / "cases.csv").write_text(content, encoding="utf-8")
    loaded = load_suite_file(write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "cases.csv"})))

    cases = list(loaded.iter_cases("support", "refunds"))

    assert [c.id for c in cases] == ["a", "2", "c"]
    assert cases[0].expected == "refund"
    assert cases[0].metadata == {"lang": "en", "tier": "gold"}
    # An empty cell means "absent" for id and expected, and stays "" in metadata.
    assert cases[1].expected is None
    assert cases[1].metadata == {"lang": "fr", "tier": ""}
    assert cases[2].input == "two\nlines"


def test_csv_missing_input_column(tmp_path: Path) -> None:
    err = dataset_error(tmp_path, "cases.csv", "id,question,expected\n1,hi,hello\n")
    assert err.file.endswith("cases.csv")
    assert err.location == "line 1"
    assert err.problem == "CSV header has no 'input' column (header: id, question, expected)"


def test_csv_row_without_input(tmp_path: Path) -> None:
    err = dataset_error(tmp_path, "cases.csv", "input,expected\nhello,hi\n,nothing\n")
    assert err.location == "line 3"
    assert "input must not be empty" in err.problem


def test_csv_line_numbers_are_physical(tmp_path: Path) -> None:
    # The quoted field spans lines 2-3, so the bad row is on physical line 4.
    err = dataset_error(tmp_path, "cases.csv", 'input,expected\n"a\nb",x\n,y\n')
    assert err.location == "line 4"


def test_csv_wrong_number_of_fields(tmp_path: Path) -> None:
    err = dataset_error(tmp_path, "cases.csv", "input,expected\na,b,c\n")
    assert (err.location, err.problem) == ("line 2", "row has 3 fields, the header has 2")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty CSV file"),
        ("input,input\na,b\n", "repeats the column 'input'"),
        ("input,,x\na,b,c\n", "column 2 has no name"),
    ],
)
def test_csv_bad_header(tmp_path: Path, content: str, problem: str) -> None:
    err = dataset_error(tmp_path, "cases.csv", content)
    assert err.location == "line 1"
    assert problem in err.problem


def test_csv_header_with_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_bytes(b"\xef\xbb\xbfinput\nhello\n")
    loaded = load_suite_file(write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "cases.csv"})))
    assert [c.input for c in loaded.iter_cases("support", "refunds")] == ["hello"]


def test_duplicate_ids_csv(tmp_path: Path) -> None:
    err = dataset_error(tmp_path, "cases.csv", "id,input\nx,1\ny,2\nx,3\n")
    assert (err.location, err.problem) == ("line 4", "duplicate case id 'x' (first at line 2)")


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    (tmp_path / "cases.txt").write_text("input\nhello\n", encoding="utf-8")
    dataset = Dataset(path="cases.txt", format="csv")
    assert [c.input for c in iter_cases(dataset, tmp_path, **ORIGIN)] == ["hello"]


# ------------------------------------------------------------- dataset files


def test_missing_dataset_file_names_the_config_key(tmp_path: Path) -> None:
    loaded = load_suite_file(
        write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "data/missing.jsonl"}))
    )

    # Checked at the call, before iteration starts.
    with pytest.raises(ConfigError) as info:
        loaded.iter_cases("support", "refunds")

    err = info.value
    assert err.file.endswith("suites.yaml")
    assert err.location == "suites.support.features.refunds.dataset.path"
    assert err.problem.startswith("dataset file not found: ")
    assert err.problem.endswith("missing.jsonl")


def test_dataset_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").mkdir()
    loaded = load_suite_file(
        write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "data.jsonl"}))
    )
    with pytest.raises(ConfigError, match="dataset path is a directory"):
        loaded.scan_dataset("support", "refunds")


def test_dataset_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "cases.jsonl").write_text('{"input": "a"}\n', encoding="utf-8")
    write_yaml(tmp_path / "conf" / "suites.yaml", suite_doc({"path": "data/cases.jsonl"}))
    monkeypatch.chdir(tmp_path)

    loaded = load_suite_file(Path("conf/suites.yaml"))

    assert loaded.file == "conf/suites.yaml"
    assert loaded.scan_dataset("support", "refunds").count == 1


def test_bad_row_is_named_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cases.jsonl").write_text('{"inp": "a"}\n', encoding="utf-8")
    write_yaml(tmp_path / "suites.yaml", suite_doc({"path": "data/cases.jsonl"}))
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as info:
        load_suite_file(tmp_path / "suites.yaml").scan_dataset("support", "refunds")

    assert str(info.value).startswith("data/cases.jsonl: line 1: ")


# ------------------------------------------------------- scanning and streaming


def test_sha256_depends_on_content_not_on_layout(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        '{"input": "x", "expected": "y"}\n\n{"id": "k", "input": "z"}\n', encoding="utf-8"
    )
    (tmp_path / "b.jsonl").write_text(
        '{"expected":"y","input":"x"}\n{"input":"z","id":"k"}\n', encoding="utf-8"
    )
    (tmp_path / "c.jsonl").write_text(
        '{"input": "x", "expected": "Y"}\n{"id": "k", "input": "z"}\n', encoding="utf-8"
    )
    inline = Dataset.model_validate(
        {"cases": [{"input": "x", "expected": "y"}, {"id": "k", "input": "z"}]}
    )

    a, b, c = (
        scan_dataset(Dataset(path=name), tmp_path, **ORIGIN)
        for name in ("a.jsonl", "b.jsonl", "c.jsonl")
    )

    assert a.count == b.count == c.count == 2
    assert a.sha256 == b.sha256 == scan_dataset(inline, tmp_path, **ORIGIN).sha256
    assert c.sha256 != a.sha256
    assert len(a.sha256) == 64


def write_big_jsonl(path: Path, rows: int, bad_line: int | None = None) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for n in range(1, rows + 1):
            if n == bad_line:
                fh.write('{"expected": "no input here"}\n')
            else:
                row = {"input": f"question {n} " + "x" * 150, "expected": str(n)}
                fh.write(json.dumps(row) + "\n")


def test_twenty_thousand_cases_stream_lazily(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    write_big_jsonl(path, 20_000, bad_line=19_000)
    dataset = Dataset(path="big.jsonl")

    cases = iter_cases(dataset, tmp_path, **ORIGIN)

    # A lazy iterator: the first case comes out although line 19,000 is bad.
    assert isinstance(cases, Iterator)
    first = next(cases)
    assert (first.id, first.expected) == ("1", "1")
    # The scan reads on and catches the bad row before any run would start.
    with pytest.raises(ConfigError) as info:
        scan_dataset(dataset, tmp_path, **ORIGIN)
    assert info.value.location == "line 19000"
    assert "missing required key 'input'" in info.value.problem
    cases.close()  # type: ignore[attr-defined]


def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    write_big_jsonl(path, 20_000)
    size = path.stat().st_size

    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_cases(Dataset(path="big.jsonl"), tmp_path, **ORIGIN))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == 20_000
    assert size > 3_000_000
    # Reading the file whole would need at least its size; streaming needs a few rows.
    assert peak < size / 4


def test_scan_counts_a_big_file(tmp_path: Path) -> None:
    write_big_jsonl(tmp_path / "big.jsonl", 20_000)
    assert scan_dataset(Dataset(path="big.jsonl"), tmp_path, **ORIGIN).count == 20_000


# ------------------------------------------------------------------ callables


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo changes to ``sys.path`` and forget modules the test imported."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def unique_module(directory: Path, source: str) -> str:
    name = f"ce_test_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return name


@pytest.mark.usefixtures("isolated_imports")
def test_import_from_the_config_directory_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    module = unique_module(
        conf,
        """
        class Bot:
            @staticmethod
            def answer(text):
                return text.upper()
        """,
    )
    write_yaml(conf / "suites.yaml", suite_doc({"cases": [{"input": "a"}]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    loaded = load_suite_file(conf / "suites.yaml")
    fn = loaded.import_callable(f"{module}:Bot.answer", "suites.support.features.refunds.target")

    assert fn("hi") == "HI"
    assert sys.path[-1] == str(conf.resolve())


@pytest.mark.usefixtures("isolated_imports")
def test_config_directory_never_shadows_installed_modules(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("def dumps(x):\n    return 'shadowed'\n", encoding="utf-8")
    fn = import_callable("json:dumps", file="s.yaml", location="k", search_dir=tmp_path)
    assert fn([1]) == "[1]"


@pytest.mark.usefixtures("isolated_imports")
@pytest.mark.parametrize(
    ("source", "attr", "problem"),
    [
        (None, "answer", "cannot import module '{m}': No module named '{m}'"),
        ("x = 1\n", "answer", "module '{m}' has no attribute 'answer'"),
        ("class A:\n    pass\n", "A.b.c", "module '{m}' has no attribute 'A.b'"),
        ("answer = 'text'\n", "answer", "'{m}:answer' is not callable (it is a string)"),
        ("raise RuntimeError('boom')\n", "f", "cannot import module '{m}': RuntimeError: boom"),
        ("def f(:\n", "f", "cannot import module '{m}': SyntaxError: "),
    ],
)
def test_unimportable_callable(tmp_path: Path, source: str | None, attr: str, problem: str) -> None:
    module = unique_module(tmp_path, source) if source is not None else "ce_missing_module"
    location = "suites.support.features.refunds.target.callable"

    with pytest.raises(ConfigError) as info:
        import_callable(
            f"{module}:{attr}", file="suites.yaml", location=location, search_dir=tmp_path
        )

    err = info.value
    assert (err.file, err.location) == ("suites.yaml", location)
    assert err.problem.startswith(problem.format(m=module))
    assert str(err).startswith(f"suites.yaml: {location}: ")
    one_line(err)


def test_callable_spec_without_colon() -> None:
    with pytest.raises(ConfigError, match="expected an import path like"):
        import_callable("json.dumps", file="s.yaml", location="k")

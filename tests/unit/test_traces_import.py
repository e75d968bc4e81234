"""``traces import``'s reading: every line checked first, bad lines named, re-imports idempotent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from continuous_eval.app.traces import BATCH, check_file, import_file
from continuous_eval.core.interactions import Interaction
from continuous_eval.errors import ConfigError
from continuous_eval.testing import InMemoryInteractionStore


class CountingStore(InMemoryInteractionStore):
    """Remembers the size of each batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def add_interactions(self, items: Sequence[Interaction]) -> int:
        self.batches.append(len(items))
        return super().add_interactions(items)


def line(span: int, **overrides: Any) -> str:
    item = {
        "trace_id": f"{span // 10 + 1:032x}",
        "span_id": f"{span + 1:016x}",
        "feature": "support-bot",
        "input": "q",
        "output": "a",
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    item.update(overrides)
    return json.dumps(item)


def test_a_file_is_stored_once_however_often_it_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    path.write_text("\n".join(line(i) for i in range(BATCH + 20)) + "\n\n")
    store = CountingStore()
    first = import_file(path, store)
    assert (first.stored, first.duplicates) == (BATCH + 20, 0)
    assert store.batches == [BATCH, 20]
    again = import_file(path, store)
    assert (again.stored, again.duplicates) == (0, BATCH + 20)
    assert len(store.interactions) == BATCH + 20


def test_a_bad_line_stores_nothing_and_every_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    path.write_text("\n".join([line(0), "{nope", line(2, span_id="zz"), line(3)]) + "\n")
    store = CountingStore()
    with pytest.raises(ConfigError) as caught:
        import_file(path, store)
    assert not store.interactions
    problems = [str(p) for p in caught.value.problems]
    assert problems[0].startswith(f"{path}: line 2: not JSON")
    assert problems[1].startswith(f"{path}: line 3: span_id:")
    assert len(problems) == 2


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        check_file(tmp_path / "absent.jsonl")

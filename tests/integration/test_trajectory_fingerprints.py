"""Showing a judge the trajectory is a new measurement; judges without it keep their baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from continuous_eval.adapters.suite_files import load_suite_file
from continuous_eval.app.scanning import scan_suite
from continuous_eval.core.fingerprint import hash_json
from continuous_eval.settings import Settings


def _scorer_hashes(tmp_path: Path, judge: dict[str, Any]) -> dict[str, str]:
    feature = {
        "dataset": {"cases": [{"input": "q"}]},
        "target": {"type": "agent", "url": "http://127.0.0.1:1/agent"},
        "scorers": [judge],
    }
    path = tmp_path / "suites.yaml"
    path.write_text(json.dumps({"suites": {"s": {"features": {"f": feature}}}}))
    settings = Settings(judge_model="claude-haiku-4-5")
    (scanned,) = scan_suite(load_suite_file(path), "s", [], settings).features
    return dict(scanned.fingerprint.scorers)


def test_the_trajectory_option_changes_the_judge_fingerprint_only_when_on(tmp_path: Path) -> None:
    judge = {"type": "llm_judge", "rubric": "Used the tools well."}
    plain = _scorer_hashes(tmp_path, judge)["llm_judge"]
    off = _scorer_hashes(tmp_path, {**judge, "trajectory": False})["llm_judge"]
    on = _scorer_hashes(tmp_path, {**judge, "trajectory": True})["llm_judge"]

    assert plain == off != on
    # The hash a judge had before the option existed: its dump without the key.
    before = {
        "name": None,
        "type": "llm_judge",
        "rubric": "Used the tools well.",
        "model": "claude-haiku-4-5",
        "max_tokens": 512,
        "temperature": 0.0,
        "pass_threshold": 4,
    }
    assert plain == hash_json(before)

"""``continuous-eval traces import FILE.jsonl`` as a user runs it: counts, re-imports, bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from tests.e2e.cli_harness import cli


def _line(span: int, **overrides: object) -> str:
    item: dict[str, object] = {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": f"{span:016x}",
        "feature": "support-bot",
        "input": f"question {span}",
        "output": f"answer {span}",
        "started_at": "2026-03-01T12:00:00Z",
    }
    item.update(overrides)
    return json.dumps(item)


def _rows(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("select count(*) from interactions")).scalar_one())
    finally:
        engine.dispose()


def test_import_stores_once_and_a_bad_line_stores_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ce.db'}"
    env = {"CONTINUOUS_EVAL_DATABASE_URL": url}
    good = tmp_path / "traffic.jsonl"
    good.write_text("\n".join(_line(i) for i in range(1, 4)) + "\n")

    first = cli("traces", "import", str(good), cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "3 stored, 0 already stored" in first.stdout
    again = cli("traces", "import", str(good), "--json", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"stored": 0, "duplicates": 3}

    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([_line(7), _line(8, started_at="yesterday")]) + "\n")
    refused = cli("traces", "import", str(bad), cwd=tmp_path, env=env)
    assert refused.returncode == 2
    assert f"{bad}: line 2: started_at" in refused.stderr
    assert _rows(url) == 3

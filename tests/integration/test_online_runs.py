"""Online features end to end in one process: recorded traffic on the database, sampled and scored.

The daemon is the one ``serve`` wires (``local_daemon``) on SQLite and on
Postgres; the interactions are written through the real store, as ingestion
writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.app.container import local_daemon
from continuous_eval.app.scanning import load_suites
from continuous_eval.core.interactions import Interaction, sample_key, sample_threshold
from continuous_eval.core.models import RunStatus
from continuous_eval.core.trajectory import Step
from tests.fixtures.api_suite import make_settings
from tests.fixtures.interactions import span_id, trace_id

SUITE = """
suites:
  online:
    features:
      bot:
        dataset:
          source: traces
          feature: bot
          window_hours: 24
          sample: {max: 4, rate: 0.9}
        target: recorded
        scorers:
          - {type: contains, value: refund}
"""


def _traffic(now: datetime) -> list[Interaction]:
    def span(n: int, feature: str, age: timedelta, answer: str) -> Interaction:
        return Interaction(
            trace_id=trace_id(n),
            span_id=span_id(n),
            feature=feature,
            input=f"question {n}",
            output=answer,
            started_at=now - age,
            steps=(Step(kind="tool_call", name="lookup", arguments={"n": n}, id=f"t{n}"),),
        )

    recent = [span(n, "bot", timedelta(hours=1, minutes=n), f"refund {n}") for n in range(12)]
    old = [span(100 + n, "bot", timedelta(hours=30), "refund") for n in range(3)]
    other = [span(200 + n, "summariser", timedelta(hours=1), "refund") for n in range(3)]
    return recent + old + other


async def test_an_online_run_scores_the_lowest_keys_of_its_window_and_keeps_the_trace_ids(
    db_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "suites.yaml"
    config.write_text(SUITE)
    settings = make_settings(db_url)
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    traffic = _traffic(now)
    try:
        assert SqlInteractionStore(engine).add_interactions(traffic) == len(traffic)
    finally:
        engine.dispose()
    cut = sample_threshold(0.9)
    eligible = [i.trace_id for i in traffic[:12] if sample_key(i.trace_id) < cut]
    expected = sorted(eligible, key=sample_key)[:4]

    async with local_daemon(settings, load_suites(config)) as (daemon, store, _builder):
        first = await daemon.run_now("online")
        again = await daemon.run_now("online")
        rows = store.worst_results(first.id, limit=100)
        repeat = store.worst_results(again.id, limit=100)

    assert first.status is RunStatus.SUCCEEDED
    assert (first.cases_total, first.scored) == (4, 4)
    assert sorted(r.case_id for r in rows) == sorted(expected)
    assert all(r.trace_id == r.case_id for r in rows)
    assert all(r.score == 1.0 for r in rows)
    assert {r.input_excerpt for r in rows} <= {f"question {n}" for n in range(12)}
    # The same window's traffic: the same sample, run after run and on any replica.
    assert sorted(r.case_id for r in repeat) == sorted(expected)
    # Runs of an online feature compare by configuration, not by their cases.
    assert first.fingerprint == again.fingerprint

"""What the detector concluded about a run, as people read it: ``show --decisions`` and ``compare``.

The stored decisions are the source of truth for what was concluded (the
alerts were sent from them), so both commands read them back rather than
deciding again: ``show --decisions`` prints every key's decision and the
complete list of cases behind each fall; ``compare`` puts a run's cases
next to the known-good run its decision used, with both outputs and both
rationales, which is what someone deciding "real regression or noise?"
reads next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from continuous_eval.cli.app import EXIT_BAD_INPUT, JsonOption, app
from continuous_eval.cli.output import emit_json, fail, line, print_unclipped

if TYPE_CHECKING:
    from continuous_eval.core.models import ResultRecord, RunRecord
    from continuous_eval.core.regression import Decision, ScoreKey
    from continuous_eval.ports import RunReader, RunStore

SHOWN_WITH_CASES = frozenset({"regressed", "drifting", "judge_drift", "still_regressed"})
"""Decisions whose fallen cases ``show --decisions`` lists: the ones someone must look into."""

STYLES = {
    "regressed": "bold red",
    "drifting": "bold red",
    "still_regressed": "red",
    "judge_drift": "yellow",
    "recovered": "green",
}

RESULTS_PAGE = 1000


def _g(value: float | None) -> str:
    """A score or mean, short: 1, 0.5, 4.333; a dash for none."""
    if value is None:
        return "–"
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def _mean(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _diff(d: Decision) -> str:
    if d.mean_difference is None:
        return "–"
    if d.ci_low is None or d.ci_high is None:
        return f"{d.mean_difference:+.3f}"
    return f"{d.mean_difference:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}]"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


# ------------------------------------------------------------------ show --decisions


def decisions_document(run: RunRecord, decisions: list[Decision]) -> dict[str, Any]:
    """The ``decided``, ``candidate`` and ``decisions`` that ``show --json`` adds (API shape)."""
    from continuous_eval.app.documents import run_decisions_json

    body = run_decisions_json(run, decisions)
    return {"decided": body["decided"], "candidate": body["candidate"], "decisions": body["items"]}


def print_decisions(run: RunRecord, decisions: Sequence[Decision]) -> None:
    """Every key's decision as one table, then the fallen cases of each key that fell."""
    if not decisions:
        line(
            f"run {run.id} has no stored decisions (it did not succeed, is not finished, "
            "or finished before decisions were stored)"
        )
        return
    how = "as a candidate (manual run: never alerts)" if run.run_type != "scheduled" else ""
    table = Table(
        title=f"decisions {how}".strip(), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False
    )
    for column in ("feature", "scorer", "decision", "transition", "known-good -> now"):
        table.add_column(column, no_wrap=True)
    table.add_column("diff [95% CI]", no_wrap=True, justify="right")
    table.add_column("p / adj. p", no_wrap=True, justify="right")
    table.add_column("fell", no_wrap=True, justify="right")
    for d in decisions:
        table.add_row(
            d.feature,
            d.scorer,
            Text(d.kind.value, style=STYLES.get(d.kind.value, "")),
            d.transition or "",
            f"{_mean(d.baseline)} -> {_mean(d.current)}",
            _diff(d),
            f"{_p(d.p_value)} / {_p(d.p_adjusted)}",
            f"{len(d.fallen)} of {d.n_paired}" if d.n_paired else "–",
        )
    print_unclipped(table)
    for d in decisions:
        if d.kind.value in SHOWN_WITH_CASES:
            _print_fallen(d)


def _print_fallen(d: Decision) -> None:
    transition = f" ({d.transition})" if d.transition else ""
    line("")
    line(f"{d.feature} / {d.scorer}: {d.kind.value}{transition}: {d.message}")
    if d.baseline_run_ids:
        runs = len(d.baseline_run_ids)
        line(
            f"  against {runs} known-good run{'s' if runs != 1 else ''}, newest first: "
            + ", ".join(d.baseline_run_ids)
        )
    if d.anchor is not None:
        a = d.anchor
        verdict = "drifted" if a.drifted else "steady"
        line(
            f"  anchors: the judge moved {a.mean_difference:+.3f} on {a.n_paired} anchors "
            f"(p={_p(a.p_value)}, adj. p={_p(a.p_adjusted)}): {verdict}"
        )
    if not d.fallen:
        line("  no case is below its known-good level")
        return
    table = Table(
        title=f"  {len(d.fallen)} of {d.n_paired} cases fell (known-good level -> now)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("case", no_wrap=True)
    table.add_column("before", justify="right", no_wrap=True)
    table.add_column("after", justify="right", no_wrap=True)
    table.add_column("diff", justify="right", no_wrap=True)
    for c in d.fallen:
        table.add_row(Text(c.case_id), _g(c.before), _g(c.after), f"{c.after - c.before:+.3f}")
    print_unclipped(table)


# ------------------------------------------------------------------------- compare


@dataclass(frozen=True, slots=True)
class _Pair:
    """One case x scorer in both runs."""

    case_id: str
    before: ResultRecord | None
    after: ResultRecord | None

    @property
    def difference(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        if self.before.score is None or self.after.score is None:
            return None
        return self.after.score - self.before.score

    @property
    def fell(self) -> bool:
        diff = self.difference
        return diff is not None and diff < -1e-9

    def order(self) -> tuple[int, float, str]:
        """Fallen cases first (worst first), then cases that errored or vanished, then the rest."""
        if self.fell:
            return (0, self.difference or 0.0, self.case_id)
        lost = self.after is None or self.after.score is None
        return (1 if lost else 2, 0.0, self.case_id)


def _results(reader: RunReader, run_id: str, feature: str | None) -> dict[ScoreKey, dict[str, Any]]:
    """A run's results (the API's results pages, one after another): key -> case id -> result."""
    out: dict[ScoreKey, dict[str, Any]] = {}
    features = (None,) if feature is None else (feature, f"{feature}@anchors")
    for name in features:
        after = 0
        while True:
            page = reader.list_results_page(
                run_id, feature=name, after_id=after, limit=RESULTS_PAGE
            )
            for r in page:
                out.setdefault((r.feature, r.scorer), {})[r.case_id] = r
            if len(page) < RESULTS_PAGE:
                break
            after = page[-1].id
    return out


def _pairs(before: dict[str, Any], after: dict[str, Any]) -> list[_Pair]:
    pairs = [_Pair(c, before.get(c), after.get(c)) for c in {*before, *after}]
    return sorted(pairs, key=_Pair.order)


def _stored_baselines(
    store: RunStore, run: RunRecord, keys: Sequence[ScoreKey]
) -> tuple[dict[ScoreKey, str], dict[ScoreKey, Decision]]:
    """Each key's baseline: the newest known-good run its stored decision used.

    Anchor results (``<feature>@anchors``) use their feature's decision.
    Exits 2 when the run has no stored decisions at all.
    """
    decisions = {d.key: d for d in store.get_decisions(run.id)}
    if not decisions:
        fail(
            f"run {run.id} has no stored decisions, so there is no baseline to default to: "
            "give the BASELINE run to compare with",
            EXIT_BAD_INPUT,
        )
    chosen: dict[ScoreKey, str] = {}
    by_key: dict[ScoreKey, Decision] = {}
    for feature, scorer in keys:
        d = decisions.get((feature.removesuffix("@anchors"), scorer))
        if d is None:
            continue
        by_key[(feature, scorer)] = d
        if d.baseline_run_ids:
            chosen[(feature, scorer)] = d.baseline_run_ids[0]  # pools are newest first
    return chosen, by_key


@app.command("compare")
def compare(
    run_id: Annotated[str, typer.Argument(help="The run to look at (id or unique prefix).")],
    baseline: Annotated[
        str | None,
        typer.Argument(
            help="The run to compare with (same suite). Default: the newest known-good run "
            "the RUN's stored decision compared each key with."
        ),
    ] = None,
    feature: Annotated[
        str | None, typer.Option("--feature", "-f", help="Only this feature.")
    ] = None,
    chars: Annotated[
        int,
        typer.Option("--chars", min=0, help="Characters of each output and rationale (0: all)."),
    ] = 200,
    as_json: JsonOption = False,
) -> None:
    """Compare a run's cases with a baseline run's: scores, outputs and rationales, falls first."""
    from continuous_eval.cli.views import read_store, resolve_run_id

    with read_store() as (reader, store):
        run = store.get_run(resolve_run_id(store, run_id))
        given = None if baseline is None else store.get_run(resolve_run_id(store, baseline))
        if given is not None and given.suite != run.suite:
            fail(
                f"run {given.id} belongs to suite {given.suite!r}, not {run.suite!r}",
                EXIT_BAD_INPUT,
            )
        if given is not None and given.id == run.id:
            fail("a run cannot be compared with itself", EXIT_BAD_INPUT)
        now = _results(reader, run.id, feature)
        if given is not None:
            then = _results(reader, given.id, feature)
            keys = sorted({*now, *then})
            chosen = dict.fromkeys(keys, given.id)
            by_key: dict[ScoreKey, Decision] = {}
            olds = {given.id: then}
        else:
            keys = sorted(now)
            chosen, by_key = _stored_baselines(store, run, keys)
            olds = {b: _results(reader, b, feature) for b in sorted(set(chosen.values()))}
    if not keys:
        what = f"feature {feature!r}" if feature else "any feature"
        fail(f"run {run.id} has no results for {what}", EXIT_BAD_INPUT)
    if not chosen:
        fail(
            f"no key of run {run.id} was compared with a known-good run by its stored decision "
            f"({', '.join(sorted({d.kind.value for d in by_key.values()})) or 'none'}): "
            "give the BASELINE run to compare with",
            EXIT_BAD_INPUT,
        )
    compared = [
        (key, chosen[key], _pairs(olds[chosen[key]].get(key, {}), now.get(key, {})))
        for key in keys
        if key in chosen
    ]
    without = [key for key in keys if key not in chosen]
    source = "argument" if given is not None else "decision"
    if as_json:
        emit_json(_compare_json(run, source, compared, without, by_key))
        return
    _print_compare(run, source, compared, without, by_key, chars)


def _side(result: ResultRecord | None) -> dict[str, Any] | None:
    from continuous_eval.app.documents import result_json

    return None if result is None else result_json(result)


def _compare_json(
    run: RunRecord,
    source: str,
    compared: list[tuple[ScoreKey, str, list[_Pair]]],
    without: list[ScoreKey],
    by_key: dict[ScoreKey, Decision],
) -> dict[str, Any]:
    def decided(key: ScoreKey) -> str | None:
        found = by_key.get(key)
        return None if found is None else found.kind.value

    return {
        "run_id": run.id,
        "suite": run.suite,
        "baseline_source": source,
        "keys": [
            {
                "feature": key[0],
                "scorer": key[1],
                "baseline_run_id": base,
                "decision": decided(key),
                "cases": [
                    {
                        "case_id": p.case_id,
                        "fell": p.fell,
                        "difference": p.difference,
                        "before": _side(p.before),
                        "after": _side(p.after),
                    }
                    for p in pairs
                ],
            }
            for key, base, pairs in compared
        ],
        "without_baseline": [
            {"feature": k[0], "scorer": k[1], "decision": decided(k)} for k in without
        ],
    }


def _clip(text: str | None, chars: int) -> str:
    flat = " ".join((text or "").split())
    return flat if chars == 0 or len(flat) <= chars else flat[: chars - 1] + "…"


def _describe(result: ResultRecord | None, chars: int) -> tuple[str, str]:
    """(score, "output | why") of one side."""
    if result is None:
        return "absent", "(no result)"
    if result.score is None:
        return result.status.value, _clip(result.error or "", chars)
    why = f"  why: {_clip(result.rationale, chars)}" if result.rationale else ""
    return _g(result.score), f"{_clip(result.output_excerpt, chars)}{why}"


def _print_compare(
    run: RunRecord,
    source: str,
    compared: list[tuple[ScoreKey, str, list[_Pair]]],
    without: list[ScoreKey],
    by_key: dict[ScoreKey, Decision],
    chars: int,
) -> None:
    bases = sorted({base for _, base, _ in compared})
    why = (
        "as asked"
        if source == "argument"
        else "the newest known-good run each key's stored decision compared with"
    )
    line(f"compare run {run.id} [{run.suite}] with run {', '.join(bases)} ({why})")
    for (feature, scorer), base, pairs in compared:
        fell = sum(p.fell for p in pairs)
        decided = by_key.get((feature, scorer))
        verdict = f", decided {decided.kind.value}" if decided is not None else ""
        line("")
        line(f"{feature} / {scorer}: {len(pairs)} cases, {fell} fell; baseline run {base}{verdict}")
        for p in pairs:
            before_score, before_text = _describe(p.before, chars)
            after_score, after_text = _describe(p.after, chars)
            moved = p.difference is not None and abs(p.difference) > 1e-9
            diff = f"  ({p.difference:+g})" if moved else ""
            line(f"  {p.case_id}  {before_score} -> {after_score}{diff}")
            line(f"    before: {before_text}")
            line(f"    after:  {after_text}")
    for feature, scorer in without:
        decided = by_key.get((feature, scorer))
        kind = decided.kind.value if decided is not None else "no decision"
        line("")
        line(
            f"{feature} / {scorer}: not compared ({kind}: its decision used no baseline run); "
            "give BASELINE to compare it"
        )

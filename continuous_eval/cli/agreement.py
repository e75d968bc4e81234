"""``continuous-eval agreement``: how far each calibrated judge agrees with people's labels.

For every judge of the suite (or of one feature) the newest figures (kappa,
exact agreement, Spearman's rho, the cases compared and those left out
because people split), the kappa of its last runs, newest first, and the
worst contradictions, which is what someone fixing a rubric reads next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from continuous_eval.cli.app import EXIT_RUN_FAILED, JsonOption, app
from continuous_eval.cli.output import emit_json, fail, line, load_settings, print_unclipped

if TYPE_CHECKING:
    from continuous_eval.core.agreement import RunAgreement


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@app.command("agreement")
def agreement(
    suite: Annotated[str, typer.Option("--suite", "-s", help="The suite.")],
    feature: Annotated[
        str | None, typer.Option("--feature", "-f", help="Only this feature.")
    ] = None,
    runs: Annotated[
        int, typer.Option("--runs", min=1, max=200, help="Runs in each judge's trend.")
    ] = 10,
    top: Annotated[
        int, typer.Option("--top", min=0, max=20, help="Contradictions listed per judge.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Show each calibrated judge's agreement with people: latest figures, trend, contradictions."""
    from continuous_eval.app.agreement import agreement_side
    from continuous_eval.errors import ContinuousEvalError

    settings = load_settings()
    try:
        with agreement_side(settings) as store:
            latest = store.latest(suite, feature)
            trends = {
                (r.feature, r.scorer): store.history(suite, r.feature, r.scorer, runs)
                for r in latest
            }
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(
            {
                "suite": suite,
                "judges": [
                    {
                        "latest": r.as_json(),
                        "trend": [t.as_json() for t in trends[(r.feature, r.scorer)]],
                    }
                    for r in latest
                ],
            }
        )
        return
    if not latest:
        where = f"suite {suite}" + (f", feature {feature}" if feature else "")
        line(f"no agreement measured yet for {where} (is a feature's 'calibration' set?)")
        return
    for row in latest:
        _print_judge(row, trends[(row.feature, row.scorer)], top)


def _print_judge(row: RunAgreement, trend: list[RunAgreement], top: int) -> None:
    a = row.agreement
    line(f"{row.suite}/{row.feature} judge {row.scorer}: eval set {row.eval_set} ({a.scale})")
    line(
        f"  run {row.run_id}: kappa {_f(a.kappa)}, exact {_f(a.exact)}, "
        f"spearman {_f(a.spearman)} on {a.n} cases ({a.split} left out: people split)"
    )
    for name, why in sorted(a.reasons.items()):
        line(f"  {name}: {why}")
    line("  kappa by run, newest first: " + " ".join(_f(t.agreement.kappa) for t in trend))
    shown = a.contradictions[:top]
    if not shown:
        return
    table = Table(box=box.SIMPLE, title=f"worst {len(shown)} contradictions", title_justify="left")
    for name in ("case", "judge", "judge score", "people", "gap"):
        table.add_column(name)
    for c in shown:
        table.add_row(c.case_id, f"{c.judge:g}", f"{c.judge_score:g}", f"{c.label:g}", f"{c.gap:g}")
    print_unclipped(table)

"""``eval-sets``: labelled examples from the command line (import, list, show, fill).

``import_file`` reads a CSV or JSONL file of cases and labels
(``core.label_rows``) whole before it writes anything: any bad row stops
the import, and every bad row (up to ``MAX_PROBLEMS``) is reported with its
line, so they can all be fixed at once. ``eval_sets_side`` opens the
configured store for these commands; ``core.label_summary`` is what ``show`` prints.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.adapters.db.labels import SqlEvalSetStore
from continuous_eval.app.container import open_store
from continuous_eval.core.label_rows import LabelRow, RowProblem, parse_row
from continuous_eval.core.labels import EvalSet, LabelScale
from continuous_eval.errors import ConfigError, ConfigProblem
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.ports.labels import EvalSetStore, FeedbackFillStore
from continuous_eval.service.feedback_fill import FeedbackFillTick, SetFill, fill_from_feedback
from continuous_eval.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

MAX_PROBLEMS = 20
"""Bad rows reported before the check stops reading (nothing is imported anyway)."""


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What an import wrote."""

    eval_set: EvalSet
    created: bool
    """The set did not exist and ``--create`` made it."""
    rows: int
    cases_new: int
    cases_updated: int
    labels: int


@contextlib.contextmanager
def eval_sets_side(settings: Settings) -> Iterator[tuple[FeedbackFillStore, InteractionStore]]:
    """Open the configured eval-set store and recorded traffic on one engine; close after.

    Raises:
        ContinuousEvalError: The database could not be opened (``open_store``).
    """
    engine, store = open_store(settings)
    try:
        yield SqlEvalSetStore(engine), SqlInteractionStore(engine)
    finally:
        store.close()
        engine.dispose()


def import_file(
    path: Path,
    store: EvalSetStore,
    name: str,
    *,
    scale: LabelScale | None = None,
    create: bool = False,
) -> ImportOutcome:
    """Check the whole file, then store its cases and labels in the set ``name``.

    Raises:
        ConfigError: The set is missing (without ``create``), its scale is not
            ``scale``, or the file or a row is bad; nothing is stored.
    """
    file = str(path)
    existing = store.eval_set(name)
    if existing is None and not create:
        raise ConfigError(file, None, f"no eval set {name!r}: pass --create to make it")
    if existing is not None and scale is not None and existing.scale != scale:
        raise ConfigError(
            file, None, f"eval set {name!r} is labelled {existing.scale}, not {scale}"
        )
    target_scale: LabelScale = existing.scale if existing is not None else scale or "pass_fail"
    rows = check_file(path, target_scale)
    created = existing is None
    target = existing or store.create_eval_set(name, target_scale)
    cases = {row.case.case_id: row.case for row in rows}
    new = store.put_cases(target.id, list(cases.values()))
    labels = [row.label for row in rows if row.label is not None]
    store.add_labels(target.id, labels)
    return ImportOutcome(
        eval_set=target,
        created=created,
        rows=len(rows),
        cases_new=new,
        cases_updated=len(cases) - new,
        labels=len(labels),
    )


def check_file(path: Path, scale: LabelScale) -> list[LabelRow]:
    """Every row of the file, read on ``scale``.

    Raises:
        ConfigError: Naming the file and each bad line (up to ``MAX_PROBLEMS``),
            or the file when it cannot be read or has no row.
    """
    file = str(path)
    problems: list[ConfigProblem] = []
    rows: list[LabelRow] = []
    for number, raw in _raw_rows(path):
        where = f"line {number}"
        if isinstance(raw, str):
            problems.append(ConfigProblem(file, where, raw))
        else:
            try:
                rows.append(parse_row(raw, scale))
            except RowProblem as exc:
                problems.append(ConfigProblem(file, where, str(exc)))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ConfigError.of(problems)
    if not rows:
        raise ConfigError(file, None, "no row to import")
    return rows


def _raw_rows(path: Path) -> Iterator[tuple[int, dict[str, JsonValue] | str]]:
    """Each row with its line number, or the problem with it (a string)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ConfigError(str(path), None, "not a .csv or .jsonl file")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if suffix == ".csv":
                yield from _csv_rows(handle)
            else:
                yield from _jsonl_rows(handle)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(str(path), None, f"cannot read the file: {exc}") from None


def _csv_rows(handle: Iterator[str]) -> Iterator[tuple[int, dict[str, JsonValue] | str]]:
    reader = csv.DictReader(handle)
    for row in reader:
        number = reader.line_num
        if None in row:
            yield number, "more cells than columns in the header"
            continue
        yield number, {key.strip(): value for key, value in row.items() if key is not None}


def _jsonl_rows(handle: Iterator[str]) -> Iterator[tuple[int, dict[str, JsonValue] | str]]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            document = json.loads(text)
        except ValueError as exc:
            yield number, f"not JSON: {exc}"
            continue
        if not isinstance(document, dict):
            yield number, "not a JSON object"
            continue
        yield number, document


def feedback_fill_tick(engine: Engine) -> FeedbackFillTick:
    """The scheduled fill of eval sets from feedback over the run store's engine
    (which the run store disposes of)."""
    store, traffic = SqlEvalSetStore(engine), SqlInteractionStore(engine)
    return FeedbackFillTick(lambda: fill_from_feedback(store, traffic))


def fill_one(store: FeedbackFillStore, traffic: InteractionStore, name: str) -> SetFill:
    """``eval-sets fill NAME``: one set filled up to the newest feedback.

    Raises:
        LookupError: No such set.
        ValueError: The set names no feature.
    """
    [done] = fill_from_feedback(store, traffic, only=name).sets
    return done

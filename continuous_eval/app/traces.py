"""``traces import``: a JSONL file of interactions into the configured database.

Each line is one interaction in the shape of a ``POST /api/traces`` item
(``adapters.interaction_json.InteractionIn``). The file is read twice: first
every line is validated, and any bad line stops the import before anything
is stored (every bad line is reported, by number, so they can all be fixed
at once); then the lines are stored in batches. A file imported twice
stores nothing the second time (interactions are stored once per trace and
span id), so an import cut short by a database failure is finished by
running it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from continuous_eval.adapters.ingest import Ingestor
from continuous_eval.adapters.interaction_json import InteractionIn
from continuous_eval.core.interactions import IngestOutcome, Interaction
from continuous_eval.errors import ConfigError, ConfigProblem
from continuous_eval.ports.interactions import InteractionStore

BATCH = 500
"""Interactions stored per transaction."""

MAX_PROBLEMS = 20
"""Bad lines reported before the check stops reading (the file is not imported anyway)."""


def check_file(path: Path) -> int:
    """Validate every line; return how many interactions the file holds.

    Raises:
        ConfigError: Naming the file and each bad line (up to ``MAX_PROBLEMS``),
            or the file when it cannot be read.
    """
    problems: list[ConfigProblem] = []
    count = 0
    for _, result in _lines(path):
        if isinstance(result, ConfigProblem):
            problems.append(result)
            if len(problems) >= MAX_PROBLEMS:
                break
        else:
            count += 1
    if problems:
        raise ConfigError.of(problems)
    return count


def import_file(path: Path, store: InteractionStore) -> IngestOutcome:
    """Check the file whole, then store its interactions in batches; return the counts.

    Raises:
        ConfigError: The file or a line is bad (nothing is stored).
    """
    check_file(path)
    ingestor = Ingestor(store, ())
    stored = duplicates = 0
    batch: list[Interaction] = []
    for _, result in _lines(path):
        assert not isinstance(result, ConfigProblem)  # checked above
        batch.append(result)
        if len(batch) >= BATCH:
            outcome = ingestor.ingest(batch)
            stored, duplicates = stored + outcome.stored, duplicates + outcome.duplicates
            batch = []
    if batch:
        outcome = ingestor.ingest(batch)
        stored, duplicates = stored + outcome.stored, duplicates + outcome.duplicates
    return IngestOutcome(stored=stored, duplicates=duplicates)


def _lines(path: Path) -> Iterator[tuple[int, Interaction | ConfigProblem]]:
    """Each non-blank line's interaction, or the problem with it."""
    try:
        with path.open(encoding="utf-8") as lines:
            for number, text in enumerate(lines, start=1):
                if text.strip():
                    yield number, _parse(str(path), number, text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot read the file: {exc}") from None


def _parse(file: str, number: int, text: str) -> Interaction | ConfigProblem:
    where = f"line {number}"
    try:
        document = json.loads(text)
    except ValueError as exc:
        return ConfigProblem(file, where, f"not JSON: {exc}")
    try:
        return InteractionIn.model_validate(document).to_interaction()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"])
        detail = first["msg"].removeprefix("Value error, ")
        return ConfigProblem(file, where, f"{key}: {detail}" if key else detail)

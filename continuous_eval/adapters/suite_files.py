"""Read suite files and datasets from disk, and import the Python callables they name.

This is the I/O half of suite configuration; the pure models live in
``continuous_eval.core.suite``. Everything that can go wrong here is raised as
one ``ConfigError`` naming the file, the location (a key path such as
``suites.support.features.refunds.scorers[1].pattern`` or ``line 17``) and the
problem, so the CLI prints one line and exits 2 without a traceback.

Datasets are streamed row by row and never read whole, so a suite of 20,000+
cases runs in bounded memory. The rules for dataset files:

- JSONL: one JSON object per non-blank line, with ``input`` (required) and
  optional ``id``, ``expected`` and ``metadata``; any other key is an error.
  Blank lines are skipped.
- CSV: a header row that must contain ``input``; optional ``id`` and
  ``expected`` columns; every other column goes into ``metadata`` (as text).
  Header names are stripped of surrounding spaces; an empty ``id`` or
  ``expected`` cell counts as absent.
- A case without an id gets its 1-based position among the data rows (blank
  lines and the CSV header not counted), as a string: the same rule the inline
  ``Dataset`` model uses. Errors name the *physical* line (``line N``), which
  is what an editor shows.
- Files are UTF-8 (a leading byte-order mark is ignored).
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import sys
import typing
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import yaml
from pydantic import ValidationError

from continuous_eval.adapters.config_errors import cap, explain, json_type
from continuous_eval.core.suite import (
    Case,
    Dataset,
    Feature,
    Suite,
    SuiteFile,
    TracesDataset,
    parse_suite_file,
)
from continuous_eval.errors import ConfigError

__all__ = [
    "DatasetScan",
    "LoadedSuites",
    "display_path",
    "import_callable",
    "iter_cases",
    "load_suite_file",
    "scan_dataset",
]

# ------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class DatasetScan:
    """What one validating pass over a dataset found."""

    count: int
    """Number of cases."""
    sha256: str
    """Hex sha256 over the canonical JSON of every case, in order: equal iff the cases are."""


@dataclass(frozen=True, slots=True)
class LoadedSuites:
    """A validated suite file and where it came from, for resolving relative paths."""

    suites: SuiteFile
    """The validated config."""
    path: Path
    """The suite file, resolved to an absolute path."""
    base_dir: Path
    """The suite file's directory: dataset paths and Python modules are found here."""
    file: str
    """The suite file as shown in error messages (relative to the cwd where possible)."""

    def suite(self, name: str) -> Suite:
        """Return one suite; a name that is not in the file is a ``ConfigError``."""
        try:
            return self.suites.suites[name]
        except KeyError:
            known = ", ".join(sorted(self.suites.suites))
            raise ConfigError(
                self.file, "suites", f"no suite named {name!r}; have: {known}"
            ) from None

    def feature(self, suite: str, feature: str) -> Feature:
        """Return one feature of one suite; unknown names are a ``ConfigError``."""
        features = self.suite(suite).features
        try:
            return features[feature]
        except KeyError:
            known = ", ".join(sorted(features))
            raise ConfigError(
                self.file,
                f"suites.{suite}.features",
                f"no feature named {feature!r}; have: {known}",
            ) from None

    def iter_cases(self, suite: str, feature: str) -> Iterator[Case]:
        """Stream the cases of one feature (see the module-level ``iter_cases``)."""
        dataset = self.feature(suite, feature).dataset
        where = f"suites.{suite}.features.{feature}.dataset"
        return iter_cases(dataset, self.base_dir, config_file=self.path, where=where)

    def scan_dataset(self, suite: str, feature: str) -> DatasetScan:
        """Validate and fingerprint one feature's dataset (see ``scan_dataset``)."""
        dataset = self.feature(suite, feature).dataset
        where = f"suites.{suite}.features.{feature}.dataset"
        return scan_dataset(dataset, self.base_dir, config_file=self.path, where=where)

    def import_callable(self, spec: str, location: str) -> Callable[..., Any]:
        """Import a callable named at ``location``, with this file's directory importable."""
        return import_callable(spec, file=self.file, location=location, search_dir=self.base_dir)


# ------------------------------------------------------------------ suite file


def display_path(path: Path) -> str:
    """Return ``path`` relative to the working directory when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def load_suite_file(path: Path) -> LoadedSuites:
    """Read, parse and validate a suite file.

    Args:
        path: The YAML suite file.

    Returns:
        The validated config with its resolved location.

    Raises:
        ConfigError: For every failure (missing, unreadable, bad YAML, invalid
            config), with one message naming the file, the location and the problem.
    """
    path = Path(path).expanduser()
    file = display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(file, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(file, None, "is a directory, not a suite file") from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(file, f"line {line}", "not valid UTF-8") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(file, exc) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, None, f"invalid YAML: {exc}") from None
    if data is None:
        raise ConfigError(file, None, "the file is empty; expected a mapping with a 'suites' key")
    if not isinstance(data, dict):
        raise ConfigError(
            file, None, f"expected a mapping with a 'suites' key, got {json_type(data)}"
        )
    try:
        config = parse_suite_file(data)
    except ValidationError as exc:
        raise ConfigError.of(explain(exc, file, SuiteFile)) from None
    resolved = path.resolve()
    return LoadedSuites(suites=config, path=resolved, base_dir=resolved.parent, file=file)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and keeps dates as strings.

    PyYAML silently keeps the last of two equal keys, which hides typos and
    copy-paste slips; and it turns ``2024-05-01`` into a ``date``, which is
    not a JSON value and would make a case input fail validation.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            # Merge keys (``<<``) legitimately repeat and override; only plain
            # scalar keys written by hand are checked.
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_error(file: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    location = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
    problem = exc.problem or exc.context or "syntax error"
    if exc.problem and exc.context:
        problem = f"{exc.problem} ({exc.context})"
    return ConfigError(file, location, f"invalid YAML: {problem}")


# ------------------------------------------------------------------ datasets


def iter_cases(
    dataset: Dataset | TracesDataset, base_dir: Path, *, config_file: str | Path, where: str
) -> Iterator[Case]:
    """Stream a dataset's cases, one validated ``Case`` at a time.

    The file's existence is checked now, so a missing file fails at the call;
    rows are read lazily as the iterator is consumed and the file is closed
    when it is exhausted or dropped. Duplicate ids are *not* checked here (that
    needs state over the whole file): ``scan_dataset`` does it, before a run.

    Args:
        dataset: The feature's dataset config.
        base_dir: The suite file's directory; relative paths are resolved from it.
        config_file: The suite file, named by a missing-file error.
        where: The dataset's key path (``suites.S.features.F.dataset``), which a
            missing-file error names as the location (with ``.path`` added).

    Raises:
        ConfigError: The file is missing or unreadable (named against the config
            key), or a row is invalid (named against the dataset file and line).
    """
    dataset = _file_dataset(dataset, config_file, where)
    if dataset.cases is not None:
        return iter(dataset.cases)
    return (case for _, case in _iter_rows(dataset, base_dir, config_file, where))


def scan_dataset(
    dataset: Dataset | TracesDataset, base_dir: Path, *, config_file: str | Path, where: str
) -> DatasetScan:
    """Validate every row in one streaming pass; count and fingerprint the cases.

    The runner calls this before creating a run, so a bad row at line 19,000
    is reported before any target or judge is called.

    Raises:
        ConfigError: As ``iter_cases``, and for a case id used twice.
    """
    dataset = _file_dataset(dataset, config_file, where)
    digest = hashlib.sha256()
    count = 0
    if dataset.cases is not None:
        # Inline ids are unique already: the Dataset model checks them.
        for case in dataset.cases:
            digest.update(_canonical(case))
            count += 1
        return DatasetScan(count, digest.hexdigest())
    file = _dataset_display(dataset, base_dir)
    first_seen: dict[str, int] = {}
    for line, case in _iter_rows(dataset, base_dir, config_file, where):
        previous = first_seen.setdefault(case.id, line)
        if previous != line:
            raise ConfigError(
                file, f"line {line}", f"duplicate case id {case.id!r} (first at line {previous})"
            )
        digest.update(_canonical(case))
        count += 1
    return DatasetScan(count, digest.hexdigest())


def _file_dataset(dataset: Dataset | TracesDataset, config_file: str | Path, where: str) -> Dataset:
    """Recorded traffic is sampled from the interaction store when a run is
    planned (``app.scanning.sample_cases``), never read from a file: say so at
    the dataset's key if anything asks for it as a file."""
    if isinstance(dataset, TracesDataset):
        raise ConfigError(
            display_path(Path(config_file)),
            where,
            "recorded traffic ('source: traces') is sampled from the interaction store "
            "when a run is planned; it has no file to read",
        )
    return dataset


def _canonical(case: Case) -> bytes:
    # Sorted keys and fixed separators: the same cases always hash the same,
    # whichever file format or key order they were written in.
    data = case.model_dump(mode="json")
    return (
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        + b"\n"
    )


def _dataset_path(dataset: Dataset, base_dir: Path) -> Path:
    if dataset.path is None:  # pragma: no cover - callers handle inline datasets
        raise ValueError("inline dataset has no path")
    return base_dir / Path(dataset.path).expanduser()


def _dataset_display(dataset: Dataset, base_dir: Path) -> str:
    return display_path(_dataset_path(dataset, base_dir))


class _Declared(NamedTuple):
    """Where a dataset's path is written: file problems are reported against it."""

    config_file: str
    location: str


def _iter_rows(
    dataset: Dataset, base_dir: Path, config_file: str | Path, where: str
) -> Iterator[tuple[int, Case]]:
    # Not a generator itself: the existence checks run at the call, and only
    # the returned reader is lazy.
    declared = _Declared(display_path(Path(config_file)), f"{where}.path")
    path = _dataset_path(dataset, base_dir)
    file = display_path(path)
    if not path.exists():
        raise ConfigError(*declared, f"dataset file not found: {file}")
    if path.is_dir():
        raise ConfigError(*declared, f"dataset path is a directory: {file}")
    reader = _jsonl_rows if dataset.file_format == "jsonl" else _csv_rows
    return reader(path, file, declared)


def _open(path: Path, file: str, declared: _Declared) -> BinaryIO:
    # Opened inside the reader generators, never before: a file opened for a
    # generator that is never started would leak its handle.
    try:
        return path.open("rb")
    except OSError as exc:
        raise ConfigError(
            *declared, f"cannot read dataset file {file}: {exc.strerror or exc}"
        ) from None


def _decoded_lines(stream: Iterable[bytes], file: str) -> Iterator[str]:
    # Decoding line by line (instead of a text-mode file, which decodes in
    # 8 KiB chunks) pins an encoding error to its real line number.
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(file, f"line {number}", "not valid UTF-8") from None
        yield text.removeprefix("\ufeff") if number == 1 else text


def _jsonl_rows(path: Path, file: str, declared: _Declared) -> Iterator[tuple[int, Case]]:
    with _open(path, file, declared) as stream:
        position = 0
        for number, line in enumerate(_decoded_lines(stream, file), start=1):
            if not line.strip():
                continue
            position += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    file, f"line {number}", f"invalid JSON: {exc.msg} (column {exc.colno})"
                ) from None
            if not isinstance(row, dict):
                raise ConfigError(
                    file, f"line {number}", f"expected a JSON object, got {json_type(row)}"
                )
            yield number, _make_case(row, position, file, number)


def _csv_rows(path: Path, file: str, declared: _Declared) -> Iterator[tuple[int, Case]]:
    with _open(path, file, declared) as stream:
        reader = csv.reader(_decoded_lines(stream, file))
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise ConfigError(
                file, "line 1", "empty CSV file: expected a header row with an 'input' column"
            ) from None
        except csv.Error as exc:
            raise ConfigError(file, f"line {reader.line_num}", f"invalid CSV: {exc}") from None
        _check_header(header, file)
        position = 0
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ConfigError(file, f"line {reader.line_num}", f"invalid CSV: {exc}") from None
            if not values:
                continue  # a blank line, as csv.DictReader skips them
            position += 1
            line = reader.line_num
            if len(values) != len(header):
                raise ConfigError(
                    file,
                    f"line {line}",
                    f"row has {len(values)} fields, the header has {len(header)}",
                )
            yield line, _csv_case(dict(zip(header, values, strict=True)), position, file, line)


def _check_header(header: list[str], file: str) -> None:
    if "input" not in header:
        raise ConfigError(
            file, "line 1", f"CSV header has no 'input' column (header: {', '.join(header)})"
        )
    for index, name in enumerate(header, start=1):
        if not name:
            raise ConfigError(file, "line 1", f"CSV header column {index} has no name")
        if header.count(name) > 1:
            raise ConfigError(file, "line 1", f"CSV header repeats the column {name!r}")


def _csv_case(cells: dict[str, str], position: int, file: str, line: int) -> Case:
    row: dict[str, Any] = {"input": cells["input"]}
    if cells.get("id"):
        row["id"] = cells["id"]
    if cells.get("expected"):
        row["expected"] = cells["expected"]
    metadata = {k: v for k, v in cells.items() if k not in ("id", "input", "expected")}
    if metadata:
        row["metadata"] = metadata
    return _make_case(row, position, file, line)


def _make_case(row: Mapping[str, Any], position: int, file: str, line: int) -> Case:
    data = dict(row)
    data.setdefault("id", str(position))
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.of(explain(exc, file, Case, at=f"line {line}")) from None


# ------------------------------------------------------------------ callables


def import_callable(
    spec: str, *, file: str, location: str, search_dir: Path | None = None
) -> Callable[..., Any]:
    """Import ``package.module:attr.sub`` and check that it is callable.

    The module is imported through the normal ``sys.path``. When
    ``search_dir`` is given (the suite file's directory) it is *appended* to
    ``sys.path`` if it is not there yet, so an example suite's own module next
    to it imports from any working directory, while installed packages and
    the working directory keep precedence (a file next to the config can never
    shadow a real package). The change to ``sys.path`` lasts for the process.

    Args:
        spec: ``module:attribute``, the attribute possibly dotted.
        file: The config file, for error messages.
        location: The key path holding ``spec``, for error messages.
        search_dir: A directory to make importable as a fallback.

    Raises:
        ConfigError: The module cannot be imported (including errors raised
            while importing it), the attribute is missing, or it is not callable.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError(
            file, location, f"expected an import path like 'package.module:function', got {spec!r}"
        )
    if search_dir is not None:
        entry = str(search_dir.resolve())
        if entry not in sys.path:
            sys.path.append(entry)
            importlib.invalidate_caches()
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(file, location, f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:
        # The user's module raised while being imported (a syntax error, a
        # failing top-level statement): report it as the config problem it is.
        raise ConfigError(
            file,
            location,
            cap(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"),
        ) from None
    for index, part in enumerate(attr_path.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            missing = ".".join(attr_path.split(".")[: index + 1])
            raise ConfigError(
                file, location, f"module {module_name!r} has no attribute {missing!r}"
            ) from None
    if not callable(obj):
        raise ConfigError(file, location, f"{spec!r} is not callable (it is {json_type(obj)})")
    return typing.cast(Callable[..., Any], obj)

"""The dependency rule: core is pure, service sees only core and ports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "continuous_eval"

IO_LIBRARIES = {
    "sqlalchemy",
    "httpx",
    "httpx2",
    "apscheduler",
    "anthropic",
    "resend",
    "fastapi",
    "starlette",
    "psycopg",
    "requests",
    "prometheus_client",
    "uvicorn",
    "alembic",
    "yaml",
    "rich",
    "typer",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "continuous_eval":
                # `from continuous_eval import log_context` imports a module of the package.
                found.update(f"continuous_eval.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("core"), ids=lambda p: p.name)
def test_core_imports_no_io_library_and_no_other_layer(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in IO_LIBRARIES, f"{path.name} imports {name}"
        if top == "continuous_eval":
            assert name.startswith(("continuous_eval.core", "continuous_eval.errors")), name


@pytest.mark.parametrize("path", _modules("service"), ids=lambda p: p.name)
def test_service_sees_only_core_and_ports(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in IO_LIBRARIES, f"{path.name} imports {name}"
        if top == "continuous_eval":
            assert name.startswith(
                (
                    "continuous_eval.core",
                    "continuous_eval.ports",
                    "continuous_eval.errors",
                    "continuous_eval.log_context",
                    "continuous_eval.service",
                )
            ), name

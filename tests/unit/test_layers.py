"""The dependency rule, as import-linter contracts (``[tool.importlinter]`` in pyproject.toml).

``scripts/lint`` runs every contract; these tests run each one too, so a plain
``pytest`` run refuses an import that breaks the shape. Each run builds the
import graph afresh (no cache), so it sees the working tree as it is.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_every_contract_has_an_id_and_the_layers_reach_every_top_module() -> None:
    assert all("id" in contract for contract in CONTRACTS)
    [layers] = [c for c in CONTRACTS if c["type"] == "layers"]
    named = {m.strip() for layer in layers["layers"] for m in layer.replace("|", " ").split()}
    package = ROOT / "continuous_eval"
    top = {
        f"continuous_eval.{p.stem if p.is_file() else p.name}"
        for p in package.iterdir()
        if (p.suffix == ".py" and p.stem not in {"__init__", "__main__"})
        or (p.is_dir() and (p / "__init__.py").exists() and p.name != "starter")
    }
    assert top <= named, f"modules in no layer: {sorted(top - named)}"


@pytest.mark.parametrize("contract", [c["id"] for c in CONTRACTS])
def test_the_import_contract_is_kept(contract: str) -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--contract", contract],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

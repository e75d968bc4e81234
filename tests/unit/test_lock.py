"""The lock (requirements/constraints.txt) covers everything pyproject.toml asks for.

CI, the image and the README install through the lock, so a dependency added
to pyproject.toml without ``scripts/lock`` would install at whatever version is
newest that day: the very drift the lock exists to stop. These tests fail
first.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "constraints.txt"
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


def _pins(python: str) -> dict[str, Version]:
    """Return name -> pinned version of the lock's lines that apply on ``python``."""
    environment: dict[str, str] = {
        **{name: str(value) for name, value in default_environment().items()},
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
    }
    pins: dict[str, Version] = {}
    for raw in LOCK.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"the lock pins exact versions: {raw!r}"
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def _asked_for() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lines = [
        *project["project"]["dependencies"],
        *(dep for extra in project["project"]["optional-dependencies"].values() for dep in extra),
        *project["build-system"]["requires"],
    ]
    tools = (ROOT / "requirements" / "tools.in").read_text(encoding="utf-8").splitlines()
    lines += [t for t in tools if t.strip() and not t.startswith("#")]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
def test_every_requirement_is_pinned_within_its_range(python: str) -> None:
    pins = _pins(python)
    for requirement in _asked_for():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in the lock: run scripts/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {name}=={pins[name]}, outside {requirement}: run scripts/lock"
        )


BETA_ONLY = frozenset(
    {
        "opentelemetry-exporter-http-transport",
        "opentelemetry-exporter-otlp-common",
        "opentelemetry-semantic-conventions",
    }
)
"""Packages the OpenTelemetry SDK needs that its maintainers publish only as
``0.NNbM`` releases (the SDK's own pins choose them); test-only dependencies."""


def test_the_lock_pins_no_prerelease() -> None:
    for python in SUPPORTED_PYTHONS:
        for name, version in _pins(python).items():
            if name in BETA_ONLY:
                continue
            assert not version.is_prerelease, f"{name}=={version} is a pre-release"

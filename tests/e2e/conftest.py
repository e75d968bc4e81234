"""Fixtures of the end-to-end tests: a project directory, and the webhook a CLI run posts to.

The webhook receiver is defined in ``tests.fixtures``; importing it here
makes it a fixture of this directory only.
"""

import shutil
from pathlib import Path

import pytest

from tests.e2e.cli_harness import REPO
from tests.fixtures.alerts import fake_webhook, fake_webhook_session

__all__ = ["fake_webhook", "fake_webhook_session", "project"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory holding a copy of the example config, as a new user has."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path

"""Fixtures of the end-to-end tests: the webhook receiver a CLI run posts its notice to.

Defined in ``tests.fixtures``; importing them here makes them fixtures of this
directory only.
"""

from tests.fixtures.alerts import fake_webhook, fake_webhook_session

__all__ = ["fake_webhook", "fake_webhook_session"]

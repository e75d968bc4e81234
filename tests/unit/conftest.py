"""Fixtures of the unit tests: the admin API in process over the in-memory store (no socket).

Defined in ``tests.fixtures.asgi``; importing them here makes them fixtures of
this directory only.
"""

from tests.fixtures.asgi import asgi, asgi_factory

__all__ = ["asgi", "asgi_factory"]

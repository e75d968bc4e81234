"""The dashboard served by ``serve`` at ``/``: server-rendered pages over the read side."""

"""The files ``continuous-eval init`` writes: a starter suite that runs offline.

They ship in the package (read with ``importlib.resources``) and are copied
as they are, so what a new user gets is exactly what the tests run.
"""

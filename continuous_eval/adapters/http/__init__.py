"""The HTTP interface of ``continuous-eval serve``."""

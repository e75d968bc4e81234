"""continuous-eval: run LLM eval suites on a schedule, store every result, alert on regressions."""

__version__ = "0.1.0"

"""Allow `python -m continuous_eval`."""

from continuous_eval.cli import main

main()

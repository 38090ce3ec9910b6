"""The `broker` command line (`broker.cli:main`, or `python -m broker.cli`)."""

from broker.cli.commands import main

__all__ = ["main"]

"""`python -m broker.cli ...`, as the tests and benchmarks start a broker."""

from broker.cli.commands import main

if __name__ == "__main__":
    raise SystemExit(main())

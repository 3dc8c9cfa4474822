#!/usr/bin/env python
"""Entry point of the harness: ``python run_benchmark.py {list-methods,run,report} ...`` (same as ``dml-bench``)."""

from benchmark.cli import entry_point

if __name__ == "__main__":
    entry_point()

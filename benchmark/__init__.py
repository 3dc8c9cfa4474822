"""dml-bench: a deep metric learning benchmarking harness (the reality-check protocol).

The package is laid out in the order data flows through a benchmark:
``data`` -> ``models`` -> ``methods`` (losses) -> ``training`` -> ``evaluation``
-> ``protocol`` (search, repeats, test runs) -> ``reporting`` (aggregation, tables, plots).
"""

__version__ = "0.1.0"

"""fastgan's benchmark suite: ``python -m benchmarks`` (runner) and ``pytest benchmarks/`` (pytest-benchmark)."""

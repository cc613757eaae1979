"""Benchmarks: each prints a measured value against a floor measured in the same run, and writes
`bench/results/<name>.json`. Run one with `python -m bench.<name>`, or all with `python -m bench.run_all`."""

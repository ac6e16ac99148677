"""Flashbot benchmarks: `make bench` (quick) or `BENCH_FULL=1 make bench`; never part of `make test`."""

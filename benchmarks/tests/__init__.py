"""Tests of the benchmarks' own code (the data generator and its scoring), run by `make test`."""

"""Benchmarks and their synthetic fleets; run on demand, never from the test suite's timing."""

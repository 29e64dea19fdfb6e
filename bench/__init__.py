"""Benchmarks: ``make bench`` runs every module in ``BENCHMARKS`` and prints figures side by side."""

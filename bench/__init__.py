"""Benchmarks: each one measures cifartui against a baseline in the same run and prints the ratio.

``python -m bench [--quick] [--json] [--only NAME]``; ``python -m bench.gpu`` on a CUDA machine.
Benchmarks are not tests: CI runs only ``--quick``, a smoke check that each one executes.
"""

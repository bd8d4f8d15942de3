"""Benchmarks: run each as a module, `python -m bench.<name>` (see the Makefile)."""

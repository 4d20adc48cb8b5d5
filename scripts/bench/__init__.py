"""Benchmarking deep dream (not library code): FLOP counts, device peaks, timed JAX runs and a
PyTorch reference.

scripts/benchmark.py drives it (cli.py holds its options); results are recorded in
docs/benchmarks.md. The PyTorch reference is torch_dream.py (the library never imports torch),
loaded only when torch is installed. Import it as `bench` (scripts/ on sys.path, as the scripts
do) or `scripts.bench` (from the repository root, as the tests do).
"""

from .device import machine_info, peak_gflops, peak_memory_bytes
from .flops import dream_flops_per_image_step, forward_macs

__all__ = ["machine_info", "peak_gflops", "peak_memory_bytes", "dream_flops_per_image_step", "forward_macs"]

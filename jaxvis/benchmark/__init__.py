"""Benchmarking deep dream: FLOP counts, device peaks, timed JAX runs and a PyTorch reference.

`jaxvis bench` (jaxvis/cli/bench.py) and scripts/benchmark.py drive it; results are
recorded in docs/benchmarks.md. The PyTorch reference is scripts/torch_dream.py of a source
checkout (the library never imports torch), loaded only when asked for and torch is installed.
"""

from .device import machine_info, peak_gflops, peak_memory_bytes
from .flops import dream_flops_per_image_step, forward_macs

__all__ = ["machine_info", "peak_gflops", "peak_memory_bytes", "dream_flops_per_image_step", "forward_macs"]

"""The peak FP32 FLOP/s the benchmarks report "% of peak" against: a CPU rule (cores × clock × FLOPs per
cycle from the SIMD flags) and NVIDIA's data-sheet peaks.

Benchmark code, kept in tests/ because tests/test_benchmark.py checks the rules and tests never import
scripts/; scripts/bench/ imports it with tests/ on sys.path, as it does torch_dream.py.
"""

from __future__ import annotations

import os
import platform

import jax

# Dense FP32 peaks (TFLOP/s, without tensor cores) from NVIDIA's data sheets, matched in order
# against jax's device_kind. TF32 tensor-core peaks are far higher; see docs/benchmarks.md.
GPU_FP32_TFLOPS = (
    ("H200", 67.0), ("H100 PCIe", 51.0), ("H100", 67.0), ("GH200", 67.0), ("A100", 19.5),
    ("L40S", 91.6), ("L4", 30.3), ("A10G", 31.2), ("A10", 31.2), ("V100", 15.7), ("T4", 8.1),
)


def cpu_info() -> dict:
    """Model name, logical CPUs usable by this process, MHz and SIMD flags from /proc/cpuinfo."""
    info = {"model": platform.processor() or platform.machine(), "mhz": None, "flags": set()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and info["model"] in ("", platform.machine(), platform.processor()):
                    info["model"] = v
                elif k == "cpu MHz" and info["mhz"] is None:
                    info["mhz"] = float(v)
                elif k == "flags" and not info["flags"]:
                    info["flags"] = set(v.split())
    except OSError:
        pass
    info["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return info


def cpu_flops_per_cycle(flags: set[str]) -> int:
    """FP32 FLOPs per cycle per core, assuming two FMA pipes (Zen 2+, Skylake-SP+ with AVX-512)."""
    if "avx512f" in flags:
        return 64   # 2 × 16 lanes × (mul + add)
    if "avx2" in flags and "fma" in flags:
        return 32   # 2 × 8 lanes × 2
    if "avx" in flags:
        return 16   # one 8-lane add + one 8-lane mul
    return 8


def peak_gflops(device=None, override: float | None = None) -> tuple[float | None, str]:
    """(peak FP32 GFLOP/s, how it was obtained) of `device` (default: jax's first device)."""
    if override:
        return float(override), "given by --peak-gflops"
    d = device or jax.devices()[0]
    if d.platform == "cpu":
        c = cpu_info()
        if not c["mhz"]:
            return None, "unknown (no clock in /proc/cpuinfo); pass --peak-gflops"
        fpc = cpu_flops_per_cycle(c["flags"])
        return c["cores"] * c["mhz"] / 1000 * fpc, f"{c['cores']} cores × {c['mhz'] / 1000:.2f} GHz × {fpc} FLOP/cycle"
    kind = getattr(d, "device_kind", "")
    for name, tflops in GPU_FP32_TFLOPS:
        if name.lower() in kind.lower():
            return tflops * 1000, f"{kind}: data-sheet FP32 (non-tensor-core) peak"
    return None, f"unknown for {kind!r}; pass --peak-gflops"

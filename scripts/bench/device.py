"""What the benchmark runs on: CPU model and vector width, GPU kind, peak FLOP/s, peak memory."""

from __future__ import annotations

import datetime
import os
import platform
import resource

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


def peak_memory_bytes(device=None) -> dict:
    """Peak memory so far: host max RSS of this process, and the accelerator's peak bytes in use."""
    out = {"host_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # Linux: KiB
    d = device or jax.devices()[0]
    if d.platform != "cpu":
        try:
            out["device_peak_bytes"] = int(d.memory_stats()["peak_bytes_in_use"])
        except Exception:  # backends without memory_stats
            pass
    return out


def machine_info() -> dict:
    """Everything docs/benchmarks.md records about the machine and software."""
    import jaxlib
    c = cpu_info()
    d = jax.devices()[0]
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": c["model"], "cpu_cores": c["cores"], "cpu_mhz": c["mhz"],
        "simd": [f for f in ("avx512f", "avx2", "fma", "avx") if f in c["flags"]],
        "jax_backend": d.platform, "device": getattr(d, "device_kind", str(d)), "device_count": jax.device_count(),
        "jax": jax.__version__, "jaxlib": jaxlib.__version__, "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:  # the version without importing torch
        from importlib.metadata import PackageNotFoundError, version
        info["torch"] = version("torch")
    except PackageNotFoundError:
        info["torch"] = None
    return info

"""What a benchmark runs on: CPU model and vector width, GPU kind, software versions, peak memory.

The peak FLOP/s rules are tests/peak_flops.py (tested there); the entry scripts put tests/ on sys.path.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource

import jax
from peak_flops import cpu_info


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

"""Benchmarks: jaxvis (JAX) against the same algorithms in PyTorch eager, in one process.

  python scripts/benchmark.py                       # deep dream suite (AlexNet conv5, SqueezeNet fire9-concat)
  python scripts/benchmark.py --model alexnet --layer conv5 --channels 256 --levels 3 --size 227
  python scripts/benchmark.py --breakdown --device-info --out bench.json
  python scripts/benchmark.py attribution [--repeats 3]   # SmoothGrad 50 samples, occlusion 15×15 (SqueezeNet)
  python scripts/benchmark.py patches [--n 240]           # top-9 dataset patches over photos (scripts/benchmark_patches.py)
  python scripts/benchmark.py onnx                        # imported ONNX SqueezeNet vs hand port vs onnxruntime

The deep dream part is scripts/bench/ (`python scripts/benchmark.py --help` lists every
option). It reports channel-images/s, image-iterations/s, compile time, achieved GFLOP/s
and % of the device's peak, peak memory, and JAX's speed-up over PyTorch. The attribution
part is scripts/bench_attribution.py. Results and method: docs/benchmarks.md. The PyTorch
references need torch (not a jaxvis dependency).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout

if __name__ == "__main__":
    from jaxvis import configure_cpu
    configure_cpu()  # XLA:CPU speed flags, before JAX starts a backend
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:2] == ["patches"]:
        from benchmark_patches import main as patches_main
        sys.exit(patches_main(sys.argv[2:]))
    if sys.argv[1:2] == ["onnx"]:
        from benchmark_onnx import main as onnx_main
        sys.exit(onnx_main(sys.argv[2:]))
    if sys.argv[1:2] == ["attribution"]:
        from bench_attribution import main as attribution_main
        sys.exit(attribution_main(sys.argv[2:]))
    from bench.cli import main
    sys.exit(main())

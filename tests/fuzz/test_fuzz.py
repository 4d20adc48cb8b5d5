"""A brief run of every fuzz target (a few seconds in all); `scripts/fuzz.py --minutes 10` runs them long.

Set JAXVIS_FUZZ_EXAMPLES to run more examples per target under pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.targets import ISOLATED, TARGETS, Runner

EXAMPLES = int(os.environ.get("JAXVIS_FUZZ_EXAMPLES", "15"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_briefly(name):
    target, runner = TARGETS[name], Runner()

    # derandomize: the default run is the same on every machine; long runs vary the seed.
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def check(example):
        runner(target, example)

    check()
    assert runner.count >= min(EXAMPLES, 5)


@pytest.mark.parametrize("name", sorted(ISOLATED))
def test_fuzz_isolated_briefly(name):
    """Targets that run in a child process under an address-space limit (hostile ONNX graphs)."""
    pytest.importorskip("onnx", reason="the ONNX fuzz target needs onnx")
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "tests.fuzz.child", name, str(EXAMPLES * 2)], cwd=root,
                       capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    assert int(r.stdout.split("ok ")[-1]) >= min(EXAMPLES, 5)

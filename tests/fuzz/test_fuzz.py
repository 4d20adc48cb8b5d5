"""A brief run of every fuzz target (a few seconds in all); `scripts/fuzz.py --minutes 10` runs them long.

Set JAXVIS_FUZZ_EXAMPLES to run more examples per target under pytest.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.targets import TARGETS, Runner

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

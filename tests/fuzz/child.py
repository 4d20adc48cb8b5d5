"""Run a fuzz target briefly in this (child) process under an address-space limit; print findings.

    python -m tests.fuzz.child onnx 15        # 15 examples, derandomized (what tests/fuzz/test_fuzz.py runs)

Exit status 0 and the line ``ok <count>`` when no invariant broke; 1 and the finding otherwise.
"""

from __future__ import annotations

import sys
import warnings

from hypothesis import HealthCheck, given, settings

from tests.fuzz.targets import ISOLATED, Finding, Runner, limit_address_space


def main(name: str, examples: int) -> int:
    warnings.simplefilter("ignore")
    target, runner = ISOLATED[name], Runner()
    limit_address_space()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def check(example):
        runner(target, example)

    try:
        check()
    except Finding as e:
        print(f"finding: {e}", flush=True)
        return 1
    print(f"ok {runner.count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))

"""jaxvis.configure_cpu: the XLA:CPU flags are opt-in; `import jaxvis` leaves the environment alone."""

import json
import os
import subprocess
import sys

import pytest

from jaxvis.nets import cpu

FLAG = "--xla_cpu_experimental_ynn_fusion_type="


@pytest.mark.parametrize("env,want", [
    ({}, FLAG),
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, "--xla_force_host_platform_device_count=4 " + FLAG),
    ({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"},
     "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"),  # the user's value wins
    ({"JAXVIS_XLA_DEFAULTS": "0"}, None),
])
def test_configure_cpu_adds_missing_flags_once(env, want, monkeypatch):
    monkeypatch.setattr(cpu, "_cpu_backend_started", lambda: False)
    env = dict(env)
    cpu.configure_cpu(env)
    assert env.get("XLA_FLAGS") == want
    assert cpu.configure_cpu(env) == [] and env.get("XLA_FLAGS") == want  # idempotent


def test_configure_cpu_too_late_warns(monkeypatch):
    monkeypatch.setattr(cpu, "_cpu_backend_started", lambda: True)
    env = {}
    with pytest.warns(UserWarning, match="before running JAX code"):
        assert cpu.configure_cpu(env) == []
    assert "XLA_FLAGS" not in env


def test_import_jaxvis_leaves_the_environment_alone():
    # One child process (an import costs seconds): with XLA_FLAGS set, the old import-time tuning appended to it.
    flags = "--xla_force_host_platform_device_count=2"
    env = {k: v for k, v in os.environ.items() if k != "JAXVIS_XLA_DEFAULTS"}
    env["XLA_FLAGS"] = flags
    code = ("import os, json; before = dict(os.environ); import jaxvis, jaxvis.cli; "
            "print(json.dumps([os.environ.get('XLA_FLAGS'), dict(os.environ) == before]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.dirname(os.path.dirname(__file__)),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [flags, True]

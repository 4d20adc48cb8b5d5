"""XLA:CPU options per compilation (jaxvis/nets/cpu.py): CPU programs get them, other platforms none; the user's
XLA_FLAGS win; importing and using jaxvis leaves the environment alone; configure_cpu is a deprecated no-op."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvis
from jaxvis.nets import cpu
import tiny_nets

YNN = "xla_cpu_experimental_ynn_fusion_type"


@pytest.mark.parametrize("platform,env,want", [
    ("cpu", {}, {YNN: ""}),
    ("cpu", {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, {YNN: ""}),
    ("cpu", {"XLA_FLAGS": f"--{YNN}=individual_convolution"}, {}),  # the user's value wins
    ("cpu", {"JAXVIS_XLA_DEFAULTS": "0"}, {}),
    ("gpu", {}, {}), ("cuda", {}, {}), ("rocm", {}, {}), ("tpu", {}, {}),  # XLA:CPU options only on CPU
])
def test_compiler_options_by_platform(platform, env, want):
    assert cpu.compiler_options(platform, env) == want


def _conv_grad(x, w):
    return jax.grad(lambda x: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                           dimension_numbers=("NHWC", "HWIO", "NHWC")).sum())(x)


def test_cpu_programs_compile_with_the_options():
    x, w = jnp.ones((2, 16, 16, 32)), jnp.ones((3, 3, 32, 32))  # large enough for XLA to pick YNNPACK
    plain = jax.jit(_conv_grad).lower(x, w).compile().as_text()
    ours = cpu.jit(_conv_grad).lower(x, w).compile().as_text()
    assert "__ynn_fusion" in plain and "__ynn_fusion" not in ours  # the option took effect: no YNNPACK fusions
    np.testing.assert_allclose(np.asarray(cpu.jit(_conv_grad)(x, w)), np.asarray(jax.jit(_conv_grad)(x, w)),
                               rtol=1e-6)


def test_platform_of_a_call():
    assert cpu.platform_of(np.zeros(3), 1.0) == jax.default_backend()  # unplaced: the default device's
    assert cpu.platform_of(jax.device_put(jnp.zeros(3), jax.devices("cpu")[0])) == "cpu"
    seen = []
    jax.jit(lambda x: seen.append(cpu.platform_of(jnp.ones(2), x)) or x)(jnp.zeros(3))
    assert seen == [cpu.NESTED] and cpu.compiler_options(cpu.NESTED) == {}  # inside a trace: the outer jit's


def test_nested_calls_take_no_options():
    inner = cpu.jit(lambda x: 2 * x)
    outer = cpu.jit(lambda x: inner(x) + 1)  # JAX refuses compiler options on a nested jit
    np.testing.assert_array_equal(np.asarray(outer(jnp.ones(3))), 3.0)


def test_network_cache_compiles_through_the_platform_jit(monkeypatch):
    asked = []
    real = cpu.compiler_options
    monkeypatch.setattr(cpu, "compiler_options", lambda platform, environ=None: asked.append(platform) or real(platform))
    net = tiny_nets.pure_net()
    fn = net.jitted(["relu2"])
    assert isinstance(fn, cpu.Jit)
    out = fn(net.params, jnp.zeros((1, 32, 32, 3)))["relu2"]
    assert asked == [jax.default_backend()] and out.shape == (1, 16, 16, 16)
    fn(net.params, jnp.ones((2, 32, 32, 3)))  # a new shape: the same jit object, options chosen once
    assert asked == [jax.default_backend()]


def test_configure_cpu_is_a_deprecated_no_op():
    env = {}
    with pytest.warns(DeprecationWarning, match="no longer needed"):
        assert jaxvis.configure_cpu(env) == []
    assert env == {}


def test_importing_and_using_jaxvis_leaves_the_environment_alone():
    # One child process (an import costs seconds): import, the CLI's import, and a visualize call.
    flags = "--xla_force_host_platform_device_count=2"
    env = {k: v for k, v in os.environ.items() if k != "JAXVIS_XLA_DEFAULTS"}
    env["XLA_FLAGS"] = flags
    code = ("import os, json; before = dict(os.environ); import jaxvis, jaxvis.cli; imported = dict(os.environ); "
            "import sys; sys.path.insert(0, 'tests'); import tiny_nets; net = tiny_nets.pure_net(); "
            "jaxvis.visualize(net, 'conv2', steps=2, progress=False); "
            "print(json.dumps([os.environ.get('XLA_FLAGS'), imported == before, dict(os.environ) == before]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.dirname(os.path.dirname(__file__)),
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == [flags, True, True]


def test_visualize_leaves_os_environ_unchanged():
    net = tiny_nets.pure_net()
    before = dict(os.environ)
    jaxvis.visualize(net, "conv2", steps=2, progress=False)
    assert dict(os.environ) == before

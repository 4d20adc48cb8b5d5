"""`import jaxvis` is cheap and lazy: no JAX, Flax or optax until a tool is used; every public name resolves."""

import subprocess
import sys

import jaxvis


def test_import_loads_no_heavy_module():
    code = ("import sys, jaxvis; heavy = [m for m in ('jax', 'flax', 'optax', 'PIL', 'h5py') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_every_public_name_resolves_from_its_module():
    for name in jaxvis.__all__:
        value = getattr(jaxvis, name)
        assert value is not None, name
        module = jaxvis._MODULE_OF[name]
        assert getattr(sys.modules[module], name) is value
    assert callable(jaxvis.gallery)  # the function, not the site package (docs/gallery.md's spelling)
    assert "visualize" in dir(jaxvis)


def test_unknown_name_is_an_attribute_error():
    try:
        jaxvis.no_such_tool
    except AttributeError as e:
        assert "no_such_tool" in str(e)
    else:
        raise AssertionError("expected AttributeError")

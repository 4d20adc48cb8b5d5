"""The layout rules of scripts/ (scripts/README.md), checked statically: no test imports scripts/, every script
documents the command that runs it, and no script's name shadows a package (its folder is first on sys.path);
and, slow-marked, the prepared GPU benchmark runs small on a CPU."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT / "scripts").rglob("*.py"))


def test_tests_never_import_scripts():
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{path.relative_to(ROOT)}: import {n}" for n in names if n.split(".")[0] == "scripts"]
    assert not bad, "tests must not depend on scripts/ (move the code into tests/ or the package): " + "; ".join(bad)


def test_every_script_documents_its_command():
    assert SCRIPTS
    missing = []
    for path in SCRIPTS:
        tree = ast.parse(path.read_text(), str(path))
        runnable = any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)
        command = f"python {path.relative_to(ROOT).as_posix()}"
        if runnable and command not in (ast.get_docstring(tree) or ""):
            missing.append(f"{path.relative_to(ROOT)} (want '{command}' in its docstring)")
    assert not missing, "scripts whose usage line is not their path: " + "; ".join(missing)


def test_no_script_shadows_a_module():
    shadow = {"onnx", "onnxruntime", "torch", "jax", "jaxlib", "flax", "keras", "captum", "PIL", "numpy", "h5py",
              "optax", "lucent", "skimage", "sklearn", "jaxvis", "tests", "scripts", *sys.stdlib_module_names}
    bad = [str(p.relative_to(ROOT)) for p in SCRIPTS if p.stem in shadow]
    assert not bad, f"script names that shadow a module when run by path: {bad}"


@pytest.mark.slow
def test_gpu_benchmark_runs_small_on_cpu(tmp_path):
    """scripts/bench/gpu.py (the prepared accelerator run) works end to end: `--small` on this CPU writes a JSON
    with every job's throughput and a markdown row (≈45 s, mostly compiling: slow-marked)."""
    out, md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    subprocess.run([sys.executable, str(ROOT / "scripts/bench/gpu.py"), "--small", "--out", str(out), "--md", str(md)],
                   check=True, cwd=ROOT, timeout=600)
    r = json.loads(out.read_text())
    assert r["small"] and r["lucid"]["units"] == 4 and r["lucid"]["units_per_s"] > 0
    assert r["dream"]["squeezenet fire9-concat"]["image_steps_per_s"] > 0 and r["gallery"]["units_per_s"] > 0
    row = md.read_text().strip()
    assert row.startswith("| ") and row.count("|") == 6

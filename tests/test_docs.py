"""Every documented line runs (issue 24): the Python blocks and command lines of README.md and docs/*.md.

What is checked, for every page:

* **Fenced ``python`` blocks** run top to bottom, a page's blocks in one namespace (as a reader runs them),
  in a scratch folder (see ``workspace``). Before they run, every call of a jaxvis function in them is bound
  to its real signature (a renamed or removed argument fails here even in a block that is not run).
* **Command lines** (fenced ``bash``/``sh``/unlabelled blocks): each ``jaxvis …`` line is parsed by the real
  argument parser and run in-process (``jaxvis.cli.main``); each ``python scripts/…`` line is parsed by the
  script's own parser (the scripts run for minutes: scripts/README.md; running them is theirs to test).
  Shell set-up (``python3 -m venv``, ``. .venv/bin/activate``, ``pip install``, ``python -m pytest``) is not
  run: it installs, or is this test suite. Any other command fails the test: document it or mark the block.
* **Inline code**: ``jaxvis.name(...)`` spans must name a callable jaxvis function whose signature takes the
  keywords shown; ``jaxvis <command> --option`` spans must name real options of that command.
* A block preceded by ``<!-- not run: REASON -->`` (user files or downloads jaxvis does not have) is checked
  statically only; the reason is required.

Small sizes: a documented call first binds to the real signature with the documented arguments, then
the arguments in ``SMALL`` (steps, iterations, octaves, image sizes, samples) are lowered before the call;
command lines get the options in ``SMALL_CLI`` appended (argparse keeps the last). Documented user files
(``photos/``, ``train/``, the photo names in ``USER_FILES``) are small stand-ins made from examples/images. Everything
else is exactly what the page says. The blocks that optimise images are marked slow (``-m slow``).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import dataclasses
import functools
import glob
import importlib
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxvis
from jaxvis.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"(?<!`)<!--\s*not run:\s*(.*?)\s*-->", re.S)  # not one quoted in `code`

# Arguments lowered for the test run (by the defining function's module.qualname): only sizes and step counts.
SMALL = {
    "jaxvis.engine.visualize.visualize": dict(steps=2, image_size=64),
    "jaxvis.dream.matlab.deep_dream_image": dict(num_iterations=1, pyramid_levels=1),
    "jaxvis.recipes.class_model.class_model": dict(steps=2, image_size=64),
    "jaxvis.recipes.fool.fool": dict(max_steps=2),
    "jaxvis.recipes.invert.invert": dict(steps=2),
    "jaxvis.recipes.style.style_transfer": dict(steps=2, image_size=64),
    "jaxvis.recipes.dream_photo.dream_photo": dict(octaves=1, steps_per_octave=1),
    "jaxvis.patches.scan.top_patches": dict(k=2),
    "jaxvis.site.render.gallery": dict(units=2, steps=2, image_size=64),
    "jaxvis.attribution.gradients.saliency": dict(num_samples=2, steps=2),
    "jaxvis.recipes.accentuate.accentuate": dict(steps=2, image_size=64),
}
SMALL_CLI = {
    "visualize": ["--steps", "2", "--image-size", "64"],
    "dream": ["--iterations", "1", "--pyramid-levels", "1", "--image-size", "64"],
    "dream-photo": ["--octaves", "1", "--steps", "1"],
    "saliency": ["--samples", "2", "--steps", "2"],
    "patches": ["--k", "2"],
    "gallery": ["--units", "0:2", "--steps", "2", "--image-size", "64", "--block", "2"],
}
# Files the docs name that a user brings; the test makes small stand-ins (name -> example photo it is cut from).
USER_FILES = {"photo_6000x4000.jpg": "grace_hopper.jpg", "big_photo.jpg": "grace_hopper.jpg"}
# Tools that optimise images or run the network many times: their blocks and lines are slow-marked.
SLOW_TOOLS = ("visualize", "deep_dream_image", "class_model", "fool", "invert", "style_transfer", "dream_photo",
              "top_patches", "gallery", "save_html", "accentuate")
SLOW_COMMANDS = ("visualize", "dream", "dream-photo", "gallery", "patches")
SETUP = (re.compile(r"^python3? -m venv\b"), re.compile(r"^(\.|source) \S*activate$"), re.compile(r"^pip install\b"),
         re.compile(r"^python -m pytest\b"), re.compile(r"^(sudo )?apt(-get)? install\b"))


# ------------------------------------------------------------------ reading the pages
@dataclasses.dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        before = text[:m.start()].rstrip().rsplit("\n", 1)[-1]
        skip = NOT_RUN.search(before)
        out.append(Block(page, text[:m.start()].count("\n") + 2, m.group(1), m.group(2),
                         skip.group(1) if skip else None))
    return out


def _prose(page: Path) -> str:
    """The page without its fenced blocks (same line count)."""
    return re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), page.read_text(encoding="utf-8"),
                  flags=re.S | re.M)


def _inline(page: Path) -> list[tuple[int, str]]:
    text = _prose(page)
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in re.finditer(r"`([^`\n]+)`", text)]


PY_BLOCKS = [b for p in PAGES for b in _blocks(p) if b.lang == "python"]
SHELL_BLOCKS = [b for p in PAGES for b in _blocks(p) if b.lang in ("bash", "sh", "shell", "console", "")]


def _commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) of each shell command in a block: comments dropped, `&&` chains split."""
    out = []
    for i, raw in enumerate(block.code.splitlines()):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        for seg in filter(None, (s.strip() for s in line.split("&&"))):
            out.append((block.line + i, seg))
    return out


def _kind(command: str) -> str:
    if command.startswith("jaxvis "):
        return "jaxvis"
    if command.startswith("[--"):
        return "synopsis"  # optional options of the command line above it, `[--name VALUE] …`
    if re.match(r"^python3? scripts/\S+\.py\b", command):
        return "script"
    if any(r.match(command) for r in SETUP):
        return "setup"
    return "other"


def _is_code_block(block: Block) -> bool:
    """An unlabelled block is a command block when its first line is a command (not a file tree or output)."""
    first = next((c for _, c in _commands(block)), "")
    return block.lang != "" or _kind(first) != "other"


CLI_LINES = [(b, line, cmd) for b in SHELL_BLOCKS if _is_code_block(b) for line, cmd in _commands(b)]


def _id(b, line=None) -> str:
    return f"{b.page.relative_to(REPO)}:{line or b.line}"


# ------------------------------------------------------------------ static checks (every block, run or not)
def _jaxvis_attr(dotted: str):
    obj = jaxvis
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> jaxvis dotted path, from the block's imports."""
    names = {"jaxvis": "jaxvis"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "jaxvis":
                    names[a.asname or "jaxvis"] = a.name if a.asname else "jaxvis"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jaxvis":
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _check_calls(tree: ast.AST, aliases: dict[str, str], where: str) -> list[str]:
    """Bind every call of a jaxvis callable in `tree` to its signature (arguments as placeholders)."""
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None or name.split(".")[0] not in aliases:
            continue
        path = aliases[name.split(".")[0]] + name[len(name.split(".")[0]):]
        try:
            obj = _jaxvis_attr(path)
        except AttributeError as e:
            problems.append(f"{where}: {path} does not exist ({e})")
            continue
        if not callable(obj):
            problems.append(f"{where}: {path} is a {type(obj).__name__}, not something to call")
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        # `...` / `…` among the arguments reads "and the rest" (`f(cache=...)`: that keyword, among others): the
        # arguments shown must fit; missing ones are not an error then
        dots = lambda a: isinstance(a, ast.Constant) and a.value is Ellipsis  # noqa: E731
        rest = [a for a in node.args if dots(a)]
        bind = sig.bind_partial if rest or any(dots(k.value) for k in node.keywords) else sig.bind
        try:
            bind(*[None] * (len(node.args) - len(rest)), **{k.arg: None for k in node.keywords})
        except TypeError as e:
            problems.append(f"{where}: {path}({ast.unparse(node)[len(name) + 1:-1]}) does not fit its signature: {e}")
    return problems


def _parse_cli(argv: list[str]) -> str | None:
    """None if the real parser takes `argv`, else its message."""
    import contextlib
    import io
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            build_parser().parse_args(argv)
    except SystemExit as e:
        return err.getvalue().strip().splitlines()[-1] if e.code else None
    return None


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser | None:
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction) and words and words[0] in a.choices:
            return _subparser(a.choices[words[0]], words[1:])
    return parser


@pytest.mark.parametrize("block", PY_BLOCKS, ids=_id)
def test_python_block_calls_fit_signatures(block):
    tree = ast.parse(block.code, block.where)
    problems = _check_calls(tree, _aliases(tree), block.where)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("block,line,cmd", CLI_LINES, ids=[_id(b, ln) for b, ln, _ in CLI_LINES])
def test_command_line_is_known_and_parses(block, line, cmd):
    kind = _kind(cmd)
    assert kind != "other", (f"{_id(block, line)}: {cmd!r} is neither a jaxvis command, a script nor shell set-up; "
                             "run it in this test or mark the block <!-- not run: why -->")
    if kind == "synopsis":  # `[--name VALUE] …`: options of the command line above it (values are placeholders)
        above = [c for b, ln, c in CLI_LINES if b == block and ln < line and _kind(c) == "jaxvis"]
        assert above, f"{_id(block, line)}: an option synopsis needs a command line above it"
        sub = _subparser(build_parser(), shlex.split(above[-1])[1:2])
        known = {o for a in sub._actions for o in a.option_strings}
        unknown = [w for w in re.findall(r"--[\w-]+", cmd) if w not in known]
        assert not unknown, f"{_id(block, line)}: no such options of {above[-1].split()[1]!r}: {unknown}"
    if kind == "jaxvis":
        problem = _parse_cli(shlex.split(cmd)[1:])
        assert problem is None, f"{_id(block, line)}: {cmd!r}: {problem}"


def test_inline_code_names_real_calls_and_options():
    problems = []
    parser = build_parser()
    for page in PAGES:
        for line, span in _inline(page):
            where = f"{page.relative_to(REPO)}:{line}"
            if span.startswith("jaxvis ") and re.match(r"^jaxvis [a-z-]+( |$)", span):
                words = shlex.split(span)[1:]
                sub = _subparser(parser, [w for w in words if not w.startswith("-")][:2])
                if sub is parser:
                    problems.append(f"{where}: `{span}`: no subcommand {words[0]!r}")
                    continue
                known = {o for a in sub._actions for o in a.option_strings}
                problems += [f"{where}: `{span}`: no option {w.split('=')[0]} in `jaxvis {words[0]}`"
                             for w in words if w.startswith("--") and w.split("=")[0] not in known]
            elif re.match(r"^jaxvis(\.\w+)+\(", span):
                code = span.replace("…", "...")
                try:
                    tree = ast.parse(code, mode="eval")
                except SyntaxError:  # a signature shown with `*,` or types: check the name only
                    name = span.split("(")[0]
                    try:
                        ok = callable(_jaxvis_attr(name))
                    except AttributeError:
                        ok = False
                    if not ok:
                        problems.append(f"{where}: `{span}`: {name} is not a jaxvis function")
                    continue
                problems += _check_calls(tree, {"jaxvis": "jaxvis"}, where)
    assert not problems, "\n".join(problems)


def test_not_run_marks_give_a_reason_and_mark_a_block():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in NOT_RUN.finditer(text):
            assert len(m.group(1)) > 10, f"{page.name}: say why the block is not run: {m.group(0)}"
            after = text[m.end():].lstrip()
            assert after.startswith("```"), f"{page.name}: {m.group(0)} must stand right before a fenced block"


def test_a_renamed_argument_fails_the_static_check():
    """The check can fail: the README's former atlas line and a misspelt keyword."""
    old = ('import jaxvis\nxy = jaxvis.maps.embedding(net, photos, "pool10", method="tsne")\n'
           'jaxvis.atlas_image(xy, photos, grid=(20, 20))\n')
    tree = ast.parse(old)
    assert any(re.search(r"jaxvis.maps.embedding (is a module|does not exist)", p)
               for p in _check_calls(tree, _aliases(tree), "old"))
    tree = ast.parse("import jaxvis\njaxvis.visualize(net, 'conv1', step=3)\n")
    assert any("unexpected keyword argument 'step'" in p for p in _check_calls(tree, _aliases(tree), "x"))
    assert "unrecognized arguments: --chanels" in _parse_cli(["dream", "--layer", "conv1", "--chanels", "0:4"])


# ------------------------------------------------------------------ running them
@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A scratch folder laid out as the docs assume: `examples/` (the repo's), `photos/` (12 small photos
    cut from examples/images), `train/` (the same photos as an ImageFolder tree of three classes) and the user
    photos of USER_FILES (small stand-ins)."""
    ws = tmp_path_factory.mktemp("docs")
    (ws / "examples").symlink_to(REPO / "examples")
    (ws / "photos").mkdir()
    rng = np.random.default_rng(0)
    sources = sorted((REPO / "examples" / "images").glob("*.[jp][pn]g"))
    for i in range(12):
        im = Image.open(sources[i % len(sources)]).convert("RGB")
        w, h = im.size
        s = int(min(w, h) * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        crop = im.crop((x, y, x + s, y + s)).resize((128, 128))
        (crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else crop).save(ws / "photos" / f"p{i:02d}.jpg")
    for name, src in USER_FILES.items():
        Image.open(REPO / "examples" / "images" / src).convert("RGB").save(ws / name)
    for i, p in enumerate(sorted((ws / "photos").iterdir())):  # `train/`: an ImageFolder tree (class subfolders)
        (ws / "train" / ("cats", "cups", "people")[i % 3]).mkdir(parents=True, exist_ok=True)
        (ws / "train" / ("cats", "cups", "people")[i % 3] / p.name).symlink_to(p)
    return ws


@functools.lru_cache(maxsize=None)
def _cached_model(name, weights=None):
    return jaxvis.load_model(name, weights=weights)


def _small(fn, lowered: dict):
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)  # the documented call, against the real signature
        for k, v in lowered.items():
            if k in sig.parameters:
                bound.arguments[k] = v
        return fn(*bound.args, **bound.kwargs)
    return call


class _Docs:
    """What `import jaxvis` gives a documented block: the real package, calls of SMALL functions lowered,
    networks loaded once per test run."""

    def __init__(self, module: types.ModuleType):
        self._module = module

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if isinstance(value, types.ModuleType) and value.__name__.split(".")[0] == "jaxvis":
            return _Docs(value)
        if value is jaxvis.load_model:
            return _cached_model
        key = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
        return _small(value, SMALL[key]) if key in SMALL else value


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    module = importlib.__import__(name, globals, locals, fromlist, level)
    if name.split(".")[0] == "jaxvis" and not level:
        return _Docs(module if fromlist else sys.modules["jaxvis"])
    return module


_NAMESPACES: dict[Path, tuple[int, dict]] = {}


def _run_page_until(block: Block) -> None:
    """Run the page's python blocks up to and including `block`, once each, in one namespace."""
    blocks = [b for b in PY_BLOCKS if b.page == block.page]
    done, ns = _NAMESPACES.get(block.page, (0, {"__name__": "__docs__",
                                                 "__builtins__": dict(vars(builtins), __import__=_import)}))
    for b in blocks[done:blocks.index(block) + 1]:
        if b.not_run is None:
            exec(compile(b.code, b.where, "exec"), ns)  # noqa: S102  the documented code itself
        done += 1
        _NAMESPACES[block.page] = (done, ns)


def _slow(code: str) -> bool:
    return any(re.search(rf"\b{t}\(", code) for t in SLOW_TOOLS)


RUN_BLOCKS = [pytest.param(b, id=_id(b), marks=[pytest.mark.slow] if _slow(b.code) else [])
              for b in PY_BLOCKS if b.not_run is None]


@pytest.mark.parametrize("block", RUN_BLOCKS)
def test_python_block_runs(block, workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    _run_page_until(block)


def _argv(cmd: str) -> list[str]:
    words = []
    for w in shlex.split(cmd)[1:]:
        words += sorted(glob.glob(w)) or [w] if any(c in w for c in "*?[") else [w]
    return words + SMALL_CLI.get(words[0], [])


RUN_LINES = [pytest.param(b, line, cmd, id=_id(b, line),
                          marks=[pytest.mark.slow] if shlex.split(cmd)[1] in SLOW_COMMANDS else [])
             for b, line, cmd in CLI_LINES if b.not_run is None and _kind(cmd) == "jaxvis"]


@pytest.mark.parametrize("block,line,cmd", RUN_LINES)
def test_command_line_runs(block, line, cmd, workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    monkeypatch.setattr("jaxvis.nets.network.load_model", _cached_model)
    rc = main(_argv(cmd))
    err = capsys.readouterr().err
    assert rc == 0, f"{_id(block, line)}: {cmd!r} exited {rc}: {err}"
    out = dict(zip(shlex.split(cmd), shlex.split(cmd)[1:])).get("--out")
    if out:
        assert Path(out).exists(), f"{_id(block, line)}: {cmd!r} did not write {out}"


SCRIPT_LINES = sorted({(f"{p.relative_to(REPO)}:{ln}", span) for p in PAGES for ln, span in _inline(p)
                       if _kind(span) == "script"}
                      | {(_id(b, ln), cmd) for b, ln, cmd in CLI_LINES if _kind(cmd) == "script"})

_PARSE_ONLY = r"""
import argparse, json, runpy, sys
class Parsed(BaseException): pass
real = argparse.ArgumentParser.parse_args
def parse_only(self, args=None, namespace=None):
    real(self, args, namespace)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_only
out = {}
for where, argv in json.loads(sys.argv[1]):
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
        out[where] = "ran without parsing its arguments"
    except Parsed:
        out[where] = "ok"
    except SystemExit as e:
        out[where] = f"exit {e.code}"
    except BaseException as e:
        out[where] = f"{type(e).__name__}: {e}"
print("\n" + json.dumps(out))
"""


def test_script_lines_parse_with_their_own_parser():
    """`python scripts/x.py --opt ...` lines: the script's own argparse accepts the documented options."""
    # `[--out OUT_DIR]` in a usage line: an optional option, shown with a placeholder value
    todo = [(w, shlex.split(re.sub(r"[\[\]]", " ", c.split(" #")[0]))[1:]) for w, c in SCRIPT_LINES]
    assert todo
    for _, argv in todo:
        assert (REPO / argv[0]).is_file(), f"{argv[0]} does not exist"
    r = subprocess.run([sys.executable, "-c", _PARSE_ONLY, json.dumps(todo)], cwd=REPO, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    bad = {w: v for w, v in got.items() if v != "ok"}
    assert not bad, f"{bad}\n{r.stderr[-2000:]}"

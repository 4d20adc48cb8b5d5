"""Long jobs under faults: the gallery and top_patches killed with SIGKILL at random moments and finished,
a full disk mid-run, two writers on one site or cache, foreign and damaged caches.

The kill tests run in one helper process that imports JAX once and forks a child per run (no JAX
backend exists in the helper before the fork; each child starts its own), killing it at a random
moment of a run; a persistent compilation cache in the test's tmp folder keeps each child's start
short. The default version kills each job 10 times; the slow-marked one 30 times over larger jobs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxvis
from jaxvis.errors import GalleryError, LockedError, OutputError, PatchesError
from jaxvis.patches import top_patches
from jaxvis.site import gallery

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tiny_nets as T  # noqa: E402

GALLERY = dict(layers=["conv1", "logits"], units=3, block=1, steps=4, image_size=32, k=3, progress=False)
PATCHES = dict(layers=["relu1", "conv2", "logits"], k=3, batch_size=4, progress=False)

# The helper: imports once, then for each run forks a child that does the job; the helper kills it with
# SIGKILL at a random moment (stratified over the length of an uninterrupted run) and finally lets one
# run finish. It prints one JSON line per run.
HELPER = textwrap.dedent("""
    import json, os, random, shutil, signal, sys, time
    sys.path.insert(0, {tests!r})
    import jax
    jax.config.update("jax_compilation_cache_dir", {cache!r})
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import numpy as np
    import jaxvis.patches.scan
    from jaxvis.errors import LockedError
    from jaxvis.patches import top_patches
    from jaxvis.site import gallery
    import tiny_nets as T
    jaxvis.patches.scan.CACHE_SECONDS = 0.0  # the cache after every batch: kills land between saves
    cfg = json.loads(sys.argv[1])

    def job(out):
        net = T.pure_net()
        if cfg["what"] == "gallery":
            gallery(net, out, images=cfg["photos"], **cfg["kw"])
        else:
            os.makedirs(out, exist_ok=True)  # the cache's folder: jaxvis creates none above an output
            r = top_patches(net, cfg["photos"], cache=os.path.join(out, "cache.npz"), **cfg["kw"])
            os.makedirs(os.path.join(out, "result"), exist_ok=True)
            for l in r.layers:
                for name in ("value", "image", "position", "means"):
                    np.save(os.path.join(out, "result", f"{{l}}.{{name}}.npy"), getattr(r, name)[l])
            with open(os.path.join(out, "result", "skipped.json"), "w") as fh:
                json.dump([[s.index, s.source, s.reason] for s in r.skipped] + [r.n_images], fh)

    def run(out, kill_after=None):
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                job(out)
            except LockedError:
                code = 3
            except BaseException:
                import traceback; traceback.print_exc()
                code = 1
            os._exit(code)
        if kill_after is not None:
            while time.monotonic() - t0 < kill_after:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    return {{"killed": False, "exit": 0, "seconds": time.monotonic() - t0}}
                time.sleep(0.005)
            os.kill(pid, signal.SIGKILL)
        _, st = os.waitpid(pid, 0)
        return {{"killed": os.WIFSIGNALED(st), "exit": os.waitstatus_to_exitcode(st), "seconds": time.monotonic() - t0}}

    rng = random.Random(cfg["seed"])
    print(json.dumps(dict(run(cfg["reference"]), phase="reference")), flush=True)  # fills the compilation cache
    t_ref = run(cfg["reference"] + "-again")["seconds"]  # a run with a warm compilation cache
    kills = 0
    while kills < cfg["kills"]:
        r = run(cfg["out"], kill_after=t_ref * rng.random())
        kills += r["killed"]
        print(json.dumps(dict(r, phase="kill" if r["killed"] else "finished-before-the-kill")), flush=True)
        if not r["killed"]:  # the job was done: start it over, so that every kill lands inside a job
            shutil.rmtree(cfg["out"])
    print(json.dumps(dict(run(cfg["out"]), phase="finish")), flush=True)
    if cfg.get("race"):  # two writers at once on a fresh site: each finishes or is refused by the lock
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                try:
                    job(cfg["race"]); os._exit(0)
                except LockedError:
                    os._exit(3)
                except BaseException:
                    os._exit(1)
            pids.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
        print(json.dumps({{"phase": "race", "codes": codes}}), flush=True)  # one finished: the site is whole
""")


def write_photos(folder: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (T.SIZE + 8, T.SIZE + 4, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


def files(root: Path, skip=("cache.npz",)) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip and not p.name.startswith("lock.")}


def run_helper(tmp: Path, what: str, kw: dict, kills: int, n_photos: int, race: bool = False) -> list[dict]:
    cfg = {"what": what, "kw": kw, "kills": kills, "seed": 1, "photos": str(write_photos(tmp / "photos", n_photos)),
           "reference": str(tmp / "reference"), "out": str(tmp / "killed"), "race": str(tmp / "race") if race else None}
    script = HELPER.format(tests=str(HERE), cache=str(tmp / "jax-cache"))
    env = dict(os.environ, PYTHONPATH=str(HERE.parent), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(cfg)], capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def check_killed_runs(tmp: Path, log: list[dict], kills: int) -> None:
    by = {r["phase"]: r for r in log}
    assert by["reference"]["exit"] == 0 and by["finish"]["exit"] == 0, log
    assert sum(r["killed"] for r in log if r["phase"] == "kill") == kills, log
    assert files(tmp / "killed") == files(tmp / "reference")  # byte for byte, every file
    assert files(tmp / "reference") == files(tmp / "reference-again")


def test_gallery_killed_ten_times_then_finished_is_byte_identical(tmp_path):
    kw = dict(GALLERY, layers=["conv1"], units=4)  # one compiled program: each restart is cheap, 4 blocks to cut
    log = run_helper(tmp_path, "gallery", kw, kills=10, n_photos=12, race=True)
    check_killed_runs(tmp_path, log, 10)
    assert files(tmp_path / "killed")["index.json"]  # a whole site, with its data columns
    race = next(r for r in log if r["phase"] == "race")
    assert set(race["codes"]) <= {0, 3} and 0 in race["codes"], race  # finished, or refused by the lock
    assert files(tmp_path / "race") == files(tmp_path / "reference")


def test_top_patches_killed_ten_times_then_finished_is_byte_identical(tmp_path):
    log = run_helper(tmp_path, "patches", PATCHES, kills=10, n_photos=40)
    check_killed_runs(tmp_path, log, 10)


@pytest.mark.slow
def test_long_chaos_thirty_kills_each(tmp_path):
    kw = dict(GALLERY, layers=["conv1", "conv2", "logits"], units=6, steps=16)
    log = run_helper(tmp_path / "g", "gallery", kw, kills=30, n_photos=64)
    check_killed_runs(tmp_path / "g", log, 30)
    log = run_helper(tmp_path / "p", "patches", dict(PATCHES, batch_size=2), kills=30, n_photos=200)
    check_killed_runs(tmp_path / "p", log, 30)


# ------------------------------------------------------------------ a full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 160 kB tmpfs (mount as root); skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_mid_gallery_is_a_clean_error_and_resumable(tmp_path, small_disk):
    net = T.pure_net()
    photos = write_photos(tmp_path / "photos", 12)
    kw = GALLERY
    ref = tmp_path / "reference"
    gallery(net, ref, images=photos, **kw)
    size = sum(-(-len(b) // 4096) * 4096 for b in files(ref).values())  # tmpfs counts whole pages
    assert size > 160_000, f"the site ({size} bytes) must not fit the small disk"
    with pytest.raises(OutputError, match="disk is full"):
        gallery(net, small_disk / "site", images=photos, **kw)
    left = [p for p in (small_disk / "site").rglob("*.tmp")]
    assert not left, left  # no half-written file is left behind
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    r = gallery(net, small_disk / "site", images=photos, **kw)  # the same command, once there is space
    assert r.complete and r.skipped > 0  # the blocks written before the disk filled were kept
    assert files(small_disk / "site") == files(ref)


def test_full_disk_while_writing_the_patches_cache(tmp_path, monkeypatch):
    """A write shim: the cache's writer fails with ENOSPC after the first save; the error is clean and the
    cache last written stays whole, so the same call continues from it."""
    net = T.pure_net()
    photos = write_photos(tmp_path / "photos", 20)
    ref = top_patches(net, photos, **PATCHES)
    cache = tmp_path / "state.npz"
    import jaxvis.patches.scan as scan
    monkeypatch.setattr(scan, "CACHE_SECONDS", 0.0)
    real, calls = np.savez, []

    def savez(fh, **arrays):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fh, **arrays)

    monkeypatch.setattr(scan.np, "savez", savez)
    with pytest.raises(OutputError, match="disk is full; nothing was written"):
        top_patches(net, photos, cache=cache, **PATCHES)
    assert cache.exists() and not list(tmp_path.glob(".state.npz.*"))
    monkeypatch.setattr(scan.np, "savez", real)
    again = top_patches(net, photos, cache=cache, **PATCHES)
    for l in ref.layers:
        np.testing.assert_array_equal(again.image[l], ref.image[l])
        np.testing.assert_array_equal(again.value[l], ref.value[l])
        np.testing.assert_array_equal(again.means[l], ref.means[l])


# ------------------------------------------------------------------ two writers

HOLDER = """
import sys, time
from jaxvis.imaging.fileio import exclusive
with exclusive(sys.argv[1], "test"):
    print("LOCKED", flush=True)
    time.sleep(600)
"""


def test_a_killed_writers_half_written_cache_is_removed_by_the_next_run(tmp_path):
    """SIGKILL runs no `finally`: a kill inside the cache's atomic write leaves its temporary file (seen in the
    10-kill chaos test on a CI run). The next run, once it holds the cache's lock, removes it; other files stay."""
    net = T.pure_net()
    photos = write_photos(tmp_path / "photos", 8)
    cache = tmp_path / "state.npz"
    stale = [tmp_path / ".state.npz.k1ll3d_x.tmp", tmp_path / ".state.npz.a_b0c9z7.tmp"]  # mkstemp's 8 characters
    keep = [tmp_path / ".other.npz.k1ll3d_x.tmp", tmp_path / "state.npz.tmp", tmp_path / ".state.npz.mine.tmp"]
    for p in stale + keep:
        p.write_bytes(b"PK\x03\x04half")
    top_patches(net, photos, cache=cache, **PATCHES)
    assert cache.exists() and not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    site = tmp_path / "site"  # the gallery: a killed run's half-written PNG in its tree, removed by the next run
    gallery(net, site, images=photos, **dict(GALLERY, layers=["conv1"], units=1))
    half = site / "img" / "conv1" / ".0.png.k1ll3d_x.tmp"
    half.write_bytes(b"\x89PNG half")
    notes = site / ".notes.tmp"  # a user's own file in the site: not atomic_path's name, kept
    notes.write_bytes(b"mine")
    gallery(net, site, images=photos, **dict(GALLERY, layers=["conv1"], units=1))
    assert not half.exists() and notes.exists() and list(site.rglob("*.tmp")) == [notes]


def _hold(lock: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert p.stdout is not None and p.stdout.readline().strip() == "LOCKED"
    return p


def test_a_second_writer_is_refused_by_pid_and_a_dead_ones_lock_is_taken_over(tmp_path):
    net = T.pure_net()
    photos = write_photos(tmp_path / "photos", 8)
    site = tmp_path / "site"
    holder = _hold(site / ".jaxvis-gallery" / "lock.process0of1")
    try:
        with pytest.raises(LockedError, match=rf"in use by process {holder.pid} on .*one process at a time"):
            gallery(net, site, **GALLERY)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (site / ".jaxvis-gallery" / "lock.process0of1").exists()  # a stale lock file, its holder dead
    r = gallery(net, site, **GALLERY)
    assert r.complete and not (site / ".jaxvis-gallery" / "lock.process0of1").exists()

    cache = tmp_path / "state.npz"
    holder = _hold(Path(f"{cache}.lock"))
    try:
        with pytest.raises(LockedError, match=f"top-patches cache .*process {holder.pid}"):
            top_patches(net, photos, cache=cache, **PATCHES)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    top_patches(net, photos, cache=cache, **PATCHES)


# ------------------------------------------------------------------ foreign and damaged caches

def test_foreign_and_damaged_caches_are_refused_by_name_and_rebuilt_only_when_asked(tmp_path):
    net, other = T.pure_net(), jaxvis.from_function(T.apply, T.params(seed=1), input_size=T.SIZE,
                                                    classes=T.CLASSES, preprocess=T.preprocess, name="tiny-jax")
    photos = write_photos(tmp_path / "photos", 12)
    cache = tmp_path / "state.npz"
    ref = top_patches(net, photos, cache=cache, **PATCHES)
    with pytest.raises(PatchesError, match="other settings.*params_sha256.*rebuild=True"):  # same name, other weights
        top_patches(other, photos, cache=cache, **PATCHES)
    with pytest.raises(PatchesError, match="other settings.*batch_size: cache 4, now 8"):
        top_patches(net, photos, cache=cache, **dict(PATCHES, batch_size=8))
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(PatchesError, match="not a readable top-patches cache, e.g. truncated.*--rebuild"):
        top_patches(net, photos, cache=cache, **PATCHES)
    assert len(cache.read_bytes()) == len(data) // 2  # refused: left as it was
    again = top_patches(net, photos, cache=cache, rebuild=True, **PATCHES)
    for l in ref.layers:
        np.testing.assert_array_equal(again.image[l], ref.image[l])

    site = tmp_path / "site"
    gallery(net, site, images=photos, **GALLERY)
    reference = files(site)
    block = site / ".jaxvis-gallery" / "conv1" / "block_00001.json"
    block.write_text(block.read_text()[:20])
    with pytest.raises(GalleryError, match=re.escape(f"block state file '{block}' is damaged") + ".*--rebuild"):
        gallery(net, site, images=photos, **GALLERY)
    r = gallery(net, site, images=photos, rebuild=True, **GALLERY)
    assert r.rendered == 1 and files(site) == reference  # the damaged block alone rendered again
    other = dict(GALLERY, units=2)
    with pytest.raises(GalleryError, match="other settings.*rebuild=True"):
        gallery(net, site, images=photos, **other)
    assert files(site) == reference  # refused: untouched
    (site / "mine.txt").write_text("the user's own file")
    r = gallery(net, site, images=photos, rebuild=True, **other)
    assert r.complete and r.rendered == 4 and r.skipped == 0
    left = files(site)
    assert left["mine.txt"] == b"the user's own file"  # the user's file is kept; the old site's third units are gone
    assert "img/conv1/2.png" in reference and "img/conv1/2.png" not in left and "img/conv1/1.png" in left

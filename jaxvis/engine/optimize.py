"""The one feature-visualization loop: every unit in one `vmap`, steps in `lax.scan`, chunked and sharded.

For U units (objectives of one form, stacked), each with `batch` images:

* params U×… (from `Param.init` of each unit's key), optimizer state U×… (`vmap(opt.init)`);
* one step = `vmap` over units of value_and_grad of
  `−Σ objective(net(255 · transform(key, image_fn(params))) ∪ {"input": image})`
  (+ `anchor`·‖latent − start's latent‖², the image before its output function: feature accentuation's pull
  towards the photo, in the parameters' space), an optax update, and an optional projection (clip, periodic
  blur); transforms that make several views of an image (MACO's crops) have each view scored and the image's
  value is their mean;
* with `transparency`, Σ over steps of |∂loss/∂image| per image (MACO's transparency map);
* steps run in `lax.scan` segments inside one jit (cached in the network's
  :class:`~jaxvis.nets.protocol.Cache`), the first `redirected_relu_steps` with RedirectedReLU;
* units are chunked to a memory budget and each chunk is sharded over the devices' unit axis;
* multi-level runs (MATLAB's pyramid) resize pixel parameters between levels.

Randomness comes from `fold_in(PRNGKey(seed), unit index)`, so results do not depend on
chunking or sharding: a batch equals its units run one at a time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..errors import VisualizationError
from ..imaging.progress import Progress
from .objectives import INPUT, Objective, stack
from .param import Param
from .transforms import Compose, gaussian_blur

# Budget for one chunk's activations when batch_size is not given: host memory on CPU, per device elsewhere.
CPU_BUDGET_BYTES = 2 << 30
ACCELERATOR_MEMORY_FRACTION = 0.4
SEGMENT = 32  # steps per compiled segment: the progress granularity


@dataclasses.dataclass(frozen=True)
class Projection:
    """What happens to pixel parameters after each update: clip into [lo, hi]; blur every n steps."""

    clip: tuple[float, float] | None = None
    blur_every: int = 0
    blur_sigma: float = 0.5

    def __call__(self, p: jax.Array, step: jax.Array) -> jax.Array:
        if self.blur_every:  # p is units×batch×H×W×C
            blurred = gaussian_blur(p.reshape(-1, *p.shape[-3:]), self.blur_sigma).reshape(p.shape)
            p = jnp.where((step + 1) % self.blur_every == 0, blurred, p)
        if self.clip is not None:
            p = jnp.clip(p, *self.clip)
        return p


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Everything a compiled optimisation step depends on (hashable: the jit cache key).

    Attributes:
      param: the image parameterisation (at one pyramid level's size).
      transforms: the random transforms applied before the network.
      optimizer: the optax optimizer.
      layers: the network layers the objectives read.
      projection: what happens to pixel parameters after each update.
      anchor: weight of ‖latent image − the start's latent image‖² in the loss (`Param.anchor_weights`).
      transparency: accumulate Σ |∂loss/∂image| over the steps (MACO's transparency map).
    """

    param: Param
    transforms: Compose
    optimizer: optax.GradientTransformation
    layers: tuple[str, ...]
    projection: Projection = Projection()
    anchor: float = 0.0
    transparency: bool = False


def _image_loss(net, config: StepConfig, relu: str):
    """`(net_params, image, obj, key, progress) -> (−Σ objective, mean objective)` of one unit's images."""
    fn = net.function(config.layers, relu=relu) if config.layers else None
    copies = config.transforms.copies

    def loss(net_params, img, obj: Objective, key, progress):
        views = config.transforms(key, img, progress)
        acts = dict(fn(net_params, 255.0 * views)) if fn is not None else {}
        acts[INPUT] = jnp.repeat(img, copies, axis=0) if copies > 1 else img  # one row per view
        v = obj(acts)
        if copies > 1:
            v = v.reshape(-1, copies).mean(axis=1)
        return -jnp.sum(v), jnp.mean(v)

    return loss


def _loss(net, config: StepConfig, relu: str):
    """`(net_params, p, obj, key, progress, p0) -> ((loss, mean objective), (∂loss/∂p, ∂loss/∂image))`."""
    image_loss = _image_loss(net, config, relu)

    def loss(net_params, p, obj: Objective, key, progress, p0):
        img, pull = jax.vjp(config.param.image, p)
        (l, v), g_img = jax.value_and_grad(image_loss, argnums=1, has_aux=True)(net_params, img, obj, key, progress)
        (g,) = pull(g_img)
        if config.anchor:
            d = p - p0
            wd = jnp.asarray(config.param.anchor_weights(), jnp.float32) * d
            l, g = l + config.anchor * jnp.sum(d * wd), g + 2.0 * config.anchor * wd
        return (l, v), (g, g_img)

    return loss


def _segment(net, config: StepConfig, relu: str, n_steps: int, obj_def):
    """The cached jitted `(net_params, p, state, acc, obj, unit_keys, step0, lr, total, p0) -> (p, state, acc,
    values n_steps×U)`; `acc` is the transparency sum (a placeholder without `config.transparency`).

    `lr` multiplies the optimizer's updates and is traced: other step sizes reuse the compiled code;
    `total` (the run's step count, traced) gives scheduled transforms their progress.
    """
    def make():
        vg = jax.vmap(_loss(net, config, relu), in_axes=(None, 0, 0, 0, None, 0))
        update = jax.vmap(config.optimizer.update)

        def run(net_params, p, state, acc, obj, unit_keys, step0, lr, total, p0):
            def body(carry, i):
                p, s, acc = carry
                keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(unit_keys, step0 + i)
                progress = (step0 + i) / jnp.maximum(total - 1.0, 1.0)
                (_, v), (g, g_img) = vg(net_params, p, obj, keys, progress, p0)
                upd, s = update(g, s, p)
                p = config.projection(optax.apply_updates(p, jax.tree.map(lambda u: lr * u, upd)), step0 + i)
                if config.transparency:
                    acc = acc + jnp.abs(g_img)
                return (p, s, acc), v

            (p, state, acc), vs = lax.scan(body, (p, state, acc), jnp.arange(n_steps))
            return p, state, acc, vs

        return run

    return net.cache.jit(("visualize", "step", config, relu, int(n_steps), obj_def), make)


def _segments(steps: int, redirected: int) -> list[tuple[int, str]]:
    """(length, relu mode) of each compiled call: the redirected steps, then equal segments."""
    out = []
    if redirected > 0:
        r = min(redirected, steps)
        out.append((r, "redirected"))
        steps -= r
    seg = redirected if redirected > 0 else SEGMENT
    while steps > 0:
        out.append((min(seg, steps), "standard"))
        steps -= out[-1][0]
    return out


# -- memory ---------------------------------------------------------------------------------
def _jaxpr_bytes(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            shape, dtype = getattr(v.aval, "shape", None), getattr(v.aval, "dtype", None)
            if shape is not None and dtype is not None and hasattr(dtype, "itemsize"):
                total += math.prod(shape) * dtype.itemsize
        for prm in eqn.params.values():
            for sub in (prm if isinstance(prm, (list, tuple)) else (prm,)):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += _jaxpr_bytes(inner)
    return total


def bytes_per_unit(net, config: StepConfig, obj1: Objective) -> int:
    """Upper estimate of one unit's memory in a step: every intermediate of value_and_grad (traced only)."""
    loss = _loss(net, config, "standard")
    p = jax.eval_shape(config.param.init, jax.random.PRNGKey(0))
    jaxpr = jax.make_jaxpr(loss)(net.params, p, obj1, jax.random.PRNGKey(0), 0.0, p)
    return max(_jaxpr_bytes(jaxpr.jaxpr), 1)


def memory_budget(devices: Sequence) -> int:
    d = devices[0]
    if d.platform == "cpu":
        return CPU_BUDGET_BYTES
    try:
        limit = d.memory_stats()["bytes_limit"]
    except Exception:  # platforms without memory_stats
        limit = 8 << 30
    return int(limit * ACCELERATOR_MEMORY_FRACTION) * len(devices)


def choose_batch_size(n: int, per_unit: int, budget: int, n_devices: int) -> int:
    """Units per chunk: as many as the budget allows, spread evenly, a multiple of the device count."""
    most = max(1, budget // per_unit)
    b = math.ceil(n / math.ceil(n / most))
    return max(n_devices, math.ceil(b / n_devices) * n_devices)


def _to_host(x) -> np.ndarray:
    if not getattr(x, "is_fully_addressable", True):  # a global array spans other hosts' devices
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


# -- the loop -------------------------------------------------------------------------------
def _hw(hw) -> tuple[int, int]:
    return int(hw[0]), int(hw[1])


@dataclasses.dataclass
class RunResult:
    """Raw output of :func:`optimize`: images U×B×H×W×3 (0..1 scale), trace levels×steps×U, and with
    `config.transparency` the summed |∂loss/∂image| U×B×H×W×3 (of the last level)."""

    images: np.ndarray
    trace: np.ndarray | list[np.ndarray]  # a list when the levels have different step counts
    sizes: list[tuple[int, int]]
    batch_size: int
    transparency: np.ndarray | None = None


def optimize(net, objectives: Sequence[Objective], config: StepConfig, *, levels: Sequence[tuple[tuple[int, int], int]],
             learning_rate: float = 1.0, seed: int = 0, unit_ids: Sequence[int] | None = None,
             start: np.ndarray | None = None, redirected_relu_steps: int = 0,
             batch_size: int | None = None, devices: Sequence | None = None, progress: bool | None = None,
             label: str = "visualize",
             on_level: Callable[[int, np.ndarray], None] | None = None) -> RunResult:
    """Optimise one image set per objective (see the module docstring).

    Args:
      net: a protocol network.
      objectives: resolved objectives of one form (one unit each).
      config: parameterisation (at the first level's size), transforms, optimizer, layers, projection.
      levels: [((H, W), steps), …]; more than one level needs `param.kind == 'pixel'`.
      learning_rate: multiplies the optimizer's updates (traced: changing it does not recompile).
      seed: randomness of starts and transforms.
      unit_ids: one integer per unit naming its random stream (default its position); give ids
        derived from what the unit is (visualize uses its label) and a unit run alone equals it
        run in a batch.
      start: optional start images, 0..1 scale, 1×B×H×W×3 (shared) or U×B×H×W×3 (pixel params only).
      redirected_relu_steps: steps at the start of the first level with RedirectedReLU; skipped (standard
        ReLUs throughout) on networks whose `relu_rules` lack 'redirected', e.g. a `from_function`
        network whose function takes no `relu` keyword.
      batch_size: units per compiled call (None: from the memory estimate); rounded to the device count.
      devices: devices the unit axis is sharded over (default all).
      progress: a progress bar over all levels and chunks: None (default) where stderr is a terminal or a
        notebook, True always, False never.
      on_level: `on_level(k, trace steps×U)` after each level (MATLAB's verbose table).
    """
    u = len(objectives)
    if u == 0:
        raise VisualizationError("nothing to visualise: the objective list is empty")
    if len(levels) > 1 and config.param.kind != "pixel":
        raise VisualizationError("multi-level (pyramid) runs need param='pixel'")
    devices = list(jax.devices() if devices is None else devices)
    nd = len(devices)
    obj_all = stack(objectives)
    obj_def = jax.tree.structure(objectives[0])
    last_config = dataclasses.replace(config, param=dataclasses.replace(config.param, size=_hw(levels[-1][0])))
    if batch_size is None:
        batch_size = choose_batch_size(u, bytes_per_unit(net, last_config, objectives[0]), memory_budget(devices), nd)
    else:
        batch_size = max(nd, math.ceil(int(batch_size) / nd) * nd)
    batch_size = min(batch_size, math.ceil(u / nd) * nd)
    mesh = Mesh(np.array(devices), ("units",))
    shard, repl = NamedSharding(mesh, P("units")), NamedSharding(mesh, P())
    net_params = jax.device_put(net.params, repl)
    redirect = redirected_relu_steps if "redirected" in net.relu_rules else 0

    root = jax.random.PRNGKey(int(seed) % (2 ** 32))
    ids = np.arange(u) if unit_ids is None else np.asarray(unit_ids, np.uint32)
    unit_keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.asarray(ids, jnp.uint32))
    init_keys, step_keys = jax.vmap(jax.random.split, out_axes=1)(unit_keys)
    if start is not None:
        start = np.asarray(start, np.float32)
        if start.ndim != 5 or start.shape[0] not in (1, u) or start.shape[1:] != config.param.shape:
            raise VisualizationError(f"start images must be 1×{'×'.join(map(str, config.param.shape))} or "
                                     f"{u}×…, got {start.shape}")
        start_p = jax.vmap(config.param.from_image)(jnp.asarray(start))
        params = jnp.broadcast_to(start_p, (u, *start_p.shape[1:]))
    else:
        params = jax.vmap(config.param.init)(init_keys)
    if config.anchor and len(levels) > 1:
        raise VisualizationError("an anchor to the start (feature accentuation) needs a single level")
    params0 = params
    total_steps = float(sum(s for _, s in levels))

    n_chunks = math.ceil(u / batch_size)
    total = sum(s for _, s in levels) * u * config.param.batch
    bar = Progress(total, label, "image-steps", enabled=progress)
    traces, sizes, step0 = [], [_hw(hw) for hw, _ in levels], 0
    try:
        for k, (hw, steps) in enumerate(levels):
            level_config = dataclasses.replace(config, param=dataclasses.replace(config.param, size=_hw(hw)))
            if params.shape[-3:-1] != tuple(hw) and level_config.param.kind == "pixel":
                params = jax.image.resize(params, (*params.shape[:-3], *hw, params.shape[-1]), "bilinear")
            segs = _segments(steps, redirect if k == 0 else 0)
            level_trace = np.empty((steps, u), np.float32)
            new_params, new_acc = [], []
            for ci in range(n_chunks):
                lo, hi = ci * batch_size, min(u, (ci + 1) * batch_size)
                idx = np.r_[lo:hi, np.full(batch_size - (hi - lo), lo)]  # pad with copies of the first unit
                put = lambda a, idx=idx: jax.device_put(np.asarray(a)[idx], shard)  # noqa: E731
                p = put(params)
                obj = jax.tree.map(put, obj_all)
                keys = put(step_keys)
                state = net.cache.jit(("visualize", "init", level_config.optimizer, tuple(d.id for d in devices)),
                                      lambda: jax.vmap(level_config.optimizer.init),
                                      out_shardings=shard)(p)
                p0 = put(params0) if config.anchor else p
                acc = jax.device_put(np.zeros((len(idx), *level_config.param.shape) if config.transparency
                                              else (len(idx), 1), np.float32), shard)
                done = 0
                for n, relu in segs:
                    fn = _segment(net, level_config, relu, n, obj_def)
                    p, state, acc, vs = fn(net_params, p, state, acc, obj, keys, jnp.int32(step0 + done),
                                           jnp.float32(learning_rate), jnp.float32(total_steps), p0)
                    level_trace[done:done + n, lo:hi] = _to_host(vs)[:, : hi - lo]
                    done += n
                    bar.update(n * (hi - lo) * config.param.batch)
                new_params.append(_to_host(p)[: hi - lo])
                new_acc.append(_to_host(acc)[: hi - lo])
            params = np.concatenate(new_params)  # type: ignore[assignment]  # host copy between levels; jnp ops accept it
            step0 += steps
            traces.append(level_trace)
            if on_level is not None:
                on_level(k, level_trace)
    finally:
        bar.close()
    final = dataclasses.replace(config.param, size=_hw(levels[-1][0]))
    images = np.asarray(net.cache.jit(("visualize", "image", final), lambda: jax.vmap(final.image))(jnp.asarray(params)))
    return RunResult(images, np.stack(traces) if len({s for _, s in levels}) == 1 else traces, sizes, batch_size,
                     np.concatenate(new_acc) if config.transparency else None)

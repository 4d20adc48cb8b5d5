"""`Network`: a step graph + loaded weights + layer table + class names, and `load_model`.

The model is an NNX module built abstractly (`nnx.eval_shape`) and split once; the
pure function `net.apply(params, images, layers)` merges the graph definition with
`params` under `jax.jit`, so visualisation code can `jit`/`vmap`/`grad` through it
with the weights as arguments (not baked-in constants).
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
import numpy as np

from ..errors import LayerError, MissingWeightsError, ModelError, WeightsNotFoundError
from .steps import LEARNABLE, GraphNet, Step, param_key
from .graph import LayerGraph, LayerNode, conv_macs, resolve_pads
from .layers import LayerTable, describe
from .models.registry import MODELS, build_steps
from .ops import RELU_MODES
from .protocol import LayerRef, NetBase, shape_errors
from .weights import check_arrays, read_weights


def weight_search_path() -> list[Path]:
    """Folders searched for `<model>.h5`, first match wins.

    1. `$JAXVIS_WEIGHTS` (os.pathsep-separated), 2. `~/.cache/jaxvis/weights` (where
    `jaxvis convert` writes by default), 3. the weights shipped with the package.
    """
    dirs = [Path(p) for p in os.environ.get("JAXVIS_WEIGHTS", "").split(os.pathsep) if p]
    dirs.append(user_weight_dir())
    dirs.append(shipped_weight_dir())
    return dirs


def user_weight_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxvis" / "weights"


def shipped_weight_dir() -> Path:
    """`weights/` of a source checkout, or `jaxvis/weights` inside an installed wheel."""
    try:
        installed = Path(str(resources.files("jaxvis") / "weights"))
        if installed.is_dir():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "weights"


class Network(NetBase):
    """A pretrained network with named layers.

    Attributes:
      name: registry name or the weight file's model name.
      layers: :class:`LayerTable` in MATLAB order (print it for MATLAB's listing).
      classes: class names, index = class id.
      input_size: (H, W) the weights were trained at.
      params: weights as a nested dict, layer name → {'kernel', 'bias'} (see :meth:`param_path`),
        the first argument of :meth:`apply`.
      meta: the weight file's metadata (source, licence, sha256, preprocessing, …).
    """

    def __init__(self, name: str, path: Path, arrays, meta: dict, how_to_get: str = ""):
        self.name, self.path, self.meta = name, Path(path), meta
        self.steps = build_steps(meta["architecture"], meta["preprocessing"])
        self.classes: list[str] = list(meta["classes"])
        self.input_size: tuple[int, int] = tuple(meta["input_size"])
        self.layers = LayerTable(self.steps, self.classes, self.input_size)
        self.relu_rules: frozenset[str] = frozenset(RELU_MODES)
        self._by_name = {s.name: s for s in self.steps}
        self._how_to_get = how_to_get
        model = nnx.eval_shape(lambda: GraphNet(self.steps, rngs=nnx.Rngs(0)))
        self._graphdef, self._abstract = nnx.split(model)
        expected = {s.name: {p: v.shape for p, v in nnx.to_pure_dict(self._abstract)[param_key(s.name)].items()}
                    for s in self.steps if s.kind in LEARNABLE}
        check_arrays(path, arrays, expected, meta.get("absent_layers", []))
        self.loaded = frozenset(arrays)
        self.params = {param_key(l): {p: jnp.asarray(a) for p, a in ps.items()} for l, ps in arrays.items()}
        # Pre-softmax class scores: the input of the softmax layer ('pool10', 'fc8').
        soft = [st for st in self.steps if st.kind == "softmax"]
        self.logits_layer: str | None = soft[0].inputs[0] if soft else None

    def __repr__(self) -> str:
        return (f"Network({self.name!r}, architecture={self.meta['architecture']!r}, "
                f"input_size={self.input_size}, layers={len(self.layers)}, weights={str(self.path)!r})")

    # -- layers ---------------------------------------------------------------
    def layer_name(self, layer: LayerRef) -> str:
        """Name of a layer given by name or 0-based index (LayerError with close matches)."""
        return self.layers[layer].name

    def param_path(self, layer: LayerRef) -> str:
        """Key of a learnable layer's weights in `params`: the layer's own name, the one key scheme of
        layer names and parameters (`net.params[net.param_path("fire2-squeeze1x1")]["kernel"]`).

        Args:
          layer: layer name or 0-based index.

        Returns:
          The key into `params` (LayerError for a layer without weights, naming those with some).
        """
        name = self.layer_name(layer)
        if self._by_name[name].kind not in LEARNABLE:
            learnable = [s.name for s in self.steps if s.kind in LEARNABLE]
            raise LayerError(f"layer {name!r} ({self._by_name[name].kind}) has no weights; layers with weights: "
                             f"{', '.join(learnable[:8])}{', …' if len(learnable) > 8 else ''}")
        return param_key(name)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.layers.names)

    def ancestors(self, name: str) -> set[str]:
        """All layers `name` depends on, itself included."""
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self._by_name[n].inputs)
        return seen

    def require_weights(self, layers: Sequence[str]) -> None:
        """Raise MissingWeightsError if computing `layers` needs weights that are not loaded."""
        need = set().union(*(self.ancestors(l) for l in layers))
        missing = [s.name for s in self.steps if s.name in need and s.kind in LEARNABLE and s.name not in self.loaded]
        if missing:
            asked = ", ".join(repr(l) for l in layers)
            raise MissingWeightsError(
                f"{asked} of {self.name!r} needs the weights of {', '.join(missing)}, which "
                f"{str(self.path)!r} does not contain. To get them: {self._how_to_get or 'convert a full checkpoint'}. "
                f"Layers available with these weights: up to {self._last_computable()!r}.")

    def _last_computable(self) -> str:
        ok = [s.name for s in self.steps
              if not any(self._by_name[a].kind in LEARNABLE and a not in self.loaded for a in self.ancestors(s.name))]
        return ok[-1]

    def layer_params(self, layer: LayerRef) -> dict[str, jax.Array]:
        """The weights of a conv/fc layer ({'kernel': HWIO or in×out, 'bias'}); {} for other layers.

        Raises:
          MissingWeightsError: the layer has weights but the weight file does not hold them.
        """
        name = self.layer_name(layer)
        if self._by_name[name].kind not in LEARNABLE:
            return {}
        if name not in self.loaded:
            raise MissingWeightsError(f"the weights of {name!r} are not in {str(self.path)!r}. To get them: "
                                      f"{self._how_to_get or 'convert a full checkpoint'}")
        return dict(self.params[param_key(name)])

    def _build_graph(self, hw: tuple[int, int]) -> LayerGraph:
        with shape_errors(self, hw):
            return step_graph(self.steps, hw, self.classes)

    # -- computation ------------------------------------------------------------
    def apply(self, params: dict, images: jax.Array, layers: Sequence[str], *, normalize: bool = True,
              relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """Pure function: images → {layer: activation}. Traceable by jit/vmap/grad.

        Args:
          params: weights, normally `net.params`.
          images: N×H×W×3 float RGB pixels in 0..255 (or already-normalised inputs when
            `normalize=False`).
          layers: layer names to return; nothing past the last of them is computed.
          normalize: apply the input layer's normalisation (mean/std) first.
          relu: backward rule of every ReLU: 'standard', 'guided' or 'deconvnet'.
          taps: optional {layer: array} added to those layers' outputs; differentiate with
            respect to a zero tap to get gradients at an intermediate layer.

        Returns:
          dict layer → N×H×W×C activation (fully connected layers as N×1×1×C).
        """
        state = jax.tree.map(lambda a: a, self._abstract)  # fresh copy: replace_by_pure_dict mutates
        nnx.replace_by_pure_dict(state, params)
        model = nnx.merge(self._graphdef, state)
        return model(images, tuple(layers), normalize=normalize, relu=relu, taps=taps)


# Step kinds as graph node kinds.
_KINDS = {"input": "input", "conv": "conv", "relu": "relu", "lrn": "norm", "maxpool": "pool", "gap": "global_pool",
          "adaptive_avgpool": "global_pool", "dropout": "dropout", "fc": "fc", "concat": "concat",
          "softmax": "softmax", "output": "output", "flatten": "flatten"}


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def step_graph(steps: Sequence[Step], input_size: tuple[int, int], classes: Sequence[str] = ()) -> LayerGraph:
    """The :class:`LayerGraph` of a step list for one image of `input_size` (H, W): shapes from an abstract
    evaluation (no weights needed), geometry from the steps' options.

    Args:
      steps: the network's steps (e.g. ``build_steps("vgg16", …)``).
      input_size: (H, W).
      classes: class names (for the output layer's description).

    Returns:
      The graph; every step is a node and a layer.
    """
    model = nnx.eval_shape(lambda: GraphNet(tuple(steps), rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model)
    pure = nnx.to_pure_dict(abstract)
    names = tuple(s.name for s in steps)

    def run(p, x):
        state = jax.tree.map(lambda a: a, abstract)
        nnx.replace_by_pure_dict(state, p)
        return nnx.merge(graphdef, state)(x, names)

    shapes = jax.eval_shape(run, pure, jax.ShapeDtypeStruct((1, *input_size, 3), jnp.float32))
    shape = {n: tuple(int(d) for d in shapes[n].shape) for n in names}
    nodes = []
    for s in steps:
        o, kind = s.o, _KINDS[s.kind]  # GraphNet ran every step above: the kinds are known
        count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(pure.get(param_key(s.name), {})))
        desc = describe(s, classes)
        if s.kind == "input":
            desc = f"{input_size[0]}×{input_size[1]}×3 {desc}"
        geo: dict = {}
        if s.kind in ("conv", "maxpool"):
            n_in = shape[s.inputs[0]]
            k, st, d = _pair(o["kernel"]), _pair(o.get("stride", 1)), _pair(o.get("dilation", 1))
            pads = tuple(resolve_pads(o.get("pad", 0), n_in[1 + ax], k[ax], st[ax], d[ax], ax) for ax in (0, 1))
            geo = dict(kernel=k, stride=st, padding=pads, dilation=d, ceil=bool(o.get("ceil", False)))
            if s.kind == "conv":
                g = int(o.get("groups", 1))
                geo.update(groups=g, macs=conv_macs(shape[s.name], k, n_in[3], g))
        elif s.kind == "fc":
            geo = dict(macs=int(o["cin"]) * int(o["cout"]))
        nodes.append(LayerNode(s.name, kind, s.type_name, s.inputs, shape[s.name], count, description=desc, **geo))
    return LayerGraph(nodes)


def load_model(name: str = "squeezenet", weights: str | os.PathLike | None = None) -> Network:
    """Load a pretrained network by registry name, or from a jaxvis weight file.

    Args:
      name: 'squeezenet' (shipped), 'alexnet' (convolutions shipped), 'squeezenet1_0',
        'squeezenet1_1', 'bvlc_alexnet' (convert their weights first: see
        `jaxvis.nets.models.MODELS[name].how_to_get`).
      weights: explicit `.h5` path; otherwise `<name>.h5` is looked up in
        :func:`weight_search_path`.

    Returns:
      The :class:`Network`.

    Raises:
      ModelError: `name` is not a registry model and no `weights` file is given (lists close matches).
      WeightsNotFoundError: the model's weight file is in none of the searched folders (says how to get it).
    """
    card = MODELS.get(name)
    if weights is None:
        if card is None:
            close = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.4)
            raise ModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}"
                             + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + "; or pass weights= a jaxvis .h5 file")
        found = [d / card.weights_file for d in weight_search_path() if (d / card.weights_file).is_file()]
        if not found:
            raise WeightsNotFoundError(
                f"no weights for {name!r}: looked for {card.weights_file} in "
                f"{', '.join(str(d) for d in weight_search_path())}. {card.how_to_get}")
        weights = found[0]
    arrays, meta = read_weights(weights)
    return Network(name if card else meta.get("model", name), Path(weights), arrays, meta,
                   card.how_to_get if card else "")

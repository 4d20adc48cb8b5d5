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

from ..errors import LayerError, MissingWeightsError, ModelError, WeightsNotFoundError
from .steps import LEARNABLE, GraphNet, param_key
from .layers import LayerTable
from .models.registry import MODELS, build_steps
from .protocol import LayerRef, NetBase
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

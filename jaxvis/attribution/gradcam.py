"""Grad-CAM (Selvaraju et al. 2017): feature maps weighted by their spatially averaged gradients.

map = ReLU(Σ_k α_k A^k), α_k = mean over (i, j) of ∂score/∂A^k_ij, resized to the image
(bilinear by default). The gradient with respect to the feature map A comes from a zero
"tap" added to A inside the pure function (`fn(params, images, taps)`), so activations
and gradients come from one jitted forward + backward pass.

Names follow MATLAB's `gradCAM`: the *feature layer* is A, the *reduction layer* is the
layer whose channel is reduced to the score.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import AttributionError
from ..imaging.display import imresize
from ..imaging.images import ImageLike
from ..nets.protocol import Net
from .base import AttributionMethod, computable, function_kernel, unit_score
from .result import AttributionMap

UPSAMPLING = ("bilinear", "bicubic", "nearest", "none")


def _build_cam(fn, feature_layer, score_layer, softmax):
    def k(params, image, channel):
        x = image[None]
        shape = jax.eval_shape(lambda: fn(params, x, None)[feature_layer]).shape

        def score(delta):
            out = fn(params, x, {feature_layer: delta})
            s = unit_score(out, score_layer, channel, softmax)[0]
            return s, (out[feature_layer], s)

        g, (a, s) = jax.grad(score, has_aux=True)(jnp.zeros(shape, x.dtype))
        alpha = g[0].mean(axis=(0, 1))
        cam = jax.nn.relu(jnp.einsum("hwk,k->hw", a[0], alpha))
        return cam, alpha, a[0], s
    return k


def grad_cam_core(fn, params, image, feature_layer: str, score_layer: str, channel: int, *,
                  softmax: bool = False):
    """Grad-CAM at feature resolution for one H×W×C image.

    Args:
      fn: pure `fn(params, images, taps) -> {layer: activation}` returning at least
        `feature_layer` and `score_layer`; `taps[name]` (or None) is added to that layer's output.
      params: its parameters.
      image: H×W×C input.
      feature_layer: the feature map A (N×h×w×K).
      score_layer, channel: the score = spatial mean of `score_layer[..., channel]`.
      softmax: score the softmax over `score_layer`'s channels instead (class probability).

    Returns:
      (cam h×w, α (K,), A h×w×K, score) as numpy / float.
    """
    return _grad_cam(function_kernel(fn, _build_cam, feature_layer, score_layer, softmax), params, image, channel)


def _grad_cam(k, params, image, channel: int):
    cam, alpha, a, s = k(params, jnp.asarray(image), jnp.int32(channel))
    return np.asarray(cam), np.asarray(alpha), np.asarray(a), float(s)


# ----------------------------------------------------------------------- which layers feed the score
class _LayerGraph:
    """Data flow from the input to a reduction layer, read from the network's layer graph
    (``net.graph(hw)``): the computable layers before it, their shapes, and the data flow."""

    def __init__(self, net: Net, reduction_layer: str, hw: tuple[int, int]):
        self.graph = net.graph(hw)
        names = self.graph.layers
        self.before = [n for n in names[:names.index(reduction_layer)] if computable(net, n)]
        self.node = {*self.before, reduction_layer}  # the layers a feature layer may be
        self.shapes = {n: self.graph[n].shape for n in self.node}
        self.reduction = reduction_layer

    def depends_on(self, layer: str) -> bool:
        """Whether the reduction layer's output changes with `layer`'s output."""
        return layer in self.node and layer in self.graph.ancestors(self.reduction)

    def dominates(self, layer: str) -> bool:
        """Whether every path from the image to the reduction layer goes through `layer`."""
        return layer in self.node and self.graph.dominates(layer, self.reduction)


def _graph(net: Net, reduction_layer: str, hw: tuple[int, int]) -> _LayerGraph:
    return net.cache.memo(("attribution", "layer_graph", reduction_layer, tuple(hw)),
                          lambda: _LayerGraph(net, reduction_layer, (int(hw[0]), int(hw[1]))))


def default_feature_layer(net: Net, reduction_layer: str, hw: tuple[int, int]) -> str:
    """Grad-CAM's default feature layer for a reduction layer and input size (cached).

    MATLAB gradCAM's rule — the last layer before the reduction layer whose output has
    non-singleton spatial dimensions — refined in two ways, using only the network protocol
    (layer order, and shapes and data flow from the layer graph, ``net.graph(hw)``):

    * only layers that every path to the reduction layer goes through count (a cut of the
      graph): for a unit of a Fire module's concat, the squeeze layer both branches share,
      not one branch, which would explain only half the channels;
    * of the trailing run of such layers with the same channel count, the finest one is
      taken: pooling only resamples the map before it (AlexNet: 'relu5' 13×13, not MATLAB's
      'pool5' 6×6 copy of it).

    SqueezeNet classes: 'relu_conv10' (14×14 at 227, as in MATLAB; there Grad-CAM reduces to
    the class activation map, since pool10 averages relu_conv10).
    """
    def compute():
        g = _graph(net, reduction_layer, hw)
        first = net.layer_names[0]
        cands = [n for n in g.before if g.shapes[n][1] * g.shapes[n][2] > 1 and g.dominates(n)
                 and not (n == first and g.shapes[n] == (1, *hw, net.input_channels))]  # the input layer is the image itself
        if not cands:
            raise AttributionError(f"no layer before {reduction_layer!r} has a spatial feature map that the "
                                   "score depends on; pass feature_layer=")
        k = g.shapes[cands[-1]][3]
        run = list(itertools.takewhile(lambda n: g.shapes[n][3] == k, reversed(cands)))
        finest = max(g.shapes[n][1] * g.shapes[n][2] for n in run)
        return next(n for n in run if g.shapes[n][1] * g.shapes[n][2] == finest)
    return net.cache.memo(("attribution", "feature_layer", reduction_layer, tuple(hw)), compute)


def check_feature_layer(net, feature_layer: str, reduction_layer: str, hw: tuple[int, int]) -> None:
    """AttributionError unless the reduction layer comes after and depends on `feature_layer`."""
    g = _graph(net, reduction_layer, hw)
    if feature_layer not in g.node or feature_layer == reduction_layer or not g.depends_on(feature_layer):
        raise AttributionError(f"the score at {reduction_layer!r} does not depend on feature_layer "
                               f"{feature_layer!r}; pick a layer before {reduction_layer!r} that feeds it "
                               f"(default: {default_feature_layer(net, reduction_layer, hw)!r})")


class GradCam(AttributionMethod):
    """Grad-CAM (Selvaraju et al. 2017; captum's `LayerGradCam` with `relu_attributions=True`).

    The reduction layer (MATLAB's ReductionLayer) is the target's score layer: give
    `reduction_layer=` to the constructor to score a class as a channel of another layer.
    """

    method = "grad_cam"

    def attribute(self, *, feature_layer=None, upsampling: str = "bilinear") -> AttributionMap:
        """ReLU(Σ_k α_k A^k) at the feature layer, resized to the image.

        Args:
          feature_layer: the feature map A (name or index); default :func:`default_feature_layer`
            of the reduction layer.
          upsampling: 'bilinear', 'bicubic', 'nearest' or 'none' (see :func:`grad_cam`).

        Returns:
          :class:`AttributionMap`: `.raw` the map at the feature layer.
        """
        if upsampling not in UPSAMPLING:
            raise AttributionError(f"upsampling must be one of {UPSAMPLING}, not {upsampling!r}")
        t, net = self.target, self.net
        if feature_layer is None:
            feat = default_feature_layer(net, t.layer, self.hw)
        else:
            feat = net.layer_name(feature_layer)
            check_feature_layer(net, feat, t.layer, self.hw)
        k = self.kernel("grad_cam", _build_cam, (feat, t.layer))
        cam, alpha, a, s = _grad_cam(k, self.params, self.image, t.channel)
        big = cam if upsampling == "none" else \
            imresize(cam.astype(np.float64), self.hw, method=upsampling).astype(np.float32)
        return self.result(big, s, cam, {"feature_layer": feat, "reduction_layer": t.layer, "feature_size": a.shape,
                                         "alpha": alpha, "upsampling": upsampling})


def grad_cam(net: Net, image: ImageLike, target=None, *, feature_layer=None, reduction_layer=None,
             score: str = "logit", upsampling: str = "bilinear", resize: str = "crop") -> AttributionMap:
    """Grad-CAM map of a class (or hidden unit) over one image.

    Args:
      net: the network.
      image: one image; resized to `net.input_size` like :func:`jaxvis.classify`.
      target: class index, class name or (layer, channel); None = the predicted class.
      feature_layer: the feature map A (MATLAB's FeatureLayer; name or index); default
        :func:`default_feature_layer` of the reduction layer.
      reduction_layer: the layer whose channel is the score (MATLAB's ReductionLayer). Default:
        the class-score layer for class targets (the class index is its channel), the unit's
        layer for (layer, channel) targets. With a class target and another layer (e.g. the
        network's softmax layer 'prob'), the class index is a channel of that layer.
      score: class targets: 'logit' (pre-softmax class score, default, as captum's LayerGradCam
        on a model returning logits) or 'softmax' (the class probability: what MATLAB's
        gradCAM differentiates on a network ending in a softmax layer).
      upsampling: how the feature-resolution map (`.raw`) becomes `.map`: 'bilinear' (default;
        pixel-centre aligned, = torch `interpolate(mode="bilinear", align_corners=False)`, as
        captum's `LayerAttribution.interpolate`), 'bicubic', 'nearest' (MATLAB imresize) or
        'none' (`.map` is `.raw`).
      resize: 'crop', 'stretch' or 'none'.

    Returns:
      :class:`AttributionMap`: `.map` H×W, `.raw` the h×w map at the feature layer,
      `.options['feature_layer']`, `['reduction_layer']`, `['alpha']` the K channel weights.
    """
    return GradCam(net, image, target, score=score, resize=resize, reduction_layer=reduction_layer).attribute(
        feature_layer=feature_layer, upsampling=upsampling)

"""Grad-CAM (Selvaraju et al. 2017): feature maps weighted by their spatially averaged gradients.

map = ReLU(Σ_k α_k A^k), α_k = mean over (i, j) of ∂score/∂A^k_ij, bilinearly resized to the
image. The gradient with respect to the feature map A comes from a zero "tap" added to
A inside the pure function (`fn(params, images, taps)`), so activations and gradients
come from one jitted forward + backward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..display import imresize
from ..errors import AttributionError, MissingWeightsError
from ..images import ImageLike
from .common import Attribution, kernel, layer_shapes, net_function, network_target, prepare_image, unit_score

# Layers that only resample or copy a feature map: Grad-CAM on the map before them is finer.
_NOT_FEATURES = ("input", "maxpool", "gap", "adaptive_avgpool", "dropout", "softmax", "output")


def _build_cam(fn, feature_layer, score_layer):
    def k(params, image, channel):
        x = image[None]
        shape = jax.eval_shape(lambda: fn(params, x, None)[feature_layer]).shape

        def score(delta):
            out = fn(params, x, {feature_layer: delta})
            s = unit_score(out, score_layer, channel)[0]
            return s, (out[feature_layer], s)

        g, (a, s) = jax.grad(score, has_aux=True)(jnp.zeros(shape, x.dtype))
        alpha = g[0].mean(axis=(0, 1))
        cam = jax.nn.relu(jnp.einsum("hwk,k->hw", a[0], alpha))
        return cam, alpha, a[0], s
    return k


def grad_cam_core(fn, params, image, feature_layer: str, score_layer: str, channel: int):
    """Grad-CAM at feature resolution for one H×W×C image.

    Args:
      fn: pure `fn(params, images, taps) -> {layer: activation}` returning at least
        `feature_layer` and `score_layer`; `taps[name]` (or None) is added to that layer's output.
      params: its parameters.
      image: H×W×C input.
      feature_layer: the feature map A (N×h×w×K).
      score_layer, channel: the score = spatial mean of `score_layer[..., channel]`.

    Returns:
      (cam h×w, α (K,), A h×w×K, score) as numpy / float.
    """
    k = kernel(fn, "grad_cam", (feature_layer, score_layer), _build_cam)
    cam, alpha, a, s = k(params, jnp.asarray(image), jnp.int32(channel))
    return np.asarray(cam), np.asarray(alpha), np.asarray(a), float(s)


def default_feature_layer(net, score_layer: str, hw: tuple[int, int]) -> str:
    """MATLAB gradCAM's rule — the last layer whose output has non-singleton spatial
    dimensions — applied to layers the score depends on, skipping pooling and dropout
    layers (they only resample the map before them).

    SqueezeNet: 'relu_conv10' (14×14 at 227, the same as MATLAB; there Grad-CAM reduces to the
    class activation map, since pool10 averages relu_conv10). AlexNet: 'relu5' (MATLAB's
    literal rule would give 'pool5', a coarser 6×6 copy of it).
    """
    anc = net.ancestors(score_layer)
    cands = [s.name for s in net.steps if s.name in anc and s.kind not in _NOT_FEATURES and _computable(net, s.name)]
    shapes = layer_shapes(net, cands, hw)
    spatial = [n for n in cands if shapes[n][1] > 1 or shapes[n][2] > 1]
    if not spatial:
        raise AttributionError(f"no layer before {score_layer!r} has a spatial feature map; pass layer=")
    return spatial[-1]


def _computable(net, layer: str) -> bool:
    try:
        net.require_weights([layer])
        return True
    except MissingWeightsError:
        return False


def grad_cam(net, image: ImageLike, target=None, layer=None, *, score: str = "logit",
             resize: str = "crop") -> Attribution:
    """Grad-CAM map of a class (or hidden unit) over one image.

    Args:
      net: the network.
      image: one image; resized to `net.input_size` like :func:`jaxvis.classify`.
      target: class index, class name or (layer, channel); None = the predicted class.
      layer: feature layer (name or index); default :func:`default_feature_layer`.
      score: 'logit' (pre-softmax, default) or 'probability'.
      resize: 'crop', 'stretch' or 'none'.

    Returns:
      :class:`Attribution`: `.map` H×W (bilinear imresize of the feature-resolution map,
      `.raw`), `.options['layer']`, `.options['alpha']` the K channel weights.
    """
    x = prepare_image(net, image, resize)
    t = network_target(net, target, score, x)
    feat = default_feature_layer(net, t.layer, x.shape[:2]) if layer is None else net.layer_name(layer)
    if feat not in net.ancestors(t.layer):
        raise AttributionError(f"the score of {t} does not depend on layer {feat!r}; pick a layer before "
                               f"{t.layer!r}")
    fn = net_function(net, (feat, t.layer), "standard")
    cam, alpha, a, s = grad_cam_core(fn, net.params, x, feat, t.layer, t.channel)
    big = imresize(cam.astype(np.float64), x.shape[:2], method="bilinear").astype(np.float32)
    opts = {"layer": feat, "feature_size": a.shape, "alpha": alpha, "score": t.score, "resize": resize,
            "upsampling": "bilinear"}
    return Attribution(np.maximum(big, 0), x, "grad_cam", t, s, opts, cam)

"""FLOPs of a network cut at a layer, counted from its step graph and activation shapes.

Only convolutions and fully connected layers are counted (a multiply-add = 2 FLOPs);
ReLU, pooling, LRN and the Laplacian normalisation are a few FLOPs per element and
are left out, so achieved GFLOP/s is a slight underestimate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def forward_macs(net, layer: str, hw: tuple[int, int]) -> dict[str, int]:
    """Multiply-accumulates of every conv/fc layer `layer` depends on, for one hw image.

    Args:
      net: a :class:`jaxvis.Network`.
      layer: the layer the network is cut at.
      hw: input (H, W).

    Returns:
      dict layer name → MACs (only the layers computed to reach `layer`).
    """
    need = net.ancestors(net.layer_name(layer))
    learn = [s for s in net.steps if s.name in need and s.kind in ("conv", "fc")]
    if not learn:
        return {}
    names = tuple(s.name for s in learn)
    spec = jax.ShapeDtypeStruct((1, *hw, 3), jnp.float32)
    shapes = jax.eval_shape(lambda p, x: net.apply(p, x, names), net.params, spec)  # shapes only, no compute
    out = {}
    for s in learn:
        o, shp = s.o, shapes[s.name].shape
        if s.kind == "conv":
            out[s.name] = shp[1] * shp[2] * o["cout"] * o["kernel"] ** 2 * (o["cin"] // o.get("groups", 1))
        else:
            out[s.name] = o["cin"] * o["cout"]
    return out


def dream_flops_per_image_step(net, layer: str, hw: tuple[int, int]) -> float:
    """FLOPs of one gradient-ascent step of one image: forward + backward to the image.

    Rule: a dream step differentiates with respect to the image only, so the backward
    pass is one input-gradient product per layer, as many MACs as its forward product:
    forward + backward = 2 × forward (a training step's usual 3× also counts the weight
    gradients, which deep dream never computes). FLOPs = 2 × MACs.
    """
    return 2.0 * 2.0 * sum(forward_macs(net, layer, hw).values())

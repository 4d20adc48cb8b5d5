"""FLOPs of a network cut at a layer, from its graph view (`net.graph(hw).macs(upto)`).

Only convolutions and fully connected layers are counted (a multiply-add = 2 FLOPs);
ReLU, pooling, LRN and the Laplacian normalisation are a few FLOPs per element and
are left out, so achieved GFLOP/s is a slight underestimate. Works for every jaxvis
network (shipped ports, `from_function`, `from_onnx`): the graph view is the protocol's.
"""

from __future__ import annotations


def forward_macs(net, layer: str | None, hw: tuple[int, int]) -> dict[str, int]:
    """Multiply-accumulates of every conv/fc layer `layer` depends on, for one hw image.

    Args:
      net: any jaxvis network.
      layer: the layer the network is cut at (None: the whole network).
      hw: input (H, W).

    Returns:
      dict layer name → MACs (only the layers computed to reach `layer`).
    """
    return net.graph(tuple(hw)).macs(None if layer is None else net.layer_name(layer))


def forward_flops(net, layer: str | None, hw: tuple[int, int]) -> float:
    """FLOPs of one forward pass of one image cut at `layer`: 2 × MACs."""
    return 2.0 * sum(forward_macs(net, layer, hw).values())


def dream_flops_per_image_step(net, layer: str, hw: tuple[int, int]) -> float:
    """FLOPs of one gradient-ascent step of one image: forward + backward to the image.

    Rule: a dream step differentiates with respect to the image only, so the backward
    pass is one input-gradient product per layer, as many MACs as its forward product:
    forward + backward = 2 × forward (a training step's usual 3× also counts the weight
    gradients, which deep dream never computes). FLOPs = 2 × MACs. The same rule holds
    for a lucid step, saliency and every other image-gradient method.
    """
    return 2.0 * forward_flops(net, layer, hw)

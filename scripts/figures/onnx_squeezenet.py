"""Walkthrough: a model zoo's ONNX file as a jaxvis network (the ONNX-zoo SqueezeNet 1.1, real weights).

  python scripts/figures/onnx_squeezenet.py [--out out/onnx_squeezenet] [--zoo DIR]

1. writes squeezenet1_1.onnx from ../shared/testdata/squeezenet1_1_onnxzoo (what a user downloads),
2. `jaxvis.from_onnx` imports it (torchvision preprocessing, ImageNet class names) and prints the layer table,
3. classifies the shipped photos from the logits layer,
4. tiles 64 channels of a fire module's activations (01_fire5_concat.png),
5. deep-dreams three classes on the final convolution (02_dream_classes.png),
6. `jaxvis convert onnx` stores weights and graph in one .h5, which `from_onnx` reads back.

Needs onnx (pip install 'jaxvis[onnx]').
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data")]  # run from a source checkout; the zoo graph

import jax  # noqa: E402
import numpy as np  # noqa: E402
from onnx_zoo import ZOO, zoo_squeezenet  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis.nets.classes import imagenet_classes  # noqa: E402
from jaxvis.imaging.display import imresize, save_png  # noqa: E402
from jaxvis.imaging.images import read_image  # noqa: E402

PHOTOS = ROOT / "examples" / "images"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/onnx_squeezenet"))
    p.add_argument("--zoo", type=Path, default=ZOO)
    a = p.parse_args(argv)
    import onnx
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / "squeezenet1_1.onnx"
    onnx.save(zoo_squeezenet(a.zoo, 224), str(path))
    net = jaxvis.from_onnx(path, preprocess="torchvision", classes=imagenet_classes())
    print(net.table())
    print(f"logits layer: {net.logits_layer}")
    photos = sorted(PHOTOS.glob("*.png")) + sorted(PHOTOS.glob("*.jpg"))
    for f in photos:
        img = imresize(read_image(f), (224, 224))
        logits = jaxvis.activations(net, img, net.logits_layer).reshape(-1)
        prob = np.asarray(jax.nn.softmax(logits))
        top = np.argsort(-prob)[:3]
        print(f"{f.name}: " + ", ".join(f"{net.classes[i]} {prob[i]:.2f}" for i in top))
    if photos:
        img = imresize(read_image(photos[0]), (224, 224))
        act = jaxvis.activations(net, img, "fire5_concat")
        save_png(a.out / "01_fire5_concat.png", jaxvis.activation_grid(act[..., :64], (8, 8)))
        print(f"wrote {a.out / '01_fire5_concat.png'}")
    classes = [947, 963, 980]  # mushroom, pizza, volcano
    dreams = jaxvis.deep_dream_image(net, "squeezenet0_conv25", classes, pyramid_levels=3, num_iterations=10,
                                     verbose=False)
    save_png(a.out / "02_dream_classes.png", jaxvis.imtile(dreams, grid_size=(1, len(classes)), border_size=4))
    print(f"wrote {a.out / '02_dream_classes.png'}")
    print("dreamed: " + ", ".join(net.classes[c] for c in classes))
    from jaxvis.nets.onnx.convert import convert_onnx
    convert_onnx(path, a.out / "squeezenet1_1.h5", preprocess="torchvision", classes=imagenet_classes())
    again = jaxvis.from_onnx(a.out / "squeezenet1_1.h5")
    print(f"converted: {again!r}")
    print(f"wrote {a.out / 'squeezenet1_1.h5'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

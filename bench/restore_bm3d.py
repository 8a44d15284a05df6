#!/usr/bin/env python3
"""Colour BM3D (the PyPI `bm3d` package's bm3d_rgb) on a `dipviz restore denoise --degrade` run's
observation: the baseline of the denoising bar. Reads RUN_DIR/input.png (the noisy image dipviz
fitted) and RUN_DIR/ground-truth.png, writes the denoised image to --out and prints one JSON line
with its PSNR and SSIM (SSIM as dipviz computes it: Gaussian window, sigma 1.5).

    python3 bench/restore_bm3d.py RUN_DIR --sigma 25 --out bm3d.png
"""
import argparse
import json
import os

import numpy as np
from bm3d import bm3d_rgb
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--sigma", type=float, default=25, help="noise standard deviation in 0...255 units")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    noisy = np.asarray(Image.open(os.path.join(a.run, "input.png")).convert("RGB"), dtype=np.float64) / 255
    truth = np.asarray(Image.open(os.path.join(a.run, "ground-truth.png")).convert("RGB"), dtype=np.float64) / 255
    result = np.clip(bm3d_rgb(noisy, a.sigma / 255), 0, 1)
    result = np.round(result * 255) / 255
    Image.fromarray((result * 255).astype(np.uint8)).save(a.out)
    print(json.dumps({
        "psnr": peak_signal_noise_ratio(truth, result, data_range=1),
        "ssim": structural_similarity(truth, result, channel_axis=2, data_range=1, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False),
    }))


if __name__ == "__main__":
    main()

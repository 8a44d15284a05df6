#!/usr/bin/env python3
"""Scores class-maximisation PNGs written by dipviz with an independent runtime (onnxruntime).

For every run folder OUT/PRIOR-sSEED-CLASS (as written by scripts/class-images) it reads the
PNG and dipviz's own metrics.json, and computes with onnxruntime on the committed SqueezeNet:
  ort_probability  the class probability of the PNG as written;
  ort_robust       the mean class probability over 24 random transforms made here with PIL,
                   independently of dipviz's code: Lucid's standard transforms (pad 12 px grey,
                   random crop of 8 px, scale 0.9..1.1, rotation -10..10 degrees, crop of 4 px),
                   resized back to 227 x 227.
It prints a table (class x seed x prior: dipviz's robust_probability, ort_probability,
ort_robust) and, per prior and seed, how many of the classes reach 0.9 on both robust numbers;
it exits 1 when a prior misses the bar (0.9 for at least MIN of the classes on every seed).

Needs numpy, pillow and onnxruntime. Usage: check-class-images.py OUT [--min 7] [--json FILE]
"""
import argparse
import glob
import json
import os
import random
import re
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "models", "squeezenet1.0-dc.onnx")
SYNSETS = os.path.join(HERE, "..", "models", "imagenet-synsets.txt")
MEANS_BGR = np.array([104.0, 117.0, 123.0], np.float32)  # models/README.md
SIZE = 227
BAR = 0.9


def caffe_input(im):
    a = np.asarray(im.convert("RGB"), np.float32)[:, :, ::-1] - MEANS_BGR
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None])


def random_transform(im, rng):
    """Lucid's standard transforms with PIL (bilinear, grey fill), back to SIZE x SIZE."""
    grey = (128, 128, 128)
    w, h = im.size
    padded = Image.new("RGB", (w + 24, h + 24), grey)
    padded.paste(im, (12, 12))
    ox, oy = rng.randint(0, 8), rng.randint(0, 8)
    x = padded.crop((ox, oy, ox + w + 16, oy + h + 16))
    s = 1 + (rng.randint(0, 10) - 5) / 50.0
    x = x.resize((int(s * x.size[0]), int(s * x.size[1])), Image.BILINEAR)
    angle = rng.choice(list(range(-10, 11)) + 5 * [0])
    x = x.rotate(angle, resample=Image.BILINEAR, fillcolor=grey)
    ox, oy = rng.randint(0, 4), rng.randint(0, 4)
    x = x.crop((ox, oy, ox + x.size[0] - 4, oy + x.size[1] - 4))
    return x.resize((SIZE, SIZE), Image.BILINEAR)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--min", type=int, default=7, help="classes per seed that must reach the bar")
    ap.add_argument("--transforms", type=int, default=24)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()

    names = [line.split(" ", 1)[1].split(",")[0].strip() for line in open(SYNSETS)]
    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    rows = []
    for d in sorted(glob.glob(os.path.join(args.out, "*-s*-*"))):
        m = re.fullmatch(r"(\w+)-s(\d+)-(\d+)", os.path.basename(d))
        png, metrics = os.path.join(d, "image.png"), os.path.join(d, "metrics.json")
        if not m or not os.path.exists(png) or not os.path.exists(metrics):
            continue
        prior, seed, cls = m.group(1), int(m.group(2)), int(m.group(3))
        result = json.load(open(metrics))["results"][0]
        if result.get("ending") != "finished":
            continue
        im = Image.open(png).convert("RGB")
        if im.size != (SIZE, SIZE):
            im = im.resize((SIZE, SIZE), Image.BICUBIC)
        prob = float(session.run(["prob"], {"data": caffe_input(im)})[0][0][cls])
        rng = random.Random(1000 * seed + cls)
        robust = np.mean([session.run(["prob"], {"data": caffe_input(random_transform(im, rng))})[0][0][cls]
                          for _ in range(args.transforms)])
        rows.append(dict(prior=prior, seed=seed, cls=cls, name=names[cls], iterations=result["iterations"],
                         seconds=result["seconds"], probability=result.get("probability"),
                         robust_probability=result.get("robust_probability"),
                         ort_probability=prob, ort_robust=float(robust)))

    print("| prior | seed | class | dipviz probability | dipviz robust_probability | ort probability | ort robust | s/step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %s (%d) | %.3f | %.3f | %.3f | %.3f | %.3f |" % (
            r["prior"], r["seed"], r["name"], r["cls"], r["probability"] or 0, r["robust_probability"] or 0,
            r["ort_probability"], r["ort_robust"], r["seconds"] / max(r["iterations"], 1)))
    ok = True
    print()
    for prior in sorted({r["prior"] for r in rows}):
        for seed in sorted({r["seed"] for r in rows if r["prior"] == prior}):
            sel = [r for r in rows if r["prior"] == prior and r["seed"] == seed]
            own = sum((r["robust_probability"] or 0) >= BAR for r in sel)
            ind = sum(r["ort_robust"] >= BAR for r in sel)
            passed = len(sel) == 8 and own >= args.min and ind >= args.min
            ok &= passed
            print("%s seed %d: %d classes; robust_probability >= %.1f: %d (dipviz), %d (onnxruntime) %s" % (
                prior, seed, len(sel), BAR, own, ind, "pass" if passed else "MISS"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    sys.exit(0 if ok and rows else 1)


if __name__ == "__main__":
    main()

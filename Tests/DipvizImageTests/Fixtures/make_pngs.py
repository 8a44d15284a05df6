#!/usr/bin/env python3
"""Writes small PNGs of every colour type and bit depth the reader must accept, all showing
the same 4x3 RGB picture, plus expected.json with its 8-bit RGB values."""
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 4, 3
PICTURE = [[((x * 85) % 256, (y * 120) % 256, ((x + y) * 40) % 256) for x in range(W)] for y in range(H)]
GREY = [[(x * 60 + y * 20) % 256 for x in range(W)] for y in range(H)]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(path, color_type, depth, rows, palette=None, trns=None):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, depth, color_type, 0, 0, 0))
    if palette:
        data += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(os.path.join(HERE, path), "wb") as f:
        f.write(data)


def be16(v):
    return [v >> 8, v & 0xFF]


png("rgb8.png", 2, 8, [[c for p in row for c in p] for row in PICTURE])
png("rgb16.png", 2, 16, [[b for p in row for c in p for b in be16(c * 257)] for row in PICTURE])
png("rgba8.png", 6, 8, [[c for p in row for c in (*p, 255)] for row in PICTURE])
png("grey8.png", 0, 8, GREY)
png("grey16.png", 0, 16, [[b for v in row for b in be16(v * 257)] for row in GREY])
png("greyalpha8.png", 4, 8, [[c for v in row for c in (v, 255)] for row in GREY])
colours = sorted({p for row in PICTURE for p in row})
png("palette8.png", 3, 8, [[colours.index(p) for p in row] for row in PICTURE], palette=colours)
# Fully transparent pixels composite onto white.
png("transparent.png", 6, 8, [[c for p in row for c in (*p, 0)] for row in PICTURE])
with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump({"width": W, "height": H, "rgb": [c for row in PICTURE for p in row for c in p],
               "grey": [v for row in GREY for v in row]}, f)
print("pngs written")

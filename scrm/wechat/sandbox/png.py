"""Tiny PNG images for the sandbox's QR and mini-program codes: a valid file with a pattern derived from a seed."""

from __future__ import annotations

import hashlib
import struct
import zlib

_MODULES = 21  # the module grid of a version-1 QR code; the pattern only looks like one


def pattern_png(seed: str, size: int = 430) -> bytes:
    """Return a ``size``x``size`` greyscale PNG whose black-and-white pattern depends only on ``seed``."""
    scale = max(1, size // _MODULES)
    side = scale * _MODULES
    bits = _seed_bits(seed, _MODULES * _MODULES)
    rows = []
    for module_row in range(_MODULES):
        pixels = b"".join(
            (b"\x00" if bits[module_row * _MODULES + column] else b"\xff") * scale for column in range(_MODULES)
        )
        rows.append((b"\x00" + pixels) * scale)  # filter byte 0 (none) before each scanline
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)),
            _chunk(b"IEND", b""),
        ]
    )


def _seed_bits(seed: str, count: int) -> list[bool]:
    stream = b""
    counter = 0
    while len(stream) * 8 < count:
        stream += hashlib.sha256(f"{counter}:{seed}".encode()).digest()
        counter += 1
    return [bool(stream[i // 8] >> (i % 8) & 1) for i in range(count)]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

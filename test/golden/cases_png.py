"""PNG files of every colour type and bit depth for the PNG codec tests, written by PIL (and, for the 16-bit colour
types PIL cannot write, by a minimal writer here), with the pixels the decoder must return computed from the arrays
that went in: RGB with alpha composited on white (round(v * a + 255 * (1 - a)), a = alpha / 255), other depths
scaled to 8 bits with round(v * 255 / (2^depth - 1)), a tRNS colour key made transparent; label maps as the palette
indices (as PIL reads them) or the first channel. Written to out/png/<case>.png and out/png.json."""
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

H, W = 13, 17


def composite(rgb, alpha):
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.floor(rgb.astype(np.float64) * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def scale(v, depth):
    return np.floor(v.astype(np.float64) * 255.0 / (2 ** depth - 1) + 0.5).astype(np.uint8)


def raw_png(path, samples, colour_type, depth, interlace=0, width=None):
    """A PNG of the given samples (H x W x C, big-endian at 16 bits; below 8 bits, rows already packed and the
    width given), every row unfiltered."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    h, w = samples.shape[0], width or samples.shape[1]
    rows = samples.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).tobytes()
    stride = len(rows) // h
    data = b"".join(b"\x00" + rows[y * stride:(y + 1) * stride] for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, interlace)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))


def build(out_dir):
    rng = np.random.default_rng(20)
    folder = os.path.join(out_dir, "png")
    os.makedirs(folder, exist_ok=True)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)
    alpha[0, :4] = [0, 255, 1, 254]
    grey = rgb[..., 0]
    white = np.full((H, W), 255, np.uint8)
    grey3 = lambda g: np.repeat(g[..., None], 3, axis=2)
    cases = {}

    def case(name, expected_rgb, labels, write):
        path = os.path.join(folder, f"{name}.png")
        write(path)
        cases[name] = {"width": W, "height": H, "rgb": expected_rgb.reshape(-1).tolist(), "labels": labels.reshape(-1).tolist()}

    case("rgb", rgb, rgb[..., 0], lambda p: Image.fromarray(rgb).save(p))
    case("rgba", composite(rgb, alpha), rgb[..., 0], lambda p: Image.fromarray(np.dstack([rgb, alpha])).save(p))
    case("grey", grey3(grey), grey, lambda p: Image.fromarray(grey).save(p))
    case("grey_alpha", composite(grey3(grey), alpha), grey, lambda p: Image.fromarray(np.dstack([grey, alpha]), "LA").save(p))
    bits = grey > 128
    case("bilevel", grey3(bits * white), bits * white, lambda p: Image.fromarray(bits).save(p))
    g16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    g16[0, :3] = [0, 65535, 128]  # 128 * 255 / 65535 = 0.498: rounds down
    case("grey16", grey3(scale(g16, 16)), scale(g16, 16), lambda p: Image.fromarray(g16, "I;16").save(p))
    rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    a16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    case("rgb16", scale(rgb16, 16), scale(rgb16[..., 0], 16), lambda p: raw_png(p, rgb16, 2, 16))
    case("rgba16", composite(scale(rgb16, 16), scale(a16, 16)), scale(rgb16[..., 0], 16), lambda p: raw_png(p, np.dstack([rgb16, a16]), 6, 16))
    case("grey_alpha16", composite(grey3(scale(g16, 16)), scale(a16, 16)), scale(g16, 16), lambda p: raw_png(p, np.dstack([g16, a16]), 4, 16))
    g4 = rng.integers(0, 16, (H, W), dtype=np.uint8)
    packed = np.zeros((H, (W + 1) // 2), np.uint8)
    for x in range(W):
        packed[:, x // 2] |= g4[:, x] << (4 if x % 2 == 0 else 0)
    case("grey4", grey3(scale(g4, 4)), scale(g4, 4), lambda p: raw_png(p, packed[..., None], 0, 4, width=W))

    palette = rng.integers(0, 256, (7, 3), dtype=np.uint8)
    index = rng.integers(0, 7, (H, W), dtype=np.uint8)

    def paletted(p, bits_per_index=8, transparency=None, pal=palette, idx=index):
        im = Image.fromarray(idx, "P")
        im.putpalette(pal.reshape(-1).tolist())
        extra = {} if transparency is None else {"transparency": transparency}
        im.save(p, bits=bits_per_index, **extra)
        back = Image.open(p)
        assert back.mode == "P" and np.array_equal(np.array(back), idx), p

    case("palette8", palette[index], index, paletted)
    case("palette4", palette[index], index, lambda p: paletted(p, 4))
    trns = np.array([0, 128, 255, 10, 200, 255, 255], np.uint8)
    case("palette_trns", composite(palette[index], trns[index]), index, lambda p: paletted(p, 8, bytes(trns.tolist())))
    # Repeated colours: the index is the label, not the first index of its colour.
    dup = np.array([[1, 2, 3], [9, 9, 9], [1, 2, 3], [9, 9, 9]], np.uint8)
    dup_index = rng.integers(0, 4, (H, W), dtype=np.uint8)
    case("palette_repeated", dup[dup_index], dup_index, lambda p: paletted(p, 8, None, dup, dup_index))
    key = int(grey[0, 0])
    grey_keyed = np.where(grey[..., None] == key, 255, grey3(grey)).astype(np.uint8)
    case("grey_key", grey_keyed, grey, lambda p: Image.fromarray(grey).save(p, transparency=key))
    rgb_key = tuple(int(v) for v in rgb[1, 1])
    rgb_keyed = np.where(np.all(rgb == rgb_key, axis=2)[..., None], 255, rgb).astype(np.uint8)
    case("rgb_key", rgb_keyed, rgb[..., 0], lambda p: Image.fromarray(rgb).save(p, transparency=rgb_key))
    # Interlaced 1-bit: only the header matters (it is refused before decoding).
    raw_png(os.path.join(folder, "bilevel_adam7.png"), np.packbits(bits, axis=1)[..., None], 0, 1, interlace=1, width=W)

    with open(os.path.join(out_dir, "png.json"), "w") as f:
        json.dump(cases, f)
    return [(f"{out_dir}/png/*.png", len(cases) + 1)]

"""safetensors files written from Python by hand (torch 1.13 has no safetensors module): every dtype our reader
takes (F32, F16, BF16, F64, I64, I32, U8, BOOL) and corrupt variants for the error paths."""
import json
import struct

import torch

from golden import write_safetensors


def write_raw(path, entries, header_override=None, data_override=None, length_override=None):
    """entries: list of (name, dtype string, shape, raw bytes)."""
    header = {}
    blobs = b""
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blobs), len(blobs) + len(raw)]}
        blobs += raw
    if header_override:
        header.update(header_override)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", length_override if length_override is not None else len(text)))
        f.write(text)
        f.write(data_override if data_override is not None else blobs)


def build(out_dir):
    g = torch.Generator().manual_seed(21)
    x32 = torch.randn(3, 5, generator=g)
    x16 = torch.randn(7, generator=g).half()
    xbf = torch.randn(2, 3, generator=g).bfloat16()
    x64 = torch.randn(4, generator=g).double()
    i64 = torch.tensor([0, -3, 2147483647, 5], dtype=torch.int64)
    u8 = torch.tensor([0, 7, 255], dtype=torch.uint8)
    b = torch.tensor([True, False, True])
    entries = [
        ("f32", "F32", [3, 5], x32.numpy().astype("<f4").tobytes()),
        ("f16", "F16", [7], x16.numpy().astype("<f2").tobytes()),
        ("bf16", "BF16", [2, 3], xbf.view(torch.int16).numpy().astype("<i2").tobytes()),
        ("f64", "F64", [4], x64.numpy().astype("<f8").tobytes()),
        ("i64", "I64", [4], i64.numpy().astype("<i8").tobytes()),
        ("u8", "U8", [3], u8.numpy().tobytes()),
        ("flag", "BOOL", [3], b.numpy().astype("u1").tobytes()),
        ("empty", "F32", [0, 4], b""),
    ]
    write_raw(f"{out_dir}/st_dtypes.safetensors", entries)
    # Expected values as float32 / int32, in a plain file of our own format.
    write_safetensors(f"{out_dir}/st_expected.safetensors", {
        "f32": x32, "f16": x16.float(), "bf16": xbf.float(), "f64": x64.float(), "i64": i64.int(), "u8": u8.int(), "flag": b.int(),
    })
    raw = entries[:1]
    write_raw(f"{out_dir}/st_bad_length.safetensors", raw, length_override=10**9)
    write_raw(f"{out_dir}/st_overlap.safetensors", raw + [("g", "F32", [2], b"\0" * 8)],
              header_override={"g": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})
    write_raw(f"{out_dir}/st_truncated.safetensors", raw, data_override=entries[0][3][:20])
    write_raw(f"{out_dir}/st_wrong_size.safetensors", raw, header_override={"f32": {"dtype": "F32", "shape": [4, 5], "data_offsets": [0, 60]}})
    write_raw(f"{out_dir}/st_bad_dtype.safetensors", raw, header_override={"f32": {"dtype": "Q7", "shape": [3, 5], "data_offsets": [0, 60]}})
    with open(f"{out_dir}/st_bad_json.safetensors", "wb") as f:
        f.write(struct.pack("<Q", 5) + b"{oops")
    return [(f"{out_dir}/st_*.safetensors", 9)]

"""PyTorch .pth checkpoints (torch.save's zip format) for the readPth tests: a real state dict with views and
several dtypes, an SCHP-style wrapped dict, the same state dict re-packed deflated, as ZIP64 and pickled with
protocol 4, and files that must be rejected (a pickle calling os.system, an unsupported opcode, the legacy
non-zip format). Nothing here ever unpickles the hostile files."""
import struct
import zipfile
import zlib

import torch
from torch import nn

from golden import write_safetensors


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).flatten(1))


def torch_zip(path, pickle_bytes, archive="archive"):
    """A zip laid out like torch.save's, around a hand-made data.pkl (never unpickled here)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", pickle_bytes)
        z.writestr(f"{archive}/version", "3\n")


def write_zip64(path, members):
    """Stored zip whose central directory uses ZIP64 extra fields and an end-of-central-directory-64 record,
    as big checkpoints do (Python's zipfile only switches to ZIP64 past 4 GiB)."""
    out = bytearray()
    central = bytearray()
    for name, data in members:
        raw_name = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(raw_name), len(local_extra))
        out += raw_name + local_extra + data
        # Central ZIP64 extra: uncompressed size, compressed size, local header offset (in that order).
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(raw_name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF)
        central += raw_name + extra
    cd_offset = len(out)
    out += central
    eocd64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(members), len(members), len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(out)


def build(out_dir):
    torch.manual_seed(5)
    net = Net()
    net.train()
    for _ in range(2):  # non-trivial running stats and num_batches_tracked = 2
        net(torch.randn(4, 2, 4, 4))
    model_sd = net.state_dict()  # OrderedDict with _metadata, as real checkpoints have

    sd = net.state_dict()  # a second one, keeping _metadata (pickled with BUILD), with extras added
    g = torch.Generator().manual_seed(6)
    base = torch.randn(10, generator=g)
    grid = torch.randn(4, 6, generator=g)
    sd["extra.transposed"] = torch.randn(3, 4, generator=g).t()  # stride (1, 4)
    sd["extra.base"] = base
    sd["extra.slice"] = base[3:7]  # same storage, offset 3
    sd["extra.strided"] = grid[1:3, ::2]  # offset 6, stride (6, 2)
    sd["extra.grid"] = grid
    sd["extra.cols"] = grid[:, 1:4]  # dense rows, offset 1, stride (6, 1)
    sd["extra.permuted"] = torch.randn(2, 3, 4, generator=g).permute(2, 0, 1)  # stride (1, 12, 4)
    sd["extra.half"] = torch.randn(5, generator=g).half()
    sd["extra.half_t"] = torch.randn(2, 3, generator=g).half().t()
    sd["extra.bf16"] = torch.randn(4, generator=g).bfloat16()
    sd["extra.double"] = torch.randn(3, generator=g).double()
    sd["extra.scalar"] = torch.tensor(2.5)
    sd["extra.int64"] = torch.tensor([[0, -3], [2147483647, -2147483648]], dtype=torch.int64)
    sd["extra.int32"] = torch.tensor([7, -8], dtype=torch.int32)
    sd["extra.int16"] = torch.tensor([300, -300], dtype=torch.int16)
    sd["extra.int8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["extra.uint8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["extra.bool"] = torch.tensor([True, False, True])
    sd["extra.empty"] = torch.zeros(0, 3)
    assert not sd["extra.transposed"].is_contiguous() and sd["extra.slice"].storage_offset() == 3
    torch.save(sd, f"{out_dir}/pth_state_dict.pth")
    # Expected values widened as our reader does: floats to float32, every integer type to int32.
    write_safetensors(f"{out_dir}/pth_expected.safetensors",
                      {k: v.float() if v.is_floating_point() else v.int() for k, v in sd.items()})

    schp = {"epoch": 3, "best_iou": 0.625, "step": 2**40, "arch": "resnet101",
            "state_dict": {"module." + k: v for k, v in model_sd.items()}}
    torch.save(schp, f"{out_dir}/pth_schp_style.pth")

    # The same archive re-packed: deflated entries, and ZIP64 central directory records.
    with zipfile.ZipFile(f"{out_dir}/pth_state_dict.pth") as src:
        members = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(f"{out_dir}/pth_deflate.pth", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    write_zip64(f"{out_dir}/pth_zip64.pth", members)
    # Protocol 4 pickles (FRAME, STACK_GLOBAL, MEMOIZE, SHORT_BINUNICODE), as torch.save(..., pickle_protocol=4) writes.
    torch.save(sd, f"{out_dir}/pth_protocol4.pth", pickle_protocol=4)
    for path in ("pth_deflate.pth", "pth_zip64.pth"):  # both must still be what torch reads
        back = torch.load(f"{out_dir}/{path}")
        assert all(torch.equal(back[k], v) for k, v in sd.items()), path

    # Hostile pickles, written by hand: PROTO 2, GLOBAL 'os system', 'true', TUPLE1, REDUCE, STOP.
    torch_zip(f"{out_dir}/pth_evil.pth", b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    # INST (protocol 0 "import and call") is not an opcode torch.save emits.
    torch_zip(f"{out_dir}/pth_bad_opcode.pth", b"\x80\x02(X\x04\x00\x00\x00trueios\nsystem\n.")

    torch.save(model_sd, f"{out_dir}/pth_legacy.pth", _use_new_zipfile_serialization=False)
    return [(f"{out_dir}/pth_*.pth", 8)]

"""PyTorch .pth checkpoints for the readPth tests. Zip format (torch >= 1.6): a real state dict with views and
several dtypes, an SCHP-style wrapped dict, the same state dict re-packed deflated, as ZIP64 and pickled with
protocol 4. Legacy non-zip format (torch < 1.6, _use_new_zipfile_serialization=False): the same state dict (also
pickled with protocol 4 and with Python 2's string and OrderedDict pickling), the SCHP-style dict, storage views
written by hand as pre-1.6 torch pickled them, and a truncated file. Files that must be rejected: a pickle calling
os.system, an unsupported opcode, the tar format of torch <= 0.3. Nothing here ever unpickles the hostile files."""
import collections
import io
import pickle
import struct
import tarfile
import types
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


class Py2Pickler(pickle._Pickler):
    """Pickles like Python 2 did: str as SHORT_BINSTRING / BINSTRING, OrderedDict as a REDUCE over [key, value]
    lists (then BUILD with its attributes), as checkpoints saved by torch <= 1.4 under Python 2 are."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_str(self, obj):
        raw = obj.encode("utf-8")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_str

    def reducer_override(self, obj):
        if type(obj) is collections.OrderedDict:
            state = dict(vars(obj)) or None
            return (collections.OrderedDict, ([[k, v] for k, v in obj.items()],), state)
        return NotImplemented


PY2_PICKLE = types.ModuleType("py2_pickle")  # the pickle_module torch.save is given
PY2_PICKLE.Pickler = Py2Pickler
PY2_PICKLE.dump = lambda obj, f, protocol=2: Py2Pickler(f, protocol).dump(obj)


class LegacyStorage:
    """A storage as pre-1.6 torch pickled it: a root storage, or a view (view_key, offset, size) into one."""

    def __init__(self, root_key, root, view=None):
        self.root_key, self.root, self.view = root_key, root, view


class LegacyTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args + (False, collections.OrderedDict()))


def legacy_save_views(path):
    """A legacy file whose persistent ids carry view_metadata (torch >= 1.6 always writes None there), laid out as
    _legacy_save does. Returns what torch.load reads back."""
    a = torch.arange(12, dtype=torch.float32) * 1.5 - 4
    b = torch.arange(5, dtype=torch.float32) + 100
    roots = {"140001": a, "140002": b}
    whole_a, whole_b = LegacyStorage("140001", a), LegacyStorage("140002", b)
    v1 = LegacyStorage("140001", a, ("150001", 2, 8))  # a[2:10]
    v2 = LegacyStorage("140001", a, ("150002", 9, 3))  # a[9:12]
    obj = collections.OrderedDict([
        ("whole", LegacyTensor(whole_a, 0, (3, 4), (4, 1))),
        ("view", LegacyTensor(v1, 0, (8,), (1,))),
        ("view_strided", LegacyTensor(v1, 1, (2, 3), (1, 2))),  # v1[1 + i + 2j]
        ("view_again", LegacyTensor(v1, 4, (4,), (1,))),  # the same view key a second time
        ("tail", LegacyTensor(v2, 0, (3,), (1,))),
        ("other", LegacyTensor(whole_b, 1, (2, 2), (2, 1))),
    ])

    def persistent_id(o):
        if isinstance(o, LegacyStorage):
            return ("storage", torch.FloatStorage, o.root_key, "cpu", o.root.numel(), o.view)
        return None

    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
                    f, protocol=2)
        pickler = pickle.Pickler(f, protocol=2)
        pickler.persistent_id = persistent_id
        pickler.dump(obj)
        keys = sorted(roots)
        pickle.dump(keys, f, protocol=2)
        for k in keys:
            f.write(struct.pack("<q", roots[k].numel()) + roots[k].numpy().astype("<f4").tobytes())
    back = torch.load(path)
    want = {
        "whole": a.view(3, 4),
        "view": a[2:10],
        "view_strided": a.as_strided((2, 3), (1, 2), 3),  # storage offset 2 + 1
        "view_again": a[6:10],
        "tail": a[9:12],
        "other": b[1:5].view(2, 2),
    }
    assert list(back) == list(want) and all(torch.equal(back[k], v) for k, v in want.items())
    return want


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

    # Legacy (non-zip) format: the same state dict as pth_state_dict.pth (compared to pth_expected.safetensors),
    # pickled with protocol 2 (torch.save's default), protocol 4, and the way Python 2 pickled.
    legacy = {
        "pth_legacy_state_dict.pth": {},
        "pth_legacy_protocol4.pth": {"pickle_protocol": 4},
        "pth_legacy_py2.pth": {"pickle_module": PY2_PICKLE},
    }
    for name, kwargs in legacy.items():
        torch.save(sd, f"{out_dir}/{name}", _use_new_zipfile_serialization=False, **kwargs)
        back = torch.load(f"{out_dir}/{name}")
        assert list(back) == list(sd) and all(torch.equal(back[k], v) for k, v in sd.items()), name
    with open(f"{out_dir}/pth_legacy_py2.pth", "rb") as f:
        assert b"U\x0bconv.weight" in f.read()  # really Python 2 strings
    torch.save(model_sd, f"{out_dir}/pth_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(schp, f"{out_dir}/pth_legacy_schp_style.pth", _use_new_zipfile_serialization=False)
    write_safetensors(f"{out_dir}/pth_legacy_views_expected.safetensors", legacy_save_views(f"{out_dir}/pth_legacy_views.pth"))
    # Cut inside the last storage's bytes. A single non-empty storage: storages are written in the order of their
    # keys (object ids), so with several the last one could be sd's empty tensor, whose record is its size alone.
    buf = io.BytesIO()
    torch.save({"w": torch.arange(12.0)}, buf, _use_new_zipfile_serialization=False)
    with open(f"{out_dir}/pth_legacy_truncated.pth", "wb") as f:
        f.write(buf.getvalue()[:-3])

    # torch <= 0.3's tar format (tarfile, PAX): members sys_info, pickle, tensors, storages. Only its shape matters.
    with tarfile.open(f"{out_dir}/pth_legacy_tar.pth", "w", format=tarfile.PAX_FORMAT) as tar:
        for member in ("sys_info", "pickle", "tensors", "storages"):
            data = pickle.dumps({"protocol_version": 1001} if member == "sys_info" else 0, protocol=2)
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return [(f"{out_dir}/pth_*.pth", 15)]

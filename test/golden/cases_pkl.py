"""Plain pickles of numpy arrays, as detectron2 releases its weights (model_final_*.pkl: {'model': {name: ndarray},
'__author__': ...}), for the readPkl tests: the same dict pickled with protocols 2 (bytes through _codecs.encode),
3, 4 and 5 (in-band _frombuffer buffers), and the way Python 2 pickled (arrays' bytes as BINSTRING), every dtype
detectron2 could store, a Fortran-ordered array, numpy scalars. Files that must be refused, written by hand or
with stand-in classes: a pickle calling os.system, an object array, a big-endian array, a torch.save file, an array
whose data is short. Python reads every accepted file back (encoding='latin1', as detectron2 does); nothing here
unpickles the hostile files."""
import io
import pickle
import struct

import numpy as np
import torch

from golden import write_safetensors


class Py2Pickler(pickle._Pickler):
    """Pickles like Python 2: str and bytes both as SHORT_BINSTRING / BINSTRING (raw bytes), as Detectron's
    converted weights (ImageNet R-50.pkl) are."""
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_binstring(self, raw, obj):
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_str(self, obj):
        self._save_binstring(obj.encode("utf-8"), obj)

    def save_bytes(self, obj):
        self._save_binstring(obj, obj)

    dispatch[str] = save_str
    dispatch[bytes] = save_bytes


class BigEndian:
    """Pickles as numpy pickles a '>f4' array (built by hand so the hostile file is explicit)."""

    def __reduce__(self):
        return np.array([1.0, 2.0], dtype=">f4").__reduce__()


def model_dict():
    rng = np.random.default_rng(7)
    return {
        "backbone.bottom_up.stem.conv1.weight": rng.standard_normal((4, 3, 7, 7)).astype(np.float32),
        "backbone.bottom_up.stem.conv1.norm.running_var": rng.random(4).astype(np.float32) + 0.5,
        "roi_heads.box_predictor.cls_score.bias": np.array([0.25, -1.5], dtype=np.float32),
        "big": rng.standard_normal(40000).astype(np.float32),  # > 64 KiB: BINBYTES / BINSTRING with 4-byte length
        "fortran": np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.5 - 3),
        "double": rng.standard_normal((2, 3)),
        "half": rng.standard_normal(5).astype(np.float16),
        "int64": np.array([[0, -3], [2**31 - 1, -2**31]], dtype=np.int64),
        "int32": np.array([7, -8], dtype=np.int32),
        "int16": np.array([300, -300], dtype=np.int16),
        "int8": np.array([-128, 127], dtype=np.int8),
        "uint8": np.array([0, 200, 255], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar0d": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def build(out_dir):
    model = model_dict()
    assert not model["fortran"].flags.c_contiguous
    ckpt = {"model": model, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True,
            "iteration": np.int64(129999), "lr": np.float32(0.5)}
    write_safetensors(f"{out_dir}/pkl_expected.safetensors",
                      {k: (torch.from_numpy(np.array(v, order="C")).float() if v.dtype.kind == "f"
                           else torch.from_numpy(np.array(v, order="C")).int()) for k, v in model.items()})
    files = {}
    for protocol in (2, 3, 4, 5):
        files[f"pkl_protocol{protocol}.pkl"] = pickle.dumps(ckpt, protocol=protocol)
    buf = io.BytesIO()
    Py2Pickler(buf, 2).dump(ckpt)
    files["pkl_py2.pkl"] = buf.getvalue()
    assert b"U\x05int64" in files["pkl_py2.pkl"] and b"c_codecs" not in files["pkl_py2.pkl"]
    assert b"c_codecs\nencode" in files["pkl_protocol2.pkl"]
    assert b"_frombuffer" in files["pkl_protocol5.pkl"]
    files["pkl_bare.pkl"] = pickle.dumps({"a.weight": model["int32"], "b": {"c": model["half"]}}, protocol=4)
    for name, data in files.items():
        back = pickle.loads(data, encoding="latin1")
        got = back["model"] if "model" in back else back
        if "model" in back:
            assert all(np.array_equal(got[k], v) and got[k].dtype == v.dtype for k, v in model.items()), name
        with open(f"{out_dir}/{name}", "wb") as f:
            f.write(data)

    hostile = {
        # PROTO 2, GLOBAL 'os system', 'true', TUPLE1, REDUCE, STOP
        "pkl_evil.pkl": b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
        "pkl_object.pkl": pickle.dumps({"model": {"w": np.array([1, "a"], dtype=object)}}, protocol=2),
        "pkl_bigendian.pkl": pickle.dumps({"model": {"w": BigEndian()}}, protocol=3),
    }
    assert b"numpy" in hostile["pkl_object.pkl"] and b">" in hostile["pkl_bigendian.pkl"]
    # The data of a 2 x 2 float32 array cut to 12 bytes (BINBYTES length patched), still a well-formed pickle.
    short = pickle.dumps({"model": {"w": np.arange(4, dtype=np.float32)}}, protocol=3)
    data = np.arange(4, dtype=np.float32).tobytes()
    at = short.index(b"C" + bytes([len(data)]) + data)
    hostile["pkl_short.pkl"] = short[:at] + b"C" + bytes([12]) + data[:12] + short[at + 2 + len(data):]
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf, _use_new_zipfile_serialization=False)
    hostile["pkl_torch_legacy.pkl"] = buf.getvalue()
    for name, data in hostile.items():
        with open(f"{out_dir}/{name}", "wb") as f:
            f.write(data)
    return [(f"{out_dir}/pkl_*.pkl", len(files) + len(hostile))]

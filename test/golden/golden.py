"""Golden-file writer for the parity tests.

A Group collects cases: inputs, the PyTorch result of an op on them, a random upstream gradient per
output and the resulting input gradients. It writes one safetensors file (written by hand: torch 1.13
has no safetensors module) whose metadata lists the cases, so the TypeScript side can replay each one.
"""
import json
import struct

import numpy as np
import torch

OUT_DIR = None  # set by generate.py


def _to_numpy(t):
    t = t.detach().cpu()
    if t.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.bool):
        return t.to(torch.int32).numpy(), "I32"
    return t.to(torch.float32).numpy(), "F32"


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch.Tensor. Writes the safetensors layout (sorted names, aligned header)."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr, dtype = _to_numpy(tensors[name])
        raw = np.ascontiguousarray(arr).astype("<f4" if dtype == "F32" else "<i4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for b in blobs:
            f.write(b)


class Group:
    def __init__(self, name, seed=0):
        self.name = name
        self.cases = []
        self.tensors = {}
        self.gen = torch.Generator().manual_seed(seed)

    # -- random inputs (float64 math in torch would hide float32 effects, so everything stays float32)
    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.gen) * scale

    def rand(self, *shape, low=0.0, high=1.0):
        return torch.rand(*shape, generator=self.gen) * (high - low) + low

    def randint(self, high, *shape, low=0):
        return torch.randint(low, high, shape, generator=self.gen)

    def case(self, name, op, inputs, fn, attrs=None, grad=None, tol=None, grad_tol=None):
        """Records fn(*inputs). `grad` lists which inputs get gradients (default: all float inputs)."""
        assert all(c["name"] != name for c in self.cases), f"duplicate case {name}"
        prepared = []
        for i, x in enumerate(inputs):
            wants = x.is_floating_point() and (grad is None or grad[i])
            prepared.append(x.clone().detach().requires_grad_(wants))
        out = fn(*prepared)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        entry = {
            "name": name,
            "op": op,
            "attrs": attrs or {},
            "inputs": [{"requiresGrad": p.requires_grad} for p in prepared],
            "outputs": len(outs),
            "grads": [],
        }
        if tol is not None:
            entry["tol"] = tol
        if grad_tol is not None:
            entry["gradTol"] = grad_tol
        for i, p in enumerate(prepared):
            self.tensors[f"{name}.in{i}"] = p
        for j, o in enumerate(outs):
            self.tensors[f"{name}.out{j}"] = o
        diff_outs = [(j, o) for j, o in enumerate(outs) if o.is_floating_point() and o.requires_grad]
        wanted = [p for p in prepared if p.requires_grad]
        if diff_outs and wanted:
            gouts = []
            for j, o in diff_outs:
                g = torch.randn(o.shape, generator=self.gen)
                self.tensors[f"{name}.gout{j}"] = g
                gouts.append(g)
            grads = torch.autograd.grad([o for _, o in diff_outs], wanted, gouts, allow_unused=True)
            it = iter(grads)
            for i, p in enumerate(prepared):
                if p.requires_grad:
                    g = next(it)
                    if g is None:
                        g = torch.zeros_like(p)
                    self.tensors[f"{name}.grad{i}"] = g
                    entry["grads"].append(i)
        self.cases.append(entry)

    def save(self, out_dir):
        path = f"{out_dir}/{self.name}.safetensors"
        write_safetensors(path, self.tensors, {"cases": json.dumps(self.cases)})
        return path, len(self.cases)

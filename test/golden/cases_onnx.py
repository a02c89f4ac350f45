"""ONNX graphs exported by torch.onnx.export (PyTorch 1.13's own serializer: no `onnx` Python package needed),
replayed by the TypeScript ONNX executor (test/parity/onnx.test.ts) and compared with PyTorch's outputs here
and with ONNX Runtime (onnxruntime-node) there.

- The small random-weight CE2P of cases_schp.py (InPlaceABN written out: Abs/Add on the BN weights,
  BatchNormalization, LeakyRelu, dilated Conv, MaxPool, AveragePool and GlobalAveragePool for the PSP's adaptive
  pooling, Resize align_corners with sizes from Shape/Slice/Concat) at opsets 11 and 13. The input is sized so
  the PSP's adaptive pools (1, 2, 3, 6) divide the 6x6 feature map, as torch's exporter requires.
- A module of other ops an exporter emits (Softmax, Transpose, Reshape/Flatten, Gemm, MatMul, Pad, half-pixel
  bilinear and nearest Resize, padded ceil-mode AveragePool, Slice, Clip, Sigmoid, arithmetic) at opsets 11 and 13.
"""
import io

import torch
import torch.nn as nn
import torch.nn.functional as F

from cases_schp import SMALL, ResNet
from golden import write_safetensors


def random_ce2p(gen):
    m = ResNet(**SMALL).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return m


class Misc(nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=(1, 2), bias=True)
        self.fc = nn.Linear(8, 5)
        self.proj = nn.Parameter(torch.randn(6, 4, generator=gen) * 0.5)
        with torch.no_grad():
            for p in list(self.conv.parameters()) + list(self.fc.parameters()):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x):
        y = self.conv(x)                                                     # asymmetric padding kept as Conv pads
        y = torch.sigmoid(y) * 2.0 - 0.5
        a = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)   # Resize half_pixel (scales)
        b = F.interpolate(y, size=(7, 9), mode="nearest")                    # Resize asymmetric/floor (sizes)
        p = F.avg_pool2d(F.pad(a, (1, 2, 0, 1)), 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        s = torch.softmax(p, dim=1)
        t = s.permute(0, 2, 3, 1)                                            # Transpose
        g = self.fc(t)                                                       # MatMul + Add (or Gemm)
        f = torch.flatten(b, 1)
        h = torch.clamp(f[:, 2:-3] / 3.0, -0.4, 0.6)                         # Slice, Div, Clip
        m = torch.matmul(g[0, :, :, :4].reshape(-1, 4), self.proj.t())      # Reshape, MatMul
        pooled = F.adaptive_avg_pool2d(y, 1).squeeze(-1).squeeze(-1)        # GlobalAveragePool, Squeeze
        return g, h, torch.log_softmax(m, -1), pooled.unsqueeze(1) - 1.0


def export(model, x, opset):
    buf = io.BytesIO()
    torch.onnx.export(model, x, buf, opset_version=opset, do_constant_folding=True)
    return buf.getvalue()


def build(out_dir):
    gen = torch.Generator().manual_seed(53)
    items = []
    ce2p = random_ce2p(gen)
    x = torch.randn(1, 3, 89, 81, generator=gen)
    with torch.no_grad():
        [[parsing, fusion], [edge]] = ce2p(x)
    tensors = {"ce2p/x": x, "ce2p/parsing": parsing, "ce2p/fusion": fusion, "ce2p/edge": edge}
    for opset in (11, 13):
        path = f"{out_dir}/onnx_ce2p_op{opset}.onnx"
        with open(path, "wb") as f:
            f.write(export(ce2p, x, opset))
        items.append((path, 3))

    misc = Misc(gen).eval()
    xm = torch.randn(2, 3, 11, 13, generator=gen)
    with torch.no_grad():
        outs = misc(xm)
    tensors["misc/x"] = xm
    for i, o in enumerate(outs):
        tensors[f"misc/out{i}"] = o
    for opset in (11, 13):
        path = f"{out_dir}/onnx_misc_op{opset}.onnx"
        with open(path, "wb") as f:
            f.write(export(misc, xm, opset))
        items.append((path, len(outs)))
    write_safetensors(f"{out_dir}/onnx.safetensors", tensors)
    items.append((f"{out_dir}/onnx.safetensors", len(tensors)))
    return items

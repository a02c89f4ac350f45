"""ONNX graphs exported by torch.onnx.export (PyTorch 1.13's own serializer: no `onnx` Python package needed),
replayed by the TypeScript ONNX executor (test/parity/onnx.test.ts) and compared with PyTorch's outputs here
and with ONNX Runtime (onnxruntime-node) there.

- The small random-weight CE2P of cases_schp.py (InPlaceABN written out: Abs/Add on the BN weights,
  BatchNormalization, LeakyRelu, dilated Conv, MaxPool, AveragePool and GlobalAveragePool for the PSP's adaptive
  pooling, Resize align_corners with sizes from Shape/Slice/Concat) at opsets 11 and 13. The input is sized so
  the PSP's adaptive pools (1, 2, 3, 6) divide the 6x6 feature map, as torch's exporter requires.
- A module of other ops an exporter emits (Softmax, Transpose, Reshape/Flatten, Gemm, MatMul, Pad, half-pixel
  bilinear and nearest Resize, padded ceil-mode AveragePool, Slice, Clip, Sigmoid, arithmetic) at opsets 11 and 13.
- Leffa's parsing_api.onnx_inference combination of ATR and LIP label maps, run with its own code (cv2, Debian's
  python3-opencv) on synthetic maps and end to end on two random-weight exports.
"""
import io

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cases_schp import SMALL, ResNet, randomize
from golden import write_safetensors


def random_ce2p(gen, num_classes=20):
    return randomize(ResNet(**dict(SMALL, num_classes=num_classes)).eval(), gen)


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
    return items + build_leffa(out_dir, gen)


# -- Leffa's parsing_api.onnx_inference: the combination of the ATR and LIP label maps, with the official
# functions (cv2) as written there.

def hole_fill(img):
    import cv2
    img_copy = img.copy()
    mask = np.zeros((img.shape[0] + 2, img.shape[1] + 2), dtype=np.uint8)
    cv2.floodFill(img, mask, (0, 0), 255)
    img_inverse = cv2.bitwise_not(img)
    dst = cv2.bitwise_or(img_copy, img_inverse)
    return dst


def refine_hole(parsing_result_filled, parsing_result, arm_mask):
    import cv2
    filled_hole = cv2.bitwise_and(np.where(parsing_result_filled == 4, 255, 0),
                                  np.where(parsing_result != 4, 255, 0)) - arm_mask * 255
    contours, hierarchy = cv2.findContours(filled_hole, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_TC89_L1)
    refine_hole_mask = np.zeros_like(parsing_result).astype(np.uint8)
    for i in range(len(contours)):
        a = cv2.contourArea(contours[i], True)
        if abs(a) > 2000:
            cv2.drawContours(refine_hole_mask, contours, i, color=255, thickness=-1)
    return refine_hole_mask + arm_mask


def combine_official(parsing_result, parsing_result_lip):
    parsing_result = np.pad(parsing_result, pad_width=1, mode='constant', constant_values=0)
    arm_mask = (parsing_result == 14).astype(np.float32) + (parsing_result == 15).astype(np.float32)
    upper_cloth_mask = (parsing_result == 4).astype(np.float32) + arm_mask
    img = np.where(upper_cloth_mask, 255, 0)
    dst = hole_fill(img.astype(np.uint8))
    parsing_result_filled = dst / 255 * 4
    parsing_result_woarm = np.where(parsing_result_filled == 4, parsing_result_filled, parsing_result)
    refine_hole_mask = refine_hole(parsing_result_filled.astype(np.uint8), parsing_result.astype(np.uint8),
                                   arm_mask.astype(np.uint8))
    parsing_result = np.where(refine_hole_mask, parsing_result, parsing_result_woarm)
    parsing_result = parsing_result[1:-1, 1:-1]
    neck_mask = np.logical_and(np.logical_not((parsing_result_lip == 13).astype(np.float32)),
                               (parsing_result == 11).astype(np.float32))
    parsing_result = np.where(neck_mask, 18, parsing_result)
    face_mask = (parsing_result == 11).astype(np.float32)
    return parsing_result, face_mask


def synthetic_maps():
    """ATR / LIP label maps exercising the combination: clothes with small holes (filled) and rectangular holes
    of 2500 and 2100 pixels (kept, an island inside one) and 1900 pixels (filled), a hole inside an arm, holes
    touching each other only diagonally, and a face LIP covers only in part (the rest becomes neck)."""
    atr = np.zeros((150, 130), np.int64)
    atr[20:145, 20:110] = 4
    atr[30:80, 25:75] = 0            # 50 x 50 = 2500: kept
    atr[50:55, 40:45] = 6            # an island inside it
    atr[85:135, 25:63] = 16          # 50 x 38 = 1900: becomes clothes
    atr[85:135, 66:108] = 2          # 50 x 42 = 2100: kept
    atr[138:141, 30:36] = 5          # small: becomes clothes
    atr[141:143, 36:38] = 7          # diagonal neighbour of the previous
    atr[30:120, 5:20] = 14           # left arm, touching the clothes
    atr[60:70, 10:14] = 0            # a gap inside the arm: filled
    atr[30:120, 110:125] = 15        # right arm
    atr[2:19, 45:85] = 11            # face
    atr[0:2, 50:80] = 2              # hair
    lip = np.zeros_like(atr)
    lip[2:12, 40:90] = 13            # LIP face covers the top of the ATR face only
    return atr, lip


def build_leffa(out_dir, gen):
    """The combination on synthetic maps and, end to end, on two random-weight CE2P exports (ATR 18 classes at
    89x81, LIP 20 classes at 85x95) through simple_extractor's preprocessing and warp back."""
    from cases_schp import parse_reference
    tensors = {}
    atr, lip = synthetic_maps()
    labels, face = combine_official(atr, lip)
    tensors["leffa/synthetic_atr"] = torch.from_numpy(atr)
    tensors["leffa/synthetic_lip"] = torch.from_numpy(lip)
    tensors["leffa/synthetic_labels"] = torch.from_numpy(np.asarray(labels, np.int64))
    tensors["leffa/synthetic_face"] = torch.from_numpy(face)
    image = torch.rand(3, 70, 52, generator=gen)
    tensors["leffa/image"] = image
    for name, classes, size in (("atr", 18, (89, 81)), ("lip", 20, (85, 95))):
        net = random_ce2p(gen, classes)
        with torch.no_grad():
            # No head biases and larger head weights: label maps with several classes rather than one.
            net.fushion[3].bias.zero_()
            net.fushion[3].weight.mul_(3.0)
        x = torch.zeros(1, 3, *size)
        path = f"{out_dir}/onnx_leffa_{name}.onnx"
        with open(path, "wb") as f:
            f.write(export(net, x, 11))
        with torch.no_grad():
            logits = parse_reference(net, image, size, flip_idx=())
        tensors[f"leffa/{name}_logits"] = logits
        tensors[f"leffa/{name}_labels"] = logits.argmax(0)
    end_labels, end_face = combine_official(tensors["leffa/atr_labels"].numpy(), tensors["leffa/lip_labels"].numpy())
    tensors["leffa/labels"] = torch.from_numpy(np.asarray(end_labels, np.int64))
    tensors["leffa/face"] = torch.from_numpy(end_face)
    write_safetensors(f"{out_dir}/onnx_leffa.safetensors", tensors)
    return [(f"{out_dir}/onnx_leffa.safetensors", len(tensors))]

"""OpenPose body model: a torch transcription of the COCO-18 CPM/PAF network with the PyTorch port's module
layout (model0 = VGG front, model1_1/model1_2 = stage 1, modelS_1/modelS_2 = stages 2..6), random weights,
all stage outputs (and the last heatmap of the released layer list, whose `no_relu_layers` names
Mconv7_stage6_L1 twice and so keeps a ReLU after the last L2 convolution); plus the full-size model's key names
and shapes; plus body.py's peak smoothing, scipy.ndimage.gaussian_filter(sigma=3) (default 'reflect' border),
and its 4-neighbour peaks, on maps with peaks at and next to the border."""
import json
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
from scipy.ndimage import gaussian_filter

from golden import write_safetensors


def make_layers(spec, no_relu):
    layers = []
    for name, v in spec.items():
        if "pool" in name:
            layers.append((name, nn.MaxPool2d(kernel_size=v[0], stride=v[1], padding=v[2])))
        else:
            layers.append((name, nn.Conv2d(v[0], v[1], kernel_size=v[2], stride=v[3], padding=v[4])))
            if name not in no_relu:
                layers.append(("relu_" + name, nn.ReLU(inplace=False)))
    return nn.Sequential(OrderedDict(layers))


class BodyPose(nn.Module):
    def __init__(self, vgg=(64, 128, 256, 512), cpm=(256, 128), w=128, expand=512, stages=6, k=7, released=False):
        super().__init__()
        c1, c2, c3, c4 = vgg
        f1, f2 = cpm
        self.stages = stages
        no_relu = set()
        block0 = OrderedDict([
            ("conv1_1", [3, c1, 3, 1, 1]), ("conv1_2", [c1, c1, 3, 1, 1]), ("pool1_stage1", [2, 2, 0]),
            ("conv2_1", [c1, c2, 3, 1, 1]), ("conv2_2", [c2, c2, 3, 1, 1]), ("pool2_stage1", [2, 2, 0]),
            ("conv3_1", [c2, c3, 3, 1, 1]), ("conv3_2", [c3, c3, 3, 1, 1]), ("conv3_3", [c3, c3, 3, 1, 1]), ("conv3_4", [c3, c3, 3, 1, 1]),
            ("pool3_stage1", [2, 2, 0]),
            ("conv4_1", [c3, c4, 3, 1, 1]), ("conv4_2", [c4, c4, 3, 1, 1]), ("conv4_3_CPM", [c4, f1, 3, 1, 1]), ("conv4_4_CPM", [f1, f2, 3, 1, 1]),
        ])
        self.model0 = make_layers(block0, no_relu)
        for b, out in [(1, 38), (2, 19)]:
            spec = OrderedDict([
                (f"conv5_1_CPM_L{b}", [f2, w, 3, 1, 1]), (f"conv5_2_CPM_L{b}", [w, w, 3, 1, 1]), (f"conv5_3_CPM_L{b}", [w, w, 3, 1, 1]),
                (f"conv5_4_CPM_L{b}", [w, expand, 1, 1, 0]), (f"conv5_5_CPM_L{b}", [expand, out, 1, 1, 0]),
            ])
            setattr(self, f"model1_{b}", make_layers(spec, {f"conv5_5_CPM_L{b}"}))
            for s in range(2, stages + 1):
                spec = OrderedDict([(f"Mconv1_stage{s}_L{b}", [38 + 19 + f2, w, k, 1, k // 2])] +
                                   [(f"Mconv{j}_stage{s}_L{b}", [w, w, k, 1, k // 2]) for j in range(2, 6)] +
                                   [(f"Mconv6_stage{s}_L{b}", [w, w, 1, 1, 0]), (f"Mconv7_stage{s}_L{b}", [w, out, 1, 1, 0])])
                # pytorch-openpose's list: every Mconv7 but the last stage's L2 (Mconv7_stage6_L1 is listed twice).
                no_relu = {f"Mconv7_stage{s}_L{b}"} if not (released and s == stages and b == 2) else set()
                setattr(self, f"model{s}_{b}", make_layers(spec, no_relu))

    def forward(self, x):
        f = self.model0(x)
        outs = []
        h = f
        for s in range(1, self.stages + 1):
            paf = getattr(self, f"model{s}_1")(h)
            heat = getattr(self, f"model{s}_2")(h)
            outs.append((paf, heat))
            h = torch.cat([paf, heat, f], 1)
        return outs


def build(out_dir):
    gen = torch.Generator().manual_seed(31)
    small = BodyPose(vgg=(16, 32, 48, 64), cpm=(48, 32), w=32, expand=64, stages=3, k=5)
    with torch.no_grad():
        for p in small.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.15)
    x = torch.randn(2, 3, 48, 40, generator=gen)
    with torch.no_grad():
        outs = small(x)
    tensors = {f"weights/{k}": v for k, v in small.state_dict().items()}
    tensors["input/x"] = x
    for i, (paf, heat) in enumerate(outs):
        tensors[f"output/paf{i + 1}"] = paf
        tensors[f"output/heatmap{i + 1}"] = heat
    released = BodyPose(vgg=(16, 32, 48, 64), cpm=(48, 32), w=32, expand=64, stages=3, k=5, released=True)
    released.load_state_dict(small.state_dict())
    with torch.no_grad():
        rel = released(x)
    assert (rel[-1][1] >= 0).all() and not (outs[-1][1] >= 0).all()
    tensors["output_released/paf3"] = rel[-1][0]
    tensors["output_released/heatmap3"] = rel[-1][1]
    write_safetensors(f"{out_dir}/openpose_small.safetensors", tensors, {"stages": "3"})
    peaks = build_peaks(out_dir)
    maps = build_maps(out_dir, small)

    saved = nn.Conv2d.reset_parameters
    nn.Conv2d.reset_parameters = lambda self: None
    try:
        full = BodyPose()
    finally:
        nn.Conv2d.reset_parameters = saved
    with open(f"{out_dir}/openpose_keys.json", "w") as f:
        json.dump({k: list(v.shape) for k, v in full.state_dict().items()}, f)
    n = sum(p.numel() for p in full.parameters())
    return [(f"{out_dir}/openpose_small.safetensors", 8), (f"{out_dir}/openpose_keys.json ({n} parameters)", len(full.state_dict())), peaks, maps]


def body_peaks(one_heatmap, thre1=0.1):
    """body.py's peak test on a smoothed map (zeros outside)."""
    m = one_heatmap
    left = np.zeros(m.shape); left[1:, :] = m[:-1, :]
    right = np.zeros(m.shape); right[:-1, :] = m[1:, :]
    up = np.zeros(m.shape); up[:, 1:] = m[:, :-1]
    down = np.zeros(m.shape); down[:, :-1] = m[:, 1:]
    return np.logical_and.reduce((m >= left, m >= right, m >= up, m >= down, m > thre1))


def build_peaks(out_dir):
    """Per-plane gaussian_filter(sigma=3) as body.py calls it (float64 planes), 'reflect' and 'constant' (zeros)."""
    rng = np.random.default_rng(5)
    tensors = {}
    cases = {"border": (3, 40, 50), "tiny": (2, 6, 9)}
    for name, (c, h, w) in cases.items():
        yy, xx = np.mgrid[0:h, 0:w]
        maps = rng.uniform(0, 0.05, (c, h, w))
        blobs = {
            "border": [[(20, 0.4, 1.2, 1.0), (3, 30, 4, 0.8)], [(0.6, 25, 1.5, 0.9), (39, 49, 2, 0.7)], [(12, 48.7, 1.2, 1.0), (30, 20, 3, 0.5)]],
            "tiny": [[(0.5, 1, 1.5, 1.0)], [(5, 7.5, 2, 0.8)]],
        }[name]
        for ch, bl in enumerate(blobs):
            for (cy, cx, sd, amp) in bl:
                maps[ch] += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sd * sd))
        reflect = np.stack([gaussian_filter(maps[i], sigma=3) for i in range(c)])
        zeros = np.stack([gaussian_filter(maps[i], sigma=3, mode="constant", cval=0.0) for i in range(c)])
        tensors[f"{name}/x"] = torch.from_numpy(maps.astype(np.float32))
        tensors[f"{name}/reflect"] = torch.from_numpy(reflect.astype(np.float32))
        tensors[f"{name}/zeros"] = torch.from_numpy(zeros.astype(np.float32))
        tensors[f"{name}/peaks"] = torch.from_numpy(np.stack([body_peaks(reflect[i]) for i in range(c)]).astype(np.float32))
        tensors[f"{name}/peaks_zeros"] = torch.from_numpy(np.stack([body_peaks(zeros[i]) for i in range(c)]).astype(np.float32))
    write_safetensors(f"{out_dir}/openpose_peaks.safetensors", tensors, {})
    return (f"{out_dir}/openpose_peaks.safetensors", len(tensors))


def cubic(x, size):
    """cv2.resize(INTER_CUBIC) stand-in for body.py (cv2 is not in the oracle): bicubic A=-0.75, half-pixel
    centres, clamped borders, no antialiasing; float throughout (cv2 rounds the uint8 image, < 0.5 levels)."""
    return torch.nn.functional.interpolate(x[None], size=size, mode="bicubic", align_corners=False)[0]


def build_maps(out_dir, model):
    """body.py's procedure for scale_search [0.5, 1.0] at boxsize 64 on a 60x44 image: per scale, the image
    resized to scale * boxsize / height (cubic), padded right/bottom with 128 to a multiple of 8, BGR / 256 - 0.5,
    the network, x8 cubic, the padding cropped, cubic back to the image size; averaged once per scale (body.py's
    `heatmap_avg += heatmap_avg + ...` double-counts earlier scales; ours does not)."""
    gen = torch.Generator().manual_seed(12)
    H, W, boxsize, stride = 60, 44, 64, 8
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    base = torch.stack([128 + 100 * torch.sin(xx / 5 + c) * torch.cos(yy / 7 - c) for c in range(3)])
    rgb = (base + 20 * torch.randn(3, H, W, generator=gen)).clamp(0, 255).round()
    bgr = rgb.flip(0)
    scales = [0.5, 1.0]
    heat_avg = torch.zeros(19, H, W)
    paf_avg = torch.zeros(38, H, W)
    inputs = {}
    for s in scales:
        m = s * boxsize / H
        h, w = int(np.floor(H * m + 0.5)), int(np.floor(W * m + 0.5))
        im = cubic(bgr, (h, w))
        ph, pw = (stride - h % stride) % stride, (stride - w % stride) % stride
        im = torch.nn.functional.pad(im, (0, pw, 0, ph), value=128.0)
        inputs[s] = im.shape
        with torch.no_grad():
            paf, heat = model(im[None] / 256 - 0.5)[-1]
        back = lambda t: cubic(cubic(t[0], (t.shape[2] * stride, t.shape[3] * stride))[:, :h, :w], (H, W))
        heat_avg += back(heat) / len(scales)
        paf_avg += back(paf) / len(scales)
    smooth = torch.from_numpy(np.stack([gaussian_filter(heat_avg[p].double().numpy(), sigma=3) for p in range(19)]).astype(np.float32))
    tensors = {"input/rgb": rgb, "output/heatmap": heat_avg, "output/paf": paf_avg, "output/smoothed": smooth}
    write_safetensors(f"{out_dir}/openpose_maps.safetensors", tensors, {"scales": "0.5,1.0", "boxsize": str(boxsize),
                                                                          "inputs": json.dumps({str(k): list(v) for k, v in inputs.items()})})
    return (f"{out_dir}/openpose_maps.safetensors", len(tensors))

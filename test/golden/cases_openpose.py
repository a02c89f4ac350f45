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


def cv2_cubic_matrix(n_in, n_out, inv_scale):
    """One axis of cv2.resize(INTER_CUBIC) (OpenCV imgproc/src/resize.cpp) as an [n_out, n_in] matrix: output o
    samples source f = (o + 0.5) / inv_scale - 0.5, where inv_scale is the factor OpenCV keeps (fx as given;
    dsize / ssize only when a size is given), taps floor(f) - 1 .. floor(f) + 2 clamped to the image (OpenCV's
    border for resize), weights of interpolateCubic with A = -0.75."""
    A = -0.75
    M = np.zeros((n_out, n_in))
    for o in range(n_out):
        f = (o + 0.5) / inv_scale - 0.5
        s = int(np.floor(f))
        t = f - s
        c0 = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A
        c1 = ((A + 2) * t - (A + 3)) * t * t + 1
        c2 = ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1
        for k, c in enumerate((c0, c1, c2, 1 - c0 - c1 - c2)):
            M[o, min(max(s - 1 + k, 0), n_in - 1)] += c
    return M


def cv2_resize(x, fx=None, size=None):
    """cv2.resize(x, (0, 0), fx=fx, fy=fx, INTER_CUBIC) (output round(H fx) x round(W fx), cvRound = half to
    even, as numpy rounds) or cv2.resize(x, (w, h), INTER_CUBIC), of a [C, H, W] float64 array. cv2 itself is not
    in the oracle; this follows its definition and is checked against torch's bicubic where the two agree."""
    C, H, W = x.shape
    if size is None:
        h, w = int(np.round(H * fx)), int(np.round(W * fx))
        sy = sx = fx
    else:
        h, w = size
        sy, sx = h / H, w / W
    return np.einsum("oh,chw,pw->cop", cv2_cubic_matrix(H, h, sy), x, cv2_cubic_matrix(W, w, sx))


def check_cv2_resize():
    """The cv2 stand-in equals torch's bicubic (A = -0.75, clamped, half-pixel centres) for a given size, and for a
    given factor where torch's floor size equals cv2's rounded one (torch then maps with 1 / factor too)."""
    x = torch.randn(2, 13, 11, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    F = torch.nn.functional
    for size in [(7, 5), (30, 41), (13, 11)]:
        ref = F.interpolate(x[None], size=size, mode="bicubic", align_corners=False)[0].numpy()
        assert np.abs(cv2_resize(x.numpy(), size=size) - ref).max() < 1e-9, size
    for fx in [0.4, 8.0, 1.1]:
        assert np.floor(13 * fx) == np.round(13 * fx) and np.floor(11 * fx) == np.round(11 * fx), fx
        ref = F.interpolate(x[None], scale_factor=fx, mode="bicubic", align_corners=False, recompute_scale_factor=False)[0].numpy()
        assert np.abs(cv2_resize(x.numpy(), fx=fx) - ref).max() < 1e-9, fx
    # A factor whose width is not an integer: OpenCV maps with the factor, not with the rounded size.
    assert np.abs(cv2_resize(x.numpy(), fx=0.55) - cv2_resize(x.numpy(), size=(7, 6))).max() > 1e-3


def build_maps(out_dir, model):
    """body.py's procedure for scale_search [0.5, 1.0, 1.5] at boxsize 64 on a 60x44 uint8 image: per scale,
    multiplier m = scale * boxsize / height; cv2.resize(fx=m, INTER_CUBIC) of the uint8 image (widths 44 m = 23.47,
    46.93, 70.4 round to 23, 47, 70: OpenCV maps with m, not with the rounded size) back into uint8 (rounded half
    up, saturated); padded right/bottom with 128 to a multiple of 8, BGR / 256 -
    0.5, the network, cv2.resize(fx=8), the padding cropped, cv2.resize to the image size; heatmaps accumulated
    as body.py (`heatmap_avg += heatmap_avg + heatmap / n`) and, as the 'mean' option, once per scale; PAFs
    averaged. OpenCV's fixed-point uint8 weights can move a value lying within about 1e-3 of a rounding
    boundary by one level, so the unrounded resized images are stored too (the test accepts either level
    there, and feeds the network this procedure's own input so that the maps compare tightly)."""
    check_cv2_resize()
    H, W, boxsize, stride = 60, 44, 64, 8
    scales = [0.5, 1.0, 1.5]
    gen = torch.Generator().manual_seed(12)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    base = torch.stack([128 + 100 * torch.sin(xx / 5 + c) * torch.cos(yy / 7 - c) for c in range(3)])
    rgb = (base + 20 * torch.randn(3, H, W, generator=gen)).clamp(0, 255).round()
    bgr = rgb.flip(0).double().numpy()
    resized = [cv2_resize(bgr, fx=s * boxsize / H) for s in scales]
    heat_body = np.zeros((19, H, W))
    heat_mean = np.zeros((19, H, W))
    paf_avg = np.zeros((38, H, W))
    tensors = {"input/rgb": rgb}
    for s, im in zip(scales, resized):
        tensors[f"resized/scale{s}"] = torch.from_numpy(im.astype(np.float32))
        im = np.clip(np.floor(im + 0.5), 0, 255)
        h, w = im.shape[1:]
        ph, pw = (stride - h % stride) % stride, (stride - w % stride) % stride
        im = np.pad(im, ((0, 0), (0, ph), (0, pw)), constant_values=128.0)
        net_in = torch.from_numpy(im[None] / 256 - 0.5).float()
        tensors[f"input/scale{s}"] = net_in[0]
        with torch.no_grad():
            paf, heat = model(net_in)[-1]
        back = lambda t: cv2_resize(cv2_resize(t[0].double().numpy(), fx=stride)[:, :h, :w], size=(H, W))
        heat_body += heat_body + back(heat) / len(scales)
        heat_mean += back(heat) / len(scales)
        paf_avg += back(paf) / len(scales)
    smooth = np.stack([gaussian_filter(heat_body[p], sigma=3) for p in range(19)])
    f32 = lambda a: torch.from_numpy(a.astype(np.float32))
    tensors.update({"output/heatmap": f32(heat_body), "output/heatmap_mean": f32(heat_mean), "output/paf": f32(paf_avg), "output/smoothed": f32(smooth)})
    write_safetensors(f"{out_dir}/openpose_maps.safetensors", tensors, {"scales": ",".join(map(str, scales)), "boxsize": str(boxsize)})
    return (f"{out_dir}/openpose_maps.safetensors", len(tensors))

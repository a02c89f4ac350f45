"""SCHP human parsing (CE2P, networks/AugmentCE2P.py): a torch transcription of the official ResNet-101 network
with InPlaceABN(Sync) written out as the official CUDA kernel computes it in eval mode (batch norm on the
running statistics with scale |weight| + eps, then leaky ReLU 0.01, or nothing for the backbone's
`BatchNorm2d = partial(InPlaceABNSync, activation='none')`). Random weights under the official key names for
a reduced config, the three outputs at an odd input size; simple_extractor.py's inference around the same model
(person box affine, BGR normalisation, warp back of the fused logits) with evaluate.py's flip and multi-scale
testing; plus the full LIP model's key names and shapes."""
import json

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden import write_safetensors


class ABN(nn.Module):
    """InPlaceABNSync's state (weight, bias, running_mean, running_var; no num_batches_tracked) and eval math."""

    def __init__(self, c, activation="leaky_relu", eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.activation = activation
        self.eps = eps

    def forward(self, x):
        y = F.batch_norm(x, self.running_mean, self.running_var, self.weight.abs() + self.eps, self.bias, False, 0.1, self.eps)
        return F.leaky_relu(y, 0.01) if self.activation == "leaky_relu" else y


def BN(c):
    return ABN(c, activation="none")


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, multi_grid=1):
        super().__init__()
        d = dilation * multi_grid
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = BN(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=d, dilation=d, bias=False)
        self.bn2 = BN(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = BN(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + residual)


class PSPModule(nn.Module):
    def __init__(self, features, out_features, sizes=(1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d((s, s)), nn.Conv2d(features, out_features, 1, bias=False), ABN(out_features))
            for s in sizes
        ])
        self.bottleneck = nn.Sequential(
            nn.Conv2d(features + len(sizes) * out_features, out_features, 3, padding=1, bias=False), ABN(out_features))

    def forward(self, feats):
        h, w = feats.shape[2:]
        priors = [F.interpolate(stage(feats), size=(h, w), mode="bilinear", align_corners=True) for stage in self.stages]
        return self.bottleneck(torch.cat(priors + [feats], 1))


class EdgeModule(nn.Module):
    def __init__(self, in_fea, mid_fea, out_fea=2):
        super().__init__()
        for i, c in enumerate(in_fea):
            setattr(self, f"conv{i + 1}", nn.Sequential(nn.Conv2d(c, mid_fea, 1, bias=False), ABN(mid_fea)))
        self.conv4 = nn.Conv2d(mid_fea, out_fea, 3, padding=1, bias=True)
        self.conv5 = nn.Conv2d(out_fea * 3, out_fea, 1, bias=True)

    def forward(self, x1, x2, x3):
        h, w = x1.shape[2:]
        up = lambda t: F.interpolate(t, size=(h, w), mode="bilinear", align_corners=True)
        f1, f2, f3 = self.conv1(x1), self.conv2(x2), self.conv3(x3)
        e1, e2, e3 = self.conv4(f1), self.conv4(f2), self.conv4(f3)
        edge = self.conv5(torch.cat([e1, up(e2), up(e3)], 1))
        return edge, torch.cat([f1, up(f2), up(f3)], 1)


class DecoderModule(nn.Module):
    def __init__(self, num_classes, top, low, mid, low_out):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(top, mid, 1, bias=False), ABN(mid))
        self.conv2 = nn.Sequential(nn.Conv2d(low, low_out, 1, bias=False), ABN(low_out))
        self.conv3 = nn.Sequential(nn.Conv2d(mid + low_out, mid, 1, bias=False), ABN(mid),
                                   nn.Conv2d(mid, mid, 1, bias=False), ABN(mid))
        self.conv4 = nn.Conv2d(mid, num_classes, 1, bias=True)

    def forward(self, xt, xl):
        h, w = xl.shape[2:]
        xt = F.interpolate(self.conv1(xt), size=(h, w), mode="bilinear", align_corners=True)
        x = self.conv3(torch.cat([xt, self.conv2(xl)], 1))
        return self.conv4(x), x


class ResNet(nn.Module):
    def __init__(self, layers=(3, 4, 23, 3), num_classes=20, stem=(64, 128), planes=(64, 128, 256, 512), psp=512,
                 edge=256, dec=256, dec_low=48, fusion=256, multi_grid=(1, 1, 1), stem_pool=True):
        super().__init__()
        self.stem_pool = stem_pool
        self.inplanes = stem[1]
        self.conv1 = nn.Conv2d(3, stem[0], 3, stride=2, padding=1, bias=False)
        self.bn1 = BN(stem[0])
        self.conv2 = nn.Conv2d(stem[0], stem[0], 3, padding=1, bias=False)
        self.bn2 = BN(stem[0])
        self.conv3 = nn.Conv2d(stem[0], stem[1], 3, padding=1, bias=False)
        self.bn3 = BN(stem[1])
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(planes[0], layers[0])
        self.layer2 = self._make_layer(planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(planes[3], layers[3], stride=1, dilation=2, multi_grid=multi_grid)
        c = [p * 4 for p in planes]
        self.context_encoding = PSPModule(c[3], psp)
        self.edge = EdgeModule(c[:3], edge)
        self.decoder = DecoderModule(num_classes, psp, c[0], dec, dec_low)
        self.fushion = nn.Sequential(nn.Conv2d(dec + 3 * edge, fusion, 1, bias=False), ABN(fusion), nn.Dropout2d(0.1),
                                     nn.Conv2d(fusion, num_classes, 1, bias=True))

    def _make_layer(self, planes, blocks, stride=1, dilation=1, multi_grid=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), BN(planes * 4))
        grid = lambda i: multi_grid[i % len(multi_grid)] if isinstance(multi_grid, tuple) else 1
        layers = [Bottleneck(self.inplanes, planes, stride, dilation, downsample, grid(0))]
        self.inplanes = planes * 4
        for i in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes, dilation=dilation, multi_grid=grid(i)))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        if self.stem_pool:
            x = self.maxpool(x)
        x2 = self.layer1(x)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        x = self.context_encoding(x5)
        parsing_result, parsing_fea = self.decoder(x, x2)
        edge_result, edge_fea = self.edge(x2, x3, x4)
        fusion_result = self.fushion(torch.cat([parsing_fea, edge_fea], 1))
        return [[parsing_result, fusion_result], [edge_result]]


# -- SCHP's inference (utils/transforms.py, datasets/simple_extractor_dataset.py, evaluate.py); cv2's
# getAffineTransform / warpAffine (INTER_LINEAR, constant 0 border) written with numpy and grid_sample.

def get_3rd_point(a, b):
    direct = a - b
    return b + np.array([-direct[1], direct[0]], dtype=np.float32)


def get_affine_transform(center, scale, output_size, inv=False):
    src_w = scale[0]
    dst_w, dst_h = output_size[1], output_size[0]
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + np.array([0, src_w * -0.5], np.float32)
    dst[0, :] = [(dst_w - 1) * 0.5, (dst_h - 1) * 0.5]
    dst[1, :] = dst[0, :] + np.array([0, (dst_w - 1) * -0.5], np.float32)
    src[2:, :] = get_3rd_point(src[0, :], src[1, :])
    dst[2:, :] = get_3rd_point(dst[0, :], dst[1, :])
    a, b = (dst, src) if inv else (src, dst)
    # getAffineTransform: M [2, 3] with b = M [a; 1].
    return np.linalg.solve(np.concatenate([a, np.ones((3, 1), np.float32)], 1).astype(np.float64), b.astype(np.float64)).T


def warp_affine(img, M, out_hw):
    """cv2.warpAffine(img [N, C, H, W], M, (w, h)): dst(x, y) = src(M^-1 (x, y))."""
    H, W = img.shape[2:]
    h, w = out_hw
    inv = np.linalg.inv(np.concatenate([M, [[0, 0, 1]]], 0))[:2]
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    grid = np.stack([2 * sx / (W - 1) - 1, 2 * sy / (H - 1) - 1], -1)[None].repeat(img.shape[0], 0)
    return F.grid_sample(img, torch.from_numpy(grid).float(), mode="bilinear", padding_mode="zeros", align_corners=True)


def parse_reference(model, image, input_size, flip=False, scales=(1,), flip_idx=((14, 15), (16, 17), (18, 19))):
    """Fused logits [C, H, W] at the image's size for an RGB image [3, H, W] in [0, 1]."""
    _, h, w = image.shape
    aspect = input_size[1] / input_size[0]
    # _box2cs([0, 0, w - 1, h - 1])
    bw, bh = w - 1, h - 1
    center = np.array([bw * 0.5, bh * 0.5], np.float32)
    if bw > aspect * bh:
        bh = bw / aspect
    elif bw < aspect * bh:
        bw = bh * aspect
    scale = np.array([bw, bh], np.float32)
    warped = warp_affine(image.flip(0)[None], get_affine_transform(center, scale, input_size), input_size)
    mean = torch.tensor([0.406, 0.456, 0.485]).view(1, 3, 1, 1)
    std = torch.tensor([0.225, 0.224, 0.229]).view(1, 3, 1, 1)
    x = (warped - mean) / std
    perm = list(range(model.fushion[3].out_channels))
    for a, b in flip_idx:
        perm[a], perm[b] = b, a
    outs = []
    for s in scales:
        size = (int(input_size[0] * s), int(input_size[1] * s))
        xs = F.interpolate(x, size=size, mode="bilinear", align_corners=True) if s != 1 else x
        if flip:
            xs = torch.cat([xs, xs.flip(-1)])
        out = model(xs)[0][-1]
        o = out[0]
        if flip:
            o = (o + out[1][perm].flip(-1)) * 0.5
        outs.append(F.interpolate(o[None], size=tuple(input_size), mode="bilinear", align_corners=True))
    fused = torch.stack(outs).mean(0)
    back = warp_affine(fused, get_affine_transform(center, scale, input_size, inv=True), (h, w))
    return back[0]


# Must match SCHP_SMALL in packages/models/src/schp/network.ts.
SMALL = dict(layers=(1, 1, 1, 1), num_classes=20, stem=(8, 16), planes=(8, 16, 24, 32), psp=32, edge=16, dec=16,
             dec_low=8, fusion=16)


def randomize(model, gen):
    """Random weights and BN statistics for a CE2P network, drawn from `gen` in parameter order; returns it."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                # He-scaled so activations keep their size through the eval-mode BNs.
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif name.endswith("weight"):
                # Signed BN weights: InPlaceABN scales by |weight| + eps.
                p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return model


def build(out_dir):
    gen = torch.Generator().manual_seed(47)
    small = randomize(ResNet(**SMALL).eval(), gen)
    x = torch.randn(1, 3, 65, 49, generator=gen)
    with torch.no_grad():
        [[parsing, fusion], [edge]] = small(x)
    tensors = {f"weights/{k}": v for k, v in small.state_dict().items()}
    tensors["input/x"] = x
    tensors["output/parsing"] = parsing
    tensors["output/fusion"] = fusion
    tensors["output/edge"] = edge
    # SCHP_CONFIGS.small_stride2: the same weights without the stem's max-pool (output stride 2).
    small.stem_pool = False
    with torch.no_grad():
        [[parsing, fusion], [edge]] = small(x)
    small.stem_pool = True
    tensors["stride2/parsing"] = parsing
    tensors["stride2/fusion"] = fusion
    tensors["stride2/edge"] = edge
    image = torch.rand(3, 37, 29, generator=gen)
    with torch.no_grad():
        # A non-square network input and a box padded top and bottom.
        tensors["parse/image"] = image
        tensors["parse/logits"] = parse_reference(small, image, (57, 41))
        tensors["parse/logits_flip_ms"] = parse_reference(small, image, (57, 41), flip=True, scales=(1, 0.75))
        # A tall image: the box padded left and right.
        tall = torch.rand(3, 44, 19, generator=gen)
        tensors["parse/image_tall"] = tall
        tensors["parse/logits_tall"] = parse_reference(small, tall, (57, 41))
    write_safetensors(f"{out_dir}/schp_small.safetensors", tensors)

    saved = nn.Conv2d.reset_parameters
    nn.Conv2d.reset_parameters = lambda self: None
    try:
        full = ResNet(num_classes=20)
    finally:
        nn.Conv2d.reset_parameters = saved
    with open(f"{out_dir}/schp_lip_keys.json", "w") as f:
        json.dump({k: list(v.shape) for k, v in full.state_dict().items()}, f)
    n = sum(p.numel() for p in full.parameters())
    return [(f"{out_dir}/schp_small.safetensors", 9), (f"{out_dir}/schp_lip_keys.json ({n} parameters)", len(full.state_dict()))]

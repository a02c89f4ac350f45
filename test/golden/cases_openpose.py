"""OpenPose body model: a torch transcription of the COCO-18 CPM/PAF network with the PyTorch port's module
layout (model0 = VGG front, model1_1/model1_2 = stage 1, modelS_1/modelS_2 = stages 2..6), random weights,
all stage outputs; plus the full-size model's key names and shapes."""
import json
from collections import OrderedDict

import torch
import torch.nn as nn

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
    def __init__(self, vgg=(64, 128, 256, 512), cpm=(256, 128), w=128, expand=512, stages=6, k=7):
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
                setattr(self, f"model{s}_{b}", make_layers(spec, {f"Mconv7_stage{s}_L{b}"}))

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
    write_safetensors(f"{out_dir}/openpose_small.safetensors", tensors, {"stages": "3"})

    saved = nn.Conv2d.reset_parameters
    nn.Conv2d.reset_parameters = lambda self: None
    try:
        full = BodyPose()
    finally:
        nn.Conv2d.reset_parameters = saved
    with open(f"{out_dir}/openpose_keys.json", "w") as f:
        json.dump({k: list(v.shape) for k, v in full.state_dict().items()}, f)
    n = sum(p.numel() for p in full.parameters())
    return [(f"{out_dir}/openpose_small.safetensors", 6), (f"{out_dir}/openpose_keys.json ({n} parameters)", len(full.state_dict()))]

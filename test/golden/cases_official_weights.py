"""Weights files laid out as the official releases are, written by torch.save, for the official-weights loaders
(packages/train/src/pipeline/official-weights.ts): the key names, nesting and prefixes of the real files, with
random values at small shapes (the architectures come from the transcriptions the parity tests already check).

- pytorch-openpose's body_pose_model.pth: flat keys (conv1_1.weight, conv5_1_CPM_L1.weight,
  Mconv1_stage2_L1.weight, ...), i.e. the module layout's keys (model0.conv1_1.weight, ...) without their first
  component, which its util.transfer() adds back;
- SCHP's exp-schp-*.pth: {'state_dict': {'module.' + key: ...}, 'epoch': ...} (saved from DataParallel), with
  LIP's 20 and ATR's 18 classes;
- Leffa's virtual_tryon.pth / pose_transfer.pth: a plain LeffaModel state dict (vae.*, unet_encoder.*, unet.*),
  and the same tensors as .safetensors with the VAE attention under diffusers' legacy names
  (query / key / value / proj_attn); and pose_transfer.pth's SDXL layout (per-block transformer depths and heads,
  linear projections, add_embedding.* in both UNets) at small shapes;
- one OpenPose file with a wrong shape and one SCHP file with a missing key.

The small configs below must match the MICRO_* configs of packages/train/test/official-weights.test.ts.
Everything together stays under 1.5 MB (torch.save costs about 700 bytes per tensor; the SDXL file has 704)."""
from collections import OrderedDict

import torch
from torch import nn

from cases_openpose import BodyPose
from cases_schp import ResNet
from golden import write_safetensors
from torch_diffusion import VAE, UNet

# torch.save costs about 400 bytes per tensor, so the configs are narrow and shallow.
# OpenPoseConfig { vgg: [4, 4, 8, 8], cpm: [8, 4], stageWidth: 4, stage1Expand: 8, stages: 3, refineKernel: 1 }.
OPENPOSE = dict(vgg=(4, 4, 8, 8), cpm=(8, 4), w=4, expand=8, stages=3, k=1)
# SCHPConfig { layers: [1, 1, 1, 1], stem: [4, 4], planes: [2, 2, 4, 4], psp: 4, edge: 4, decoder: 4,
# decoderLow: 4, fusion: 4 } (pspSizes [1, 2, 3, 6], edgeClasses 2, multiGrid [1, 1, 1]).
SCHP = dict(layers=(1, 1, 1, 1), stem=(4, 4), planes=(2, 2, 4, 4), psp=4, edge=4, dec=4, dec_low=4, fusion=4)
SCHP_CLASSES = {"lip": 20, "atr": 18}  # Pascal's 7 classes are covered by the class-count test on shapes
# LeffaConfig: VAE { blockOutChannels: [4, 4], layersPerBlock: 1, normNumGroups: 2 }, UNet { blockOutChannels:
# [8, 8], down [DownBlock2D, DownBlock2D], up [UpBlock2D, UpBlock2D] (the mid block keeps its transformer),
# layersPerBlock 1, attentionHeads 1, crossAttentionDim 4, normNumGroups 4 }.
LEFFA_VAE = ([4, 4], 1, 2)
LEFFA_UNET = {"in": 12, "out": 4, "boc": [8, 8], "layers": 1, "heads": 1, "groups": 4, "cross": 4,
              "down": ["DownBlock2D", "DownBlock2D"], "up": ["UpBlock2D", "UpBlock2D"]}


# pose_transfer.pth's SDXL layout: UNet { blockOutChannels: [8, 8], down [DownBlock2D, CrossAttnDownBlock2D], up
# [CrossAttnUpBlock2D, UpBlock2D], layersPerBlock 1, attentionHeads [1, 2], transformerLayersPerBlock [1, 2],
# useLinearProjection, addition { projectionInputDim: 12 }, crossAttentionDim 4, normNumGroups 4 }; the VAE as above.
LEFFA_SDXL_UNET = {"in": 12, "out": 4, "boc": [8, 8], "layers": 1, "heads": [1, 2], "depth": [1, 2], "linear": True, "addition": 12,
                   "groups": 4, "cross": 4, "down": ["DownBlock2D", "CrossAttnDownBlock2D"], "up": ["CrossAttnUpBlock2D", "UpBlock2D"]}


def randomize(module, gen):
    """Distinct random values everywhere (variances positive), so a misrouted tensor cannot go unnoticed."""
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
    return module


class Leffa(nn.Module):
    """Leffa's LeffaModel as far as its state dict goes: vae, unet_encoder (4 input channels), unet (12)."""

    def __init__(self, unet=LEFFA_UNET):
        super().__init__()
        self.vae = VAE(*LEFFA_VAE)
        self.unet_encoder = UNet({**unet, "in": 4})
        self.unet = UNet(unet)


def legacy_vae_names(key):
    """diffusers' pre-0.14 names of the VAE mid-block attention (what convertLegacyVaeKeys maps back)."""
    if not key.startswith("vae.") or ".attentions." not in key:
        return key
    for new, old in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")):
        key = key.replace(new, old)
    return key


def build(out_dir):
    gen = torch.Generator().manual_seed(73)
    written = []

    # OpenPose: body_pose_model.pth's keys are the module layout's minus the first component
    # (util.transfer: model_weights['.'.join(name.split('.')[1:])]).
    body = randomize(BodyPose(**OPENPOSE), gen)
    prefixed = body.state_dict()
    flat = OrderedDict(('.'.join(k.split('.')[1:]), v) for k, v in prefixed.items())
    assert len(flat) == len(prefixed)
    torch.save(flat, f"{out_dir}/official_openpose_body.pth")
    wrong = OrderedDict(flat)
    wrong["Mconv7_stage2_L2.weight"] = torch.randn(20, 4, 1, 1, generator=gen)  # 19 heatmap channels expected
    torch.save(wrong, f"{out_dir}/official_openpose_wrong_shape.pth")
    written += ["official_openpose_body.pth", "official_openpose_wrong_shape.pth"]

    # SCHP: {'state_dict': {'module.conv1.weight': ...}} plus training bookkeeping.
    for name, classes in SCHP_CLASSES.items():
        net = randomize(ResNet(num_classes=classes, **SCHP), gen)
        sd = OrderedDict(("module." + k, v) for k, v in net.state_dict().items())
        torch.save({"epoch": 149, "state_dict": sd, "best_iou": 0.5}, f"{out_dir}/official_schp_{name}.pth")
        written.append(f"official_schp_{name}.pth")
        if name == "lip":
            missing = OrderedDict((k, v) for k, v in sd.items() if k != "module.edge.conv4.bias")
            assert len(missing) == len(sd) - 1
            torch.save({"epoch": 149, "state_dict": missing}, f"{out_dir}/official_schp_missing_key.pth")
            written.append("official_schp_missing_key.pth")

    # Leffa: torch.save(model.state_dict()), and a safetensors copy with the legacy VAE attention names.
    leffa = randomize(Leffa(), gen)
    sd = leffa.state_dict()
    torch.save(sd, f"{out_dir}/official_leffa.pth")
    legacy = {legacy_vae_names(k): v for k, v in sd.items()}
    assert sum(k != legacy_vae_names(k) for k in sd) == 16  # 2 mid blocks x 4 linears x (weight, bias)
    write_safetensors(f"{out_dir}/official_leffa.safetensors", legacy)
    written += ["official_leffa.pth", "official_leffa.safetensors"]

    # pose_transfer.pth: the SDXL-based LeffaModel's state dict, add_embedding.* included.
    sdxl = randomize(Leffa(LEFFA_SDXL_UNET), gen)
    sd = sdxl.state_dict()
    assert sd["unet.add_embedding.linear_1.weight"].shape == (32, 12) and sd["unet.down_blocks.1.attentions.0.proj_in.weight"].dim() == 2
    torch.save(sd, f"{out_dir}/official_leffa_sdxl.pth")
    written.append("official_leffa_sdxl.pth")
    return [(f"{out_dir}/official_*.pth|safetensors", len(written))]

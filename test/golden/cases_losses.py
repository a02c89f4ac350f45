"""Losses and small helpers: mse, l1, smooth L1, BCE with logits, cross-entropy (ignore index, class weights,
label smoothing, 2-D targets), KL divergence, diffusers' sinusoidal timestep embedding, one-hot."""
import math

import torch
import torch.nn.functional as F

from golden import Group


def timestep_embedding(t, dim, flip, shift, scale=1.0, max_period=10000):
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def build(out_dir):
    g = Group("losses", seed=8)
    r = g.randn
    for red in ["mean", "sum", "none"]:
        g.case(f"mse_{red}", "mse", [r(3, 5, 7), r(3, 5, 7)], lambda a, b: F.mse_loss(a, b, reduction=red), attrs={"reduction": red})
        g.case(f"l1_{red}", "l1", [r(4, 9), r(4, 9)], lambda a, b: F.l1_loss(a, b, reduction=red), attrs={"reduction": red})
    for beta in [1.0, 0.3]:
        g.case(f"smooth_l1_{beta}", "smooth_l1", [r(5, 11, scale=2), r(5, 11)], lambda a, b: F.smooth_l1_loss(a, b, beta=beta), attrs={"beta": beta})
    g.case("bce_logits", "bce_logits", [r(6, 7, scale=3), g.rand(6, 7)], lambda x, y: F.binary_cross_entropy_with_logits(x, y), grad=[True, False])
    g.case("bce_logits_posweight", "bce_logits", [r(6, 7, scale=3), g.rand(6, 7), g.rand(7, low=0.5, high=3)],
           lambda x, y, pw: F.binary_cross_entropy_with_logits(x, y, pos_weight=pw), grad=[True, False, False])
    tgt = g.randint(5, 7)
    g.case("ce_1d", "ce", [r(7, 5, scale=2), tgt], lambda x, t: F.cross_entropy(x, t), attrs={})
    tgt2 = g.randint(6, 2, 5, 4)
    tgt2[0, 1, 2] = 255
    tgt2[1, 3, 0] = 255
    w = g.rand(6, low=0.2, high=2)
    g.case("ce_2d_ignore_weight", "ce", [r(2, 6, 5, 4, scale=2), tgt2, w], lambda x, t, ww: F.cross_entropy(x, t, weight=ww, ignore_index=255),
           attrs={"ignoreIndex": 255}, grad=[True, False, False])
    g.case("ce_2d_sum", "ce", [r(2, 6, 5, 4, scale=2), tgt2], lambda x, t: F.cross_entropy(x, t, ignore_index=255, reduction="sum"),
           attrs={"ignoreIndex": 255, "reduction": "sum"})
    g.case("ce_smoothing", "ce", [r(7, 5, scale=2), tgt], lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), attrs={"labelSmoothing": 0.1})
    soft = torch.softmax(r(4, 6, 3, scale=2), dim=1)
    g.case("kl_batchmean", "kl", [torch.log_softmax(r(4, 6, 3), dim=1), soft], lambda a, b: F.kl_div(a, b, reduction="batchmean"),
           attrs={"reduction": "batchmean"}, grad=[True, False])
    g.case("kl_sum", "kl", [torch.log_softmax(r(4, 6), dim=1), torch.softmax(r(4, 6), dim=1)], lambda a, b: F.kl_div(a, b, reduction="sum"),
           attrs={"reduction": "sum"}, grad=[True, False])
    ts = torch.tensor([0, 1, 37, 500, 999])
    for dim, flip, shift in [(320, True, 0), (33, False, 1), (64, True, 1)]:
        g.case(f"timestep_embedding_{dim}_{flip}_{shift}", "timestep_embedding", [ts], lambda t: timestep_embedding(t, dim, flip, shift),
               attrs={"dim": dim, "flip": flip, "shift": shift, "timesteps": ts.tolist()})
    g.case("one_hot", "one_hot", [g.randint(4, 3, 5)], lambda t: F.one_hot(t, 4).float(), attrs={"classes": 4})
    return [g.save(out_dir)]

"""The Leffa loss (Zhou et al. 2025) written out in torch: per layer, the head-averaged flow
F = softmax(q k^T / sqrt(d) / tau) @ C of target queries over reference keys, upsampled bilinearly to the
image, clamped to [-1, 1], used to grid_sample the reference; the masked L2 to the target, averaged over
layers, over samples with t < 500. Value and gradients to q and k of every layer."""
import math

import torch
import torch.nn.functional as F

from golden import Group


def key_grid(h, w):
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(h * w, 2)


def leffa_loss(layers, reference, target, mask, timesteps, tau=2.0, max_t=500):
    B, C, H, W = reference.shape
    active = torch.tensor([1.0 if t < max_t else 0.0 for t in timesteps]).view(B, 1, 1, 1)
    m = mask * active
    count = torch.clamp(m.sum() * C, min=1.0)
    total = 0.0
    for q, k, h, w in layers:
        d = q.shape[-1]
        flow = (torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) / tau, -1) @ key_grid(h, w)).mean(1)  # [B, N, 2]
        field = flow.view(B, h, w, 2).permute(0, 3, 1, 2)
        grid = F.interpolate(field, size=(H, W), mode="bilinear", align_corners=False).permute(0, 2, 3, 1).clamp(-1, 1)
        warped = F.grid_sample(reference, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        total = total + ((warped - target) ** 2 * m).sum() / count
    return total / len(layers)


def build(out_dir):
    g = Group("leffa", seed=17)
    B, H, W = 2, 12, 9
    shapes = [(4, 3, 2, 8), (2, 2, 2, 16)]  # (h, w, heads, head dim) per layer
    inputs = []
    for h, w, heads, d in shapes:
        inputs += [g.randn(B, heads, h * w, d), g.randn(B, heads, h * w, d)]
    reference = g.rand(B, 3, H, W, low=-1, high=1)
    target = g.rand(B, 3, H, W, low=-1, high=1)
    mask = (g.rand(B, 1, H, W) > 0.4).float()
    timesteps = [120, 730]

    def fn(q0, k0, q1, k1, ref, tgt, msk):
        return leffa_loss([(q0, k0, 4, 3), (q1, k1, 2, 2)], ref, tgt, msk, timesteps)

    g.case("leffa_loss", "leffa_loss", inputs + [reference, target, mask], fn,
           attrs={"layers": [[4, 3], [2, 2]], "timesteps": timesteps, "tau": 2.0}, grad=[True, True, True, True, False, False, False])
    timesteps2 = [10, 20]

    def fn2(q0, k0, ref, tgt, msk):
        return leffa_loss([(q0, k0, 4, 3)], ref, tgt, msk, timesteps2)

    g.case("leffa_loss_all_active", "leffa_loss", inputs[:2] + [reference, target, mask], fn2,
           attrs={"layers": [[4, 3]], "timesteps": timesteps2, "tau": 2.0}, grad=[True, True, False, False, False])
    return [g.save(out_dir)]

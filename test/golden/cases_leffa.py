"""The Leffa loss (Zhou et al. 2025) written out in torch as Leffa's released training code computes it
(leffa/models/cat_vton_model.py at commit 511469f): per layer, the head-averaged flow
F = softmax(q k^T / sqrt(d) / tau) @ C of target queries over reference keys, upsampled bilinearly to the
image, clamped to [-1, 1], used to grid_sample the reference; smooth L1 between warped * mask and
target * mask, each sample's mean over C x H x W, stacked and averaged over layers, times (t < 500), then
the mean over the batch. Also the 'maskArea' / l2 variant kept as an option. Value and gradients to q and k
of every layer."""
import math

import torch
import torch.nn.functional as F

from golden import Group


def key_grid(h, w):
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(h * w, 2)


def flow_grid(q, k, h, w, H, W, tau):
    B, d = q.shape[0], q.shape[-1]
    flow = (torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) / tau, -1) @ key_grid(h, w)).mean(1)  # [B, N, 2]
    field = flow.view(B, h, w, 2).permute(0, 3, 1, 2)
    return F.interpolate(field, size=(H, W), mode="bilinear").permute(0, 2, 3, 1).clamp(-1, 1)


def leffa_loss(layers, reference, target, mask, timesteps, tau=2.0, max_t=500):
    """The released reduction, step by step as in cat_vton_model.py."""
    B, C, H, W = reference.shape
    per_layer = []
    for q, k, h, w in layers:
        warped = F.grid_sample(reference, flow_grid(q, k, h, w, H, W, tau))
        loss = F.smooth_l1_loss(warped * mask, target * mask, reduction="none")
        per_layer.append(loss.mean(dim=[1, 2, 3]))
    loss = torch.stack(per_layer).mean(dim=0)
    loss = loss * (torch.tensor(timesteps) < max_t)
    return loss.mean()


def leffa_loss_mask_area(layers, reference, target, mask, timesteps, tau=2.0, max_t=500):
    """The 'maskArea' option with l2: masked squared error over the active samples' mask area x C."""
    B, C, H, W = reference.shape
    active = torch.tensor([1.0 if t < max_t else 0.0 for t in timesteps]).view(B, 1, 1, 1)
    m = mask * active
    count = torch.clamp(m.sum() * C, min=1.0)
    total = 0.0
    for q, k, h, w in layers:
        warped = F.grid_sample(reference, flow_grid(q, k, h, w, H, W, tau), mode="bilinear", padding_mode="zeros", align_corners=False)
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

    def fn3(q0, k0, q1, k1, ref, tgt, msk):
        return leffa_loss_mask_area([(q0, k0, 4, 3), (q1, k1, 2, 2)], ref, tgt, msk, timesteps)

    g.case("leffa_loss_mask_area_l2", "leffa_loss", inputs + [reference, target, mask], fn3,
           attrs={"layers": [[4, 3], [2, 2]], "timesteps": timesteps, "tau": 2.0, "normalization": "maskArea", "distance": "l2"},
           grad=[True, True, True, True, False, False, False])

    # Leffa's pipeline.py guidance: CFG, then rescale_noise_cfg(noise, cond, guidance_rescale=guidance_scale).
    def guidance(scale, rescale):
        def fn(uncond, cond):
            noise = uncond + scale * (cond - uncond)
            if scale > 0.0:
                std_text = cond.std(dim=list(range(1, cond.ndim)), keepdim=True)
                std_cfg = noise.std(dim=list(range(1, noise.ndim)), keepdim=True)
                noise = rescale * (noise * (std_text / std_cfg)) + (1 - rescale) * noise
            return noise
        return fn

    uncond, cond = g.randn(2, 4, 5, 3), g.randn(2, 4, 5, 3) * 1.7 + 0.3
    g.case("guidance_released", "leffa_guidance", [uncond, cond], guidance(2.5, 2.5), attrs={"scale": 2.5})
    g.case("guidance_rescale_0.7", "leffa_guidance", [uncond, cond], guidance(4.0, 0.7), attrs={"scale": 4.0, "rescale": 0.7})
    g.case("guidance_no_rescale", "leffa_guidance", [uncond, cond], guidance(2.5, 0.0), attrs={"scale": 2.5, "rescale": 0.0})
    return [g.save(out_dir)]

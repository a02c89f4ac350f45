"""Attention against the materialised PyTorch computation: odd head dims and token counts, masks, shared k/v,
the head-averaged map, and Leffa's flow field F = mean_h softmax(q k^T * scale / tau) @ C."""
import math

import torch

from golden import Group


def attention(q, k, v, scale=None, mask=None):
    s = q @ k.transpose(-1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        s = s + mask
    return torch.softmax(s, -1) @ v


def key_grid(h, w):
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(h * w, 2)


def build(out_dir):
    g = Group("attention", seed=9)
    r = g.randn
    for name, (B, H, N, M, D, Dv) in {
        "d40": (2, 3, 37, 53, 40, 40), "d64": (1, 2, 130, 70, 64, 64), "d24": (2, 1, 9, 17, 24, 24),
        "d33_dv5": (1, 3, 21, 11, 33, 5), "single": (1, 1, 1, 1, 8, 8),
    }.items():
        g.case(f"attention_{name}", "attention", [r(B, H, N, D), r(B, H, M, D), r(B, H, M, Dv)], attention)
    g.case("attention_scale", "attention", [r(2, 2, 19, 16), r(2, 2, 23, 16), r(2, 2, 23, 16)], lambda q, k, v: attention(q, k, v, 0.7), attrs={"scale": 0.7})
    mask = r(2, 1, 19, 23)
    mask[0, 0, 3, :5] = -1e4
    g.case("attention_mask", "attention", [r(2, 3, 19, 16), r(2, 3, 23, 16), r(2, 3, 23, 16), mask],
           lambda q, k, v, m: attention(q, k, v, mask=m), grad=[True, True, True, False])
    g.case("attention_shared_kv", "attention", [r(2, 3, 11, 8), r(1, 1, 13, 8), r(1, 3, 13, 6)], attention)
    for name, (B, H, N, h, w, D, tau) in {"tau2": (2, 3, 37, 5, 7, 40, 2.0), "tau1": (1, 2, 12, 4, 3, 24, 1.0), "big": (1, 8, 70, 6, 9, 64, 2.0)}.items():
        grid = key_grid(h, w)
        g.case(f"flow_field_{name}", "flow_field", [r(B, H, N, D), r(B, H, h * w, D)],
               lambda q, k: (torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) / tau, -1) @ grid).mean(1),
               attrs={"height": h, "width": w, "tau": tau})
    g.case("attention_map_headmean", "attention_map", [r(2, 3, 9, 16), r(2, 3, 14, 16)],
           lambda q, k: torch.softmax(q @ k.transpose(-1, -2) / 4.0 / 2.0, -1).mean(1), attrs={"tau": 2.0, "headMean": True})
    # Multi-head attention on tokens [B, N, heads * D]: the heads read and written in place.
    def heads_attention(heads, scale=None):
        def run(q, k, v):
            split = lambda x: x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)
            o = attention(split(q), split(k), split(v), scale)
            return o.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)
        return run
    for name, (B, H, N, M, D, Dv) in {
        "h3_d40": (2, 3, 37, 53, 40, 40), "h2_d32": (2, 2, 75, 150, 32, 32), "h1_d24": (2, 1, 9, 17, 24, 24),
        "h3_d33_dv5": (1, 3, 21, 11, 33, 5), "h4_d8": (3, 4, 13, 29, 8, 12),
    }.items():
        g.case(f"multi_head_attention_{name}", "multi_head_attention", [r(B, N, H * D), r(B, M, H * D), r(B, M, H * Dv)],
               heads_attention(H), attrs={"heads": H})
    g.case("multi_head_attention_scale", "multi_head_attention", [r(2, 19, 32), r(2, 23, 32), r(2, 23, 32)],
           heads_attention(2, 0.7), attrs={"heads": 2, "scale": 0.7})
    return [g.save(out_dir)]

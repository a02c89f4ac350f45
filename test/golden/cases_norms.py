"""Normalisation: group norm, layer norm, batch norm (train with running-stat updates, eval, cumulative
average), SCHP's activated batch norm (InPlaceABN: scale |gamma| + eps, then leaky ReLU 0.01)."""
import torch
import torch.nn.functional as F

from golden import Group


def build(out_dir):
    g = Group("norms", seed=4)
    r = g.randn
    g.case("group_norm", "group_norm", [r(3, 6, 7, 5, scale=2) + 1, r(6), r(6)], lambda x, w, b: F.group_norm(x, 3, w, b, 1e-5), attrs={"groups": 3, "eps": 1e-5})
    g.case("group_norm_eps6", "group_norm", [r(2, 10, 9, 11) * 3, r(10), r(10)], lambda x, w, b: F.group_norm(x, 5, w, b, 1e-6), attrs={"groups": 5, "eps": 1e-6})
    g.case("group_norm_noaffine", "group_norm", [r(2, 8, 13)], lambda x: F.group_norm(x, 4, eps=1e-5), attrs={"groups": 4, "eps": 1e-5})
    g.case("group_norm_long", "group_norm", [r(1, 32, 33, 31)], lambda x: F.group_norm(x, 8), attrs={"groups": 8, "eps": 1e-5})
    g.case("layer_norm", "layer_norm", [r(2, 7, 33, scale=2) + 0.5, r(33), r(33)], lambda x, w, b: F.layer_norm(x, (33,), w, b), attrs={"shape": [33]})
    g.case("layer_norm_2d", "layer_norm", [r(3, 5, 6), r(5, 6), r(5, 6)], lambda x, w, b: F.layer_norm(x, (5, 6), w, b, 1e-6), attrs={"shape": [5, 6], "eps": 1e-6})
    g.case("layer_norm_noaffine", "layer_norm", [r(4, 130)], lambda x: F.layer_norm(x, (130,)), attrs={"shape": [130]})

    def bn(training, momentum, abn=False):
        def f(x, w, b, rm, rv):
            rm = rm.clone()
            rv = rv.clone()
            scale = w.abs() + 1e-5 if abn else w
            y = F.batch_norm(x, rm, rv, scale, b, training, 0.1 if momentum is None else momentum, 1e-5)
            if momentum is None and training:
                # Cumulative average with num_batches_tracked = 1 after this batch: factor 1.
                rm2, rv2 = torch.zeros_like(rm), torch.ones_like(rv)
                F.batch_norm(x.detach(), rm2, rv2, None, None, True, 1.0, 1e-5)
                rm, rv = rm2, rv2
            if abn:
                y = F.leaky_relu(y, 0.01)
            return y, rm, rv
        return f

    for name, training, momentum, abn in [("bn_train", True, 0.1, False), ("bn_eval", False, 0.1, False), ("bn_cumulative", True, None, False),
                                          ("abn_train", True, 0.1, True), ("abn_eval", False, 0.1, True)]:
        inputs = [r(4, 5, 3, 6) * 2 + 1, r(5), r(5), r(5) * 0.1, g.rand(5, low=0.5, high=1.5)]
        g.case(name, "batch_norm", inputs, bn(training, momentum, abn), attrs={"training": training, "momentum": momentum, "abn": abn},
               grad=[True, True, True, False, False])
    build_fused(g)
    build_many_rows(g)
    build_vec4(g)
    build_one_pass(g)
    build_short_rows(g)
    return [g.save(out_dir)]


def build_fused(g):
    g.case("group_norm_silu", "group_norm_silu", [g.randn(2, 6, 5, 3, scale=2), g.randn(6), g.randn(6)], lambda x, w, b: F.silu(F.group_norm(x, 3, w, b, 1e-6)),
           attrs={"groups": 3, "eps": 1e-6})
    # GroupNorm's backward sums per (image, channel) run in chunks of 32 x 64 values (vec4: 32 x 64 vec4): runs
    # past one chunk, odd and vec4, with and without the affine and the fused SiLU.
    g.case("group_norm_silu_long", "group_norm_silu", [g.randn(3, 12, 47, 53, scale=2) + 0.5, g.randn(12), g.randn(12)],
           lambda x, w, b: F.silu(F.group_norm(x, 4, w, b, 1e-6)), attrs={"groups": 4, "eps": 1e-6})
    g.case("group_norm_silu_long_vec4", "group_norm_silu", [g.randn(2, 4, 96, 92) - 0.5, g.randn(4), g.randn(4)],
           lambda x, w, b: F.silu(F.group_norm(x, 2, w, b, 1e-6)), attrs={"groups": 2, "eps": 1e-6})
    g.case("group_norm_silu_noaffine", "group_norm_silu", [g.randn(2, 6, 5, 7, scale=3)], lambda x: F.silu(F.group_norm(x, 2, eps=1e-5)),
           attrs={"groups": 2, "eps": 1e-5})
    g.case("group_norm_silu_1d", "group_norm_silu", [g.randn(5, 12, scale=2), g.randn(12), g.randn(12)], lambda x, w, b: F.silu(F.group_norm(x, 3, w, b, 1e-5)),
           attrs={"groups": 3, "eps": 1e-5})
    # NaN in one (image, group) and infinity in another: those groups' outputs and input gradients are NaN, and so
    # are the affine gradients of their channels, except the bias gradient without a SiLU (a plain sum of g).
    for name, op, fn in [("group_norm_nan_inf", "group_norm", lambda x, w, b: F.group_norm(x, 3, w, b, 1e-5)),
                         ("group_norm_silu_nan_inf", "group_norm_silu", lambda x, w, b: F.silu(F.group_norm(x, 3, w, b, 1e-5)))]:
        x = g.randn(2, 6, 3, 4)
        x[0, 1, 2, 3] = float("nan")
        x[1, 4, 0, 1] = float("inf")
        g.case(name, op, [x, g.randn(6), g.randn(6)], fn, attrs={"groups": 3, "eps": 1e-5})


def build_vec4(g):
    # Rows (and channel runs) of multiples of 4 take the vec4 kernels: GroupNorm with H*W = 24, a fused SiLU
    # with H*W = 12, and LayerNorm rows of 36 (moments as vec4, per-element affine).
    g.case("group_norm_vec4", "group_norm", [g.randn(2, 6, 4, 6, scale=2) + 1, g.randn(6), g.randn(6)], lambda x, w, b: F.group_norm(x, 3, w, b, 1e-5),
           attrs={"groups": 3, "eps": 1e-5})
    g.case("group_norm_silu_vec4", "group_norm_silu", [g.randn(2, 8, 3, 4, scale=2), g.randn(8), g.randn(8)], lambda x, w, b: F.silu(F.group_norm(x, 4, w, b, 1e-6)),
           attrs={"groups": 4, "eps": 1e-6})
    g.case("layer_norm_vec4", "layer_norm", [g.randn(2, 7, 36, scale=2) + 0.5, g.randn(36), g.randn(36)], lambda x, w, b: F.layer_norm(x, (36,), w, b), attrs={"shape": [36]})


def build_many_rows(g):
    # Many short rows take the one-invocation-per-row kernels.
    g.case("layer_norm_many_rows", "layer_norm", [g.randn(3, 130, 24, scale=2), g.randn(24), g.randn(24)], lambda x, w, b: F.layer_norm(x, (24,), w, b), attrs={"shape": [24]})


def build_one_pass(g):
    # GroupNorm's one-dispatch forward walks each row channel run by channel run: odd runs in rows of a multiple
    # of 4 (H*W = 9, L = 36), ten runs per row over three images (the run's channel in later images), and
    # many short rows, which keep the two-dispatch path (one invocation per row).
    g.case("group_norm_silu_odd_runs", "group_norm_silu", [g.randn(2, 8, 3, 3, scale=2) + 1, g.randn(8), g.randn(8)],
           lambda x, w, b: F.silu(F.group_norm(x, 2, w, b, 1e-6)), attrs={"groups": 2, "eps": 1e-6})
    g.case("group_norm_ten_runs_vec4", "group_norm", [g.randn(3, 40, 6, 10, scale=3) - 1, g.randn(40), g.randn(40)],
           lambda x, w, b: F.group_norm(x, 4, w, b, 1e-6), attrs={"groups": 4, "eps": 1e-6})
    g.case("group_norm_many_rows", "group_norm_silu", [g.randn(9, 32, 5, 4, scale=2), g.randn(32), g.randn(32)],
           lambda x, w, b: F.silu(F.group_norm(x, 32, w, b, 1e-5)), attrs={"groups": 32, "eps": 1e-5})
    # Channel runs of 512 values and more take the backward's fused pass (pass-1 sums and dx per row): vec4 with
    # an affine and no SiLU, a SiLU without affine, and NaN / infinity in one group each.
    g.case("group_norm_wide_vec4", "group_norm", [g.randn(2, 12, 24, 32, scale=2) + 0.5, g.randn(12), g.randn(12)],
           lambda x, w, b: F.group_norm(x, 3, w, b, 1e-5), attrs={"groups": 3, "eps": 1e-5})
    g.case("group_norm_silu_wide_noaffine", "group_norm_silu", [g.randn(2, 6, 32, 20, scale=3)], lambda x: F.silu(F.group_norm(x, 2, eps=1e-6)),
           attrs={"groups": 2, "eps": 1e-6})
    x = g.randn(2, 6, 23, 25)
    x[0, 1, 5, 7] = float("nan")
    x[1, 4, 20, 3] = float("inf")
    g.case("group_norm_silu_wide_nan_inf", "group_norm_silu", [x, g.randn(6), g.randn(6)], lambda x, w, b: F.silu(F.group_norm(x, 3, w, b, 1e-5)),
           attrs={"groups": 3, "eps": 1e-5})


def build_short_rows(g):
    # LayerNorm rows of at most 64 values take the one-invocation-per-row kernels however few the rows, and the
    # affine gradients one pass over the rows (blocked sums past 32 and 1024 rows); NaN in one row and infinity
    # in another make those rows' outputs, input gradients and every weight gradient NaN, not the bias gradient.
    g.case("layer_norm_short_rows", "layer_norm", [g.randn(3, 17, 64, scale=2) + 0.5, g.randn(64), g.randn(64)],
           lambda x, w, b: F.layer_norm(x, (64,), w, b), attrs={"shape": [64]})
    g.case("layer_norm_short_rows_odd", "layer_norm", [g.randn(5, 3, 7, scale=3), g.randn(3, 7), g.randn(3, 7)],
           lambda x, w, b: F.layer_norm(x, (3, 7), w, b, 1e-6), attrs={"shape": [3, 7], "eps": 1e-6})
    g.case("layer_norm_1200_rows", "layer_norm", [g.randn(2, 600, 9) - 0.5, g.randn(9), g.randn(9)],
           lambda x, w, b: F.layer_norm(x, (9,), w, b), attrs={"shape": [9]})
    x = g.randn(2, 9, 20)
    x[0, 3, 5] = float("nan")
    x[1, 7, 11] = float("inf")
    g.case("layer_norm_nan_inf", "layer_norm", [x, g.randn(20), g.randn(20)], lambda x, w, b: F.layer_norm(x, (20,), w, b),
           attrs={"shape": [20]})
    # GroupNorm's backward pass 1 takes an invocation per (image, channel) run up to 64 values (vec4: 256), as on
    # the 4x3 to 16x12 maps of a small UNet: the largest such run, with the fused SiLU.
    g.case("group_norm_silu_runs_256", "group_norm_silu", [g.randn(2, 8, 16, 16, scale=2) + 0.5, g.randn(8), g.randn(8)],
           lambda x, w, b: F.silu(F.group_norm(x, 4, w, b, 1e-5)), attrs={"groups": 4, "eps": 1e-5})
    # Short rows without the affine, in fours (vec4) and not.
    g.case("layer_norm_short_noaffine_vec4", "layer_norm", [g.randn(5, 3, 12, scale=2) + 0.5],
           lambda x: F.layer_norm(x, (12,)), attrs={"shape": [12]})
    g.case("layer_norm_short_noaffine_odd", "layer_norm", [g.randn(4, 5, 7, scale=2)],
           lambda x: F.layer_norm(x, (7,)), attrs={"shape": [7]})

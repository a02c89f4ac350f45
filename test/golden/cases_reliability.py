"""Reliability: NaN and infinity through relu, maximum/minimum, clamp, amax/amin, argmax/argmin, max_pool2d,
sort, logsumexp and sum (forward and gradient, PyTorch 1.13's conventions), and long float32 reductions whose inputs
both sides build from a formula (a constant, or a short golden pattern tiled), so no large file is written."""
import torch
import torch.nn.functional as F

from golden import Group

NAN = float("nan")
INF = float("inf")


def build(out_dir):
    g = Group("reliability", seed=11)
    t = torch.tensor
    special = t([NAN, -1.5, 0.0, 2.0, INF, -INF, 0.5, NAN])
    g.case("relu_nan_inf", "relu", [special.clone()], torch.relu)
    a = t([NAN, 1.0, NAN, 2.0, INF, -INF, 3.0, -1.0, INF])
    b = t([1.0, NAN, NAN, 2.0, -INF, 5.0, INF, -INF, INF])
    g.case("maximum_nan_inf", "maximum", [a.clone(), b.clone()], torch.maximum)
    g.case("minimum_nan_inf", "minimum", [a.clone(), b.clone()], torch.minimum)
    # Broadcast: NaN in the row operand meets a column (the gradient of the broadcast side is summed).
    g.case("maximum_broadcast_nan", "maximum", [t([[NAN, 1.0, -INF, 4.0]]), t([[0.5], [NAN], [2.0]])], torch.maximum)
    g.case("maximum_scalar_nan", "maximum_scalar", [special.clone()], lambda x: torch.maximum(x, torch.zeros(())), attrs={"scalar": 0.0})
    g.case("clamp_nan_inf", "clamp", [special.clone()], lambda x: x.clamp(-1.0, 1.0), attrs={"min": -1.0, "max": 1.0})
    g.case("clamp_min_only_inf", "clamp", [special.clone()], lambda x: x.clamp(min=0.0), attrs={"min": 0.0, "max": None})
    g.case("clamp_max_only_inf", "clamp", [special.clone()], lambda x: x.clamp(max=0.7), attrs={"min": None, "max": 0.7})

    rows = t([[NAN, 1.0, 2.0, -3.0], [-INF, -INF, -INF, -INF], [1.0, 3.0, 3.0, 0.0], [INF, INF, INF, INF],
              [NAN, NAN, 1.0, INF], [-INF, 2.0, INF, 1.0]])
    for name, fn in [("max", torch.amax), ("min", torch.amin)]:
        g.case(f"{name}_rows_nan_inf", name, [rows.clone()], lambda x, fn=fn: fn(x, dim=1), attrs={"axes": [1], "keepdim": False})
        g.case(f"{name}_cols_nan_inf", name, [rows.clone()], lambda x, fn=fn: fn(x, dim=0), attrs={"axes": [0], "keepdim": False})
        # Long rows take the workgroup (row-mode) kernel; NaN and +-inf placed at different lanes.
        long = g.randn(3, 300)
        long[0, 137] = NAN
        long[1, :] = -INF
        long[2, 5] = INF if name == "max" else -INF
        g.case(f"{name}_long_nan_inf", name, [long], lambda x, fn=fn: fn(x, dim=1), attrs={"axes": [1], "keepdim": False})
    g.case("max_all_neg_inf", "max", [t([-INF, -INF, -INF])], lambda x: torch.amax(x), attrs={"axes": None, "keepdim": False})
    g.case("min_all_pos_inf", "min", [t([INF, INF])], lambda x: torch.amin(x), attrs={"axes": None, "keepdim": False})
    g.case("max_all_nan", "max", [t([1.0, NAN, 2.0])], lambda x: torch.amax(x), attrs={"axes": None, "keepdim": False})

    # argmax/argmin: NaN wins (the first NaN), ties go to the first index, all-infinite rows give index 0.
    # Short rows take the column kernel (one thread per output), long rows the workgroup (row) kernel.
    for name, fn in [("argmax", torch.argmax), ("argmin", torch.argmin)]:
        g.case(f"{name}_rows_nan_inf", name, [rows.clone()], lambda x, fn=fn: fn(x, dim=1), attrs={"axis": 1})
        g.case(f"{name}_cols_nan_inf", name, [rows.clone()], lambda x, fn=fn: fn(x, dim=0), attrs={"axis": 0})
        long = g.randn(4, 300)
        long[0, 137] = NAN
        long[0, 250] = NAN
        long[1, :] = INF if name == "argmax" else -INF
        long[2, 3] = NAN
        long[2, 299] = NAN
        long[3, 64] = INF if name == "argmax" else -INF
        g.case(f"{name}_long_nan_inf", name, [long], lambda x, fn=fn: fn(x, dim=1), attrs={"axis": 1})
    # max_pool2d: NaN wins its windows (a later NaN over an earlier one, which the gradient shows), padding never does.
    pool = g.randn(1, 2, 6, 6)
    pool[0, 0, 0, 1] = NAN
    pool[0, 0, 2, 2] = NAN
    pool[0, 0, 3, 3] = NAN
    pool[0, 1, :2, :2] = -INF
    pool[0, 1, 4, 4] = INF
    g.case("max_pool_nan_inf", "max_pool2d", [pool], lambda x: torch.nn.functional.max_pool2d(x, 3, 2, 1),
           attrs={"kernelSize": 3, "stride": 2, "padding": 1})

    # sort: NaN of either sign sorts last ascending and first descending (stable, so NaNs keep their order);
    # lengths 11 and 1500 take the single-workgroup and the multi-pass schedules.
    for n in [11, 1500]:
        x = g.randn(2, n)
        x[0, 1] = NAN
        x[0, 4] = -NAN
        x[0, 5] = INF
        x[0, 7] = -INF
        x[1, n - 2] = -NAN
        x[1, 0] = NAN
        for desc in [False, True]:
            g.case(f"sort_nan_inf_{n}_{'desc' if desc else 'asc'}", "sort", [x.clone()],
                   lambda v, desc=desc: torch.sort(v, dim=-1, descending=desc, stable=True), attrs={"axis": -1, "descending": desc})

    lse = t([[INF, 1.0, 0.0], [-INF, -INF, -INF], [NAN, 1.0, 0.0], [-INF, 1.0, 2.0], [INF, INF, 3.0], [1.0, 2.0, 3.0]])
    g.case("logsumexp_nan_inf", "logsumexp", [lse], lambda x: torch.logsumexp(x, dim=1), attrs={"axes": [1], "keepdim": False})
    g.case("sum_nan_inf", "sum", [t([[INF, 1.0, -1.0], [INF, -INF, 0.0], [NAN, 1.0, 2.0], [-INF, 3.0, 4.0]])],
           lambda x: x.sum(dim=1), attrs={"axes": [1], "keepdim": False})

    # -- accuracy of long reductions (float32 in torch, as on the GPU); only the results are stored.
    n = 20_000_000
    g.case("sum_20M_constant", "sum_full", [], lambda: torch.full((n,), 0.01).sum(), attrs={"shape": [n], "value": 0.01, "axes": None}, tol=2e-6)
    g.case("sum_axis0_4Mx2_constant", "sum_full", [], lambda: torch.full((4_000_000, 2), 0.01).sum(0),
           attrs={"shape": [4_000_000, 2], "value": 0.01, "axes": [0]}, tol=2e-6)
    # A [1000, 2] pattern tiled to [4M, 2] (column kernel, one thread per output) and a [2, 1000] pattern
    # tiled to [2, 2M] (row kernel): offset values so a drifting running sum shows.
    col = g.randn(1000, 2) + 3.0
    g.case("sum_axis0_tiled", "sum_tiled", [col], lambda x: x.repeat(4000, 1).sum(0), attrs={"times": [4000, 1], "axes": [0]}, grad=[False], tol=2e-6)
    row = g.randn(2, 1000) + 3.0
    g.case("sum_axis1_tiled", "sum_tiled", [row], lambda x: x.repeat(1, 2000).sum(1), attrs={"times": [1, 2000], "axes": [1]}, grad=[False], tol=2e-6)
    g.case("mean_all_tiled", "mean_tiled", [row], lambda x: x.repeat(1, 2000).mean(), attrs={"times": [1, 2000], "axes": None}, grad=[False], tol=2e-6)
    v = g.randn(1000, 2) * 0.5 + 5.0
    g.case("var_axis0_tiled", "var_tiled", [v], lambda x: x.repeat(2000, 1).var(0), attrs={"times": [2000, 1], "axes": [0]}, grad=[False], tol=2e-6)
    vr = g.randn(1, 1000) * 0.5 + 5.0
    g.case("var_all_tiled", "var_tiled", [vr], lambda x: x.repeat(1, 4000).var(), attrs={"times": [1, 4000], "axes": None}, grad=[False], tol=2e-6)
    # GroupNorm/LayerNorm over rows of 4M values (an offset pattern tiled): every value shifts with the row's
    # mean, so the first and last 2048 normalised values (all that is stored) show a drifting sum.
    gn = g.randn(1, 4, 8, 1024) * 0.3 + 3.0
    edges = lambda y: torch.cat([y.reshape(-1)[:2048], y.reshape(-1)[-2048:]])
    g.case("group_norm_4M_tiled", "group_norm_tiled", [gn], lambda x: edges(F.group_norm(x.repeat(1, 1, 128, 1), 1)),
           attrs={"times": [1, 1, 128, 1], "groups": 1}, grad=[False], tol=4e-6)
    ln = g.randn(2, 4096) * 0.3 + 3.0
    g.case("layer_norm_4M_tiled", "layer_norm_tiled", [ln], lambda x: edges(F.layer_norm(x.repeat(1, 1024), [4096 * 1024])),
           attrs={"times": [1, 1024]}, grad=[False], tol=4e-6)
    # Gated units: NaN and infinities in the value half, the gate half and both (forward and gradient).
    gated = t([[NAN, 1.0, INF, -2.0, 0.5, -INF, 1.0, 3.0, 0.5, NAN, -1.0, INF, -INF, 2.0, NAN, 0.0]])
    for name, fn in {"glu": lambda x: F.glu(x, -1), "geglu": lambda x: x[:, :8] * F.gelu(x[:, 8:])}.items():
        g.case(f"{name}_nan_inf", name, [gated.clone()], fn, attrs={"axis": -1})
    return [g.save(out_dir)]

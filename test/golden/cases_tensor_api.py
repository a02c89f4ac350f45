"""The Tensor API PyTorch users expect: int32 arithmetic with PyTorch's result dtypes, and the ops added for
npm users (cumsum, prod, norm, topk, einsum, scatter, masking, triangles, ...). Odd shapes throughout.

attrs["dtype"], where present, is the dtype the library must return (int64 results of PyTorch are int32 here,
and comparisons give float 0/1 masks instead of bool)."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from golden import Group

I32 = {"dtype": "int32"}
F32 = {"dtype": "float32"}


def build_integer(g):
    ri = lambda high, *s, low=None: g.randint(high, *s, low=-high if low is None else low).to(torch.int32)
    a, b = ri(50, 3, 5), ri(50, 5)
    for fn in ["add", "sub", "mul", "maximum", "minimum"]:
        g.case(f"int_{fn}", "binary", [a, b], getattr(torch, fn), attrs={"fn": fn, **I32})
    g.case("int_add_scalar", "binary_scalar", [ri(9, 4, 3)], lambda x: x + 7, attrs={"fn": "add", "scalar": 7, **I32})
    g.case("int_rsub_scalar", "binary_rscalar", [ri(9, 4, 3)], lambda x: 7 - x, attrs={"fn": "sub", "scalar": 7, **I32})
    big = torch.randint(-2**31, 2**31 - 1, (4, 7), generator=g.gen, dtype=torch.int64).to(torch.int32)
    g.case("int_mul_wraps", "binary", [big, ri(1000, 4, 7)], torch.mul, attrs={"fn": "mul", **I32})
    g.case("int_add_wraps", "binary", [big, big.flip(0)], torch.add, attrs={"fn": "add", **I32})
    g.case("int_plus_float", "binary", [ri(20, 2, 3, 4), g.randn(3, 1)], torch.add, attrs={"fn": "add", **F32})
    g.case("float_times_int", "binary", [g.randn(5, 2), ri(20, 5, 1)], torch.mul, attrs={"fn": "mul", **F32})
    g.case("int_times_half", "binary_scalar", [ri(20, 3, 3)], lambda x: x * 0.5, attrs={"fn": "mul", "scalar": 0.5, **F32})
    nz = lambda *s: ri(9, *s, low=1) * (2 * ri(2, *s, low=0) - 1)  # non-zero divisors of both signs
    g.case("int_div_true", "binary", [ri(30, 4, 5), nz(4, 5)], torch.div, attrs={"fn": "div", **F32})
    g.case("int_floor_divide", "binary", [ri(30, 4, 5), nz(4, 5)], lambda x, y: torch.div(x, y, rounding_mode="floor"),
           attrs={"fn": "floorDivide", **I32})
    g.case("int_floor_divide_scalar", "binary_scalar", [ri(30, 6, 5)], lambda x: torch.div(x, -4, rounding_mode="floor"),
           attrs={"fn": "floorDivide", "scalar": -4, **I32})
    fx = g.randn(5, 6, scale=5)
    fy = g.randn(5, 6, scale=2)
    g.case("float_floor_divide", "binary", [fx, fy], lambda x, y: torch.div(x, y, rounding_mode="floor"),
           attrs={"fn": "floorDivide", **F32}, grad=[False, False])
    for fn, op in [("lt", torch.lt), ("le", torch.le), ("eq", torch.eq), ("ne", torch.ne), ("gt", torch.gt), ("ge", torch.ge)]:
        x, y = ri(3, 4, 6), ri(3, 6)
        g.case(f"int_{fn}", "binary", [x, y], op, attrs={"fn": fn, **F32})
    g.case("int_gt_scalar", "binary_scalar", [ri(5, 3, 4)], lambda x: x > 1, attrs={"fn": "gt", "scalar": 1, **F32})
    extreme = torch.tensor([[-2**31, 2**31 - 1, 0, -5, 17]], dtype=torch.int32)
    g.case("int_neg", "unary", [torch.cat([extreme, ri(99, 2, 5)])], torch.neg, attrs={"fn": "neg", **I32})
    g.case("int_abs", "unary", [torch.cat([extreme, ri(99, 2, 5)])], torch.abs, attrs={"fn": "abs", **I32})
    x = ri(1000, 3, 4, 5)
    for k, (axes, keep) in enumerate([(None, False), ([1], False), ([0, 2], True), ([-1], False)]):
        dims = tuple(range(3)) if axes is None else tuple(axes)
        attrs = {"axes": axes, "keepdim": keep}
        g.case(f"int_sum_{k}", "sum", [x], lambda t, d=dims, kd=keep: t.sum(d, keepdim=kd), attrs={**attrs, **I32})
        g.case(f"int_amax_{k}", "max", [x], lambda t, d=dims, kd=keep: t.amax(d, keepdim=kd), attrs={**attrs, **I32})
        g.case(f"int_amin_{k}", "min", [x], lambda t, d=dims, kd=keep: t.amin(d, keepdim=kd), attrs={**attrs, **I32})
    g.case("int_sum_wraps", "sum", [big], lambda t: t.sum(1).to(torch.int32), attrs={"axes": [1], "keepdim": False, **I32})
    cond = ri(2, 4, 1, 5, low=0)
    g.case("int_where", "where", [cond, ri(9, 4, 3, 5), ri(9, 3, 1)], lambda c, p, q: torch.where(c != 0, p, q), attrs=I32)
    g.case("int_where_float_branch", "where", [(g.randn(4, 5) > 0).float(), ri(9, 4, 5), g.randn(5)],
           lambda c, p, q: torch.where(c != 0, p, q), attrs=F32)


def build_unary(g):
    tiny = torch.tensor([1e-7, -3e-6, 2e-5, -1e-4, 5e-4, 1e-3, -0.5, 0.25, 3.0, 80.0, -0.999, 1e5], dtype=torch.float32)
    g.case("log1p", "log1p", [torch.cat([tiny, g.rand(21, low=-0.9, high=4.0)]).reshape(3, 11)], torch.log1p, tol=2e-6, grad_tol=1e-5)
    # Only small arguments: the normalised error is then relative to 1e-3, which log(1 + x) would miss by far.
    g.case("log1p_small", "log1p", [torch.tensor([1e-7, -3e-6, 2e-5, -1e-4, 5e-4, 1e-3, 3e-7, -8e-4])], torch.log1p, tol=1e-5)
    g.case("log1p_special", "log1p", [torch.tensor([-1.0, -2.0, float("inf"), float("nan"), float("-inf"), 0.0, -0.0])], torch.log1p,
           grad=[False])
    g.case("erf", "erf", [g.randn(5, 7, scale=1.5)], torch.erf, tol=1e-6)
    g.case("erf_special", "erf", [torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0, 6.0, -6.0, 1e-8])], torch.erf, grad=[False])


def build_scan_norm(g):
    r = g.randn
    for k, (shape, axis) in enumerate([((7,), 0), ((3, 5, 4), 1), ((2, 3, 9), -1), ((5, 300), 1), ((700, 3), 0), ((3, 2, 1100), 2)]):
        g.case(f"cumsum_{k}", "cumsum", [r(*shape)], lambda t, a=axis: torch.cumsum(t, a), attrs={"axis": axis}, tol=2e-5)
    special = torch.tensor([[1.0, float("nan"), 2.0, 3.0], [float("inf"), 1.0, float("-inf"), 2.0], [1e30, 1e30, -1e30, 5.0]])
    g.case("cumsum_nan_inf", "cumsum", [special], lambda t: torch.cumsum(t, 1), attrs={"axis": 1}, grad=[False])
    g.case("cumsum_int", "cumsum", [g.randint(100, 4, 6, low=-100).to(torch.int32)], lambda t: torch.cumsum(t, 1).to(torch.int32),
           attrs={"axis": 1, **I32})
    # Products of values near 1 in magnitude (both signs), with single and double zeros in some rows.
    x = g.rand(4, 5, 3, low=0.5, high=1.5) * (2 * g.randint(2, 4, 5, 3) - 1)
    xz = x.clone()
    xz[0, 1, 0] = 0.0
    xz[1, 2, 1] = 0.0
    xz[1, 4, 1] = 0.0
    for k, (axes, keep) in enumerate([(None, False), ([1], False), ([0, 2], True), ([-1], False)]):
        dims = tuple(range(3)) if axes is None else tuple(axes)
        def fn(t, d=dims, kd=keep):
            for a in sorted([a % 3 for a in d], reverse=True):
                t = t.prod(a, keepdim=True)
            return t if kd else t.reshape([s for i, s in enumerate(t.shape) if i not in [a % 3 for a in d]])
        g.case(f"prod_{k}", "prod", [x], fn, attrs={"axes": axes, "keepdim": keep})
        g.case(f"prod_zeros_{k}", "prod", [xz], fn, attrs={"axes": axes, "keepdim": keep})
    g.case("prod_int", "prod", [g.randint(4, 3, 5, low=-4).to(torch.int32)], lambda t: t.prod(1).to(torch.int32),
           attrs={"axes": [1], "keepdim": False, **I32})
    x = r(4, 5, 6)
    xzero = x.clone()
    xzero[1] = 0.0
    inf = float("inf")
    for k, (p, axes, keep) in enumerate([(2, None, False), (2, [1, 2], False), (1, [0], True), (inf, [2], False), (-inf, [0, 2], False),
                                         (0, [1], False), (3, [1], False), (0.5, [2], True), (1.5, None, False), (inf, None, False)]):
        attrs = {"p": "inf" if p == inf else "-inf" if p == -inf else p, "axes": axes, "keepdim": keep}
        g.case(f"norm_{k}", "norm", [x], lambda t, p=p, a=axes, kd=keep: torch.linalg.vector_norm(t, ord=p, dim=a, keepdim=kd),
               attrs=attrs, tol=2e-5, grad_tol=2e-4)
    for k, p in enumerate([2, 1.5, 3, inf]):
        attrs = {"p": "inf" if p == inf else p, "axes": [1, 2], "keepdim": False}
        g.case(f"norm_zero_row_{k}", "norm", [xzero], lambda t, p=p: torch.linalg.vector_norm(t, ord=p, dim=(1, 2)), attrs=attrs, tol=2e-5)
    ties = torch.tensor([[1.0, -3.0, 3.0, 2.0], [0.5, float("nan"), -1.0, 0.25]])
    g.case("norm_inf_ties_nan", "norm", [ties], lambda t: torch.linalg.vector_norm(t, ord=inf, dim=1), attrs={"p": "inf", "axes": [1], "keepdim": False})
    g.case("clone", "clone", [r(3, 7)], torch.clone)


def build_indexing(g):
    r = g.randn
    # masked_fill, tril / triu
    x = r(3, 4, 5)
    g.case("masked_fill", "masked_fill", [x, (g.randn(4, 1) > 0).float()], lambda t, m: t.masked_fill(m != 0, -2.5),
           attrs={"value": -2.5}, grad=[True, False])
    g.case("masked_fill_full_inf", "masked_fill", [x, (g.randn(3, 4, 5) > 0.3).to(torch.int32)],
           lambda t, m: t.masked_fill(m != 0, float("-inf")), attrs={"value": "-inf"}, grad=[True, False])
    g.case("masked_fill_int", "masked_fill", [g.randint(9, 3, 4).to(torch.int32), (g.randn(3, 4) > 0).float()],
           lambda t, m: t.masked_fill(m != 0, 7), attrs={"value": 7, **I32})
    for k, (shape, diag) in enumerate([((5, 5), 0), ((4, 7), 1), ((2, 6, 3), -1), ((3, 4), -5), ((2, 3, 5), 3)]):
        g.case(f"tril_{k}", "tril", [r(*shape)], lambda t, d=diag: torch.tril(t, d), attrs={"diagonal": diag})
        g.case(f"triu_{k}", "triu", [r(*shape)], lambda t, d=diag: torch.triu(t, d), attrs={"diagonal": diag})
    inf_x = torch.full((3, 3), float("inf"))
    g.case("triu_of_inf", "triu", [inf_x], lambda t: torch.triu(t), attrs={"diagonal": 0}, grad=[False])
    # topk: distinct values so the order is unique; NaN counts as the largest
    for k, (shape, kk, axis, largest) in enumerate([((3, 9), 4, -1, True), ((4, 17), 5, 1, False), ((5, 6, 3), 2, 1, True),
                                                     ((2, 1030), 7, -1, True), ((6,), 6, 0, False)]):
        x = (torch.randperm(math.prod(shape), generator=g.gen).float() * 0.1 - 3.0).reshape(shape)
        g.case(f"topk_{k}", "topk", [x], lambda t, kk=kk, a=axis, lg=largest: torch.topk(t, kk, dim=a, largest=lg),
               attrs={"k": kk, "axis": axis, "largest": largest})
    nan = float("nan")
    # One NaN per row: PyTorch leaves the order of tied values (NaNs included) unspecified.
    xn = torch.tensor([[1.0, nan, 3.0, -2.0, 0.5], [-3.0, -1.0, 4.0, 2.0, nan]])
    g.case("topk_nan_largest", "topk", [xn], lambda t: torch.topk(t, 3, dim=1), attrs={"k": 3, "axis": 1, "largest": True}, grad=[False])
    g.case("topk_nan_smallest", "topk", [xn], lambda t: torch.topk(t, 3, dim=1, largest=False), attrs={"k": 3, "axis": 1, "largest": False},
           grad=[False])
    # scatter (distinct targets per line), scatter with a value, scatter_add (duplicates accumulate)
    x = r(4, 6)
    idx = torch.stack([torch.randperm(6, generator=g.gen)[:3] for _ in range(4)])
    g.case("scatter_axis1", "scatter", [x, idx, r(4, 3)], lambda t, i, s: torch.scatter(t, 1, i, s), attrs={"axis": 1})
    # A src larger than the index: PyTorch reads its leading part (and has no gradient for it).
    g.case("scatter_larger_src", "scatter", [x, idx, r(4, 5)], lambda t, i, s: torch.scatter(t, 1, i, s), attrs={"axis": 1},
           grad=[True, False, False])
    idx0 = torch.stack([torch.randperm(5, generator=g.gen)[:2] for _ in range(3)], 1)
    g.case("scatter_axis0", "scatter", [r(5, 3, 2), idx0.unsqueeze(-1).expand(2, 3, 2).contiguous(), r(2, 3, 2)],
           lambda t, i, s: torch.scatter(t, 0, i, s), attrs={"axis": 0})
    g.case("scatter_value", "scatter_value", [r(3, 5), torch.tensor([[4, 0], [2, 2], [1, 3]])],
           lambda t, i: torch.scatter(t, 1, i, -1.5), attrs={"axis": 1, "value": -1.5})
    g.case("scatter_add_dups", "scatter_add", [r(5, 4), g.randint(5, 7, 4), r(7, 4)], lambda t, i, s: torch.scatter_add(t, 0, i, s),
           attrs={"axis": 0})
    g.case("scatter_add_mid", "scatter_add", [r(2, 3, 4), g.randint(3, 2, 5, 3), r(2, 5, 3)], lambda t, i, s: torch.scatter_add(t, 1, i, s),
           attrs={"axis": 1})
    # negative-step slicing: Python semantics (PyTorch refuses negative steps), taken with index_select
    def py_slice(t, specs):
        for d, sp in enumerate(specs):
            if sp is None:
                continue
            rng = range(*slice(sp.get("start"), sp.get("end"), sp.get("step")).indices(t.shape[d]))
            t = torch.index_select(t, d, torch.tensor(list(rng), dtype=torch.long))
        return t
    x = r(7, 6, 5)
    for k, specs in enumerate([
        [{"step": -1}],
        [{"start": 5, "end": 1, "step": -2}],
        [None, {"start": -2, "step": -3}, {"start": 1, "end": 4}],
        [{"start": 100, "end": -100, "step": -4}, None, {"step": -2}],
        [{"start": 2, "end": 5, "step": -1}],
        [None, None, {"start": -1, "end": -6, "step": -1}],
    ]):
        g.case(f"slice_negative_{k}", "slice", [x], lambda t, sp=specs: py_slice(t, sp), attrs={"specs": specs})
    # einsum
    E = [
        ("ij,jk->ik", [(3, 4), (4, 5)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("ii->i", [(4, 4)]),
        ("ii", [(5, 5)]),
        ("ij->", [(3, 4)]),
        ("ij->ji", [(3, 4)]),
        ("i,j->ij", [(3,), (5,)]),
        ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
        ("...ij,...jk->...ik", [(2, 3, 4), (1, 4, 5)]),
        ("...ij,...jk->...ik", [(3, 2, 3, 4), (2, 4, 5)]),
        ("...ij,jk", [(2, 3, 4), (4, 5)]),
        ("ijk,ikl,il->jl", [(3, 2, 4), (3, 4, 5), (3, 5)]),
        ("iij->j", [(3, 3, 4)]),
        ("ba,ca", [(4, 3), (5, 3)]),
        ("bij,bj->bi", [(1, 3, 4), (5, 4)]),
    ]
    for k, (eq, shapes) in enumerate(E):
        g.case(f"einsum_{k}", "einsum", [r(*s) for s in shapes], lambda *ts, eq=eq: torch.einsum(eq, *ts), attrs={"equation": eq}, tol=2e-5)
    # conv1d through conv2d
    for k, (xs, ws, bias, opts) in enumerate([
        ((2, 3, 11), (4, 3, 3), True, {"stride": 2, "padding": 1}),
        ((1, 4, 9), (6, 2, 2), False, {"dilation": 3, "groups": 2}),
        ((3, 7), (5, 3, 4), True, {"padding": 2}),
        ((2, 2, 8), (3, 2, 5), True, {"padding": "same"}),
    ]):
        ins = [r(*xs), r(*ws, scale=0.5)] + ([r(ws[0])] if bias else [])
        g.case(f"conv1d_{k}", "conv1d", ins, lambda x, w, b=None, o=opts: F.conv1d(x, w, b, **o), attrs=opts, tol=2e-5)


def build_async(g):
    r = g.randn
    x = r(4, 5)
    x[1, 2] = 0.0
    mask = (g.randn(4, 5) > 0).float()
    g.case("boolean_mask_full", "boolean_mask", [x, mask], lambda t, m: t[m != 0], grad=[True, False])
    g.case("boolean_mask_leading", "boolean_mask", [r(5, 3, 2), torch.tensor([1, 0, 1, 1, 0], dtype=torch.int32)],
           lambda t, m: t[m != 0], grad=[True, False])
    g.case("boolean_mask_none", "boolean_mask", [r(3, 2), torch.zeros(3, dtype=torch.int32)], lambda t, m: t[m != 0], grad=[True, False])
    g.case("boolean_mask_int", "boolean_mask", [g.randint(9, 3, 4).to(torch.int32), (g.randn(3, 4) > 0).float()],
           lambda t, m: t[m != 0], attrs=I32)
    g.case("nonzero", "nonzero", [torch.tensor([[0.0, 1.5, 0.0], [float("nan"), 0.0, -2.0]])], lambda t: torch.nonzero(t), attrs=I32)
    g.case("nonzero_3d", "nonzero", [(g.randn(2, 3, 4) > 0.5).float()], lambda t: torch.nonzero(t), attrs=I32)


def build(out_dir):
    g = Group("tensor_api", seed=31)
    build_integer(g)
    build_unary(g)
    build_scan_norm(g)
    build_indexing(g)
    a = Group("tensor_api_async", seed=32)
    build_async(a)
    return [g.save(out_dir), a.save(out_dir)]

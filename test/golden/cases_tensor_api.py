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


def build(out_dir):
    g = Group("tensor_api", seed=31)
    build_integer(g)
    build_unary(g)
    build_scan_norm(g)
    return [g.save(out_dir)]

"""Foundation ops: elementwise (broadcasting, scalars), reductions, layout ops, matmul, softmax."""
import torch
import torch.nn.functional as F

from golden import Group


def build(out_dir):
    g = Group("core", seed=1)
    r = g.randn

    # -- unary: inputs kept away from kinks/singularities where finite precision would dominate
    pos = lambda *s: g.rand(*s, low=0.2, high=2.0)
    unary = {
        "neg": (r(3, 7), torch.neg),
        "exp": (r(5, 9), torch.exp),
        "log": (pos(4, 11), torch.log),
        "sqrt": (pos(6, 5), torch.sqrt),
        "rsqrt": (pos(6, 5), torch.rsqrt),
        "abs": (r(7, 3), torch.abs),
        "relu": (r(9, 13), torch.relu),
        "sigmoid": (r(4, 6, 3, scale=4), torch.sigmoid),
        "tanh": (r(5, 7, scale=3), torch.tanh),
        "silu": (r(3, 33, scale=3), F.silu),
        "softplus": (r(3, 9, scale=4), F.softplus),
        "gelu": (r(2, 3, 19, scale=2), F.gelu),
        "gelu_tanh": (r(2, 3, 19, scale=2), lambda x: F.gelu(x, approximate="tanh")),
        "sin": (r(8, 3), torch.sin),
        "cos": (r(8, 3), torch.cos),
        "square": (r(8, 3), torch.square),
        "reciprocal": (pos(8, 3), torch.reciprocal),
        "elu": (r(8, 5), F.elu),
    }
    for name, (x, fn) in unary.items():
        g.case(f"unary_{name}", name, [x], fn)
    g.case("leaky_relu", "leaky_relu", [r(6, 7)], lambda x: F.leaky_relu(x, 0.2), attrs={"slope": 0.2})
    g.case("clamp", "clamp", [r(5, 9, scale=2)], lambda x: x.clamp(-0.7, 1.1), attrs={"min": -0.7, "max": 1.1})
    g.case("clamp_min", "clamp", [r(5, 9, scale=2)], lambda x: x.clamp(min=0.3), attrs={"min": 0.3})
    g.case("pow_scalar", "pow_scalar", [pos(4, 5)], lambda x: x ** 2.5, attrs={"exponent": 2.5})
    g.case("pow_int_neg_base", "pow_scalar", [r(4, 5)], lambda x: x ** 3, attrs={"exponent": 3})

    # -- binary with broadcasting
    bshapes = [((3, 1, 5), (4, 5)), ((2, 3, 4), (2, 3, 4)), ((1,), (7, 3)), ((6, 1), (1, 9)), ((2, 1, 3, 1), (5, 1, 7))]
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "maximum": torch.maximum, "minimum": torch.minimum}
    for name, fn in binary.items():
        for k, (sa, sb) in enumerate(bshapes):
            a = r(*sa)
            b = pos(*sb) if name == "div" else r(*sb)
            g.case(f"{name}_{k}", name, [a, b], fn)
    g.case("pow_tensor", "pow", [pos(3, 4), r(4)], torch.pow)
    g.case("add_scalar", "add_scalar", [r(3, 5)], lambda x: x + 1.5, attrs={"scalar": 1.5})
    g.case("rsub_scalar", "rsub_scalar", [r(3, 5)], lambda x: 2.0 - x, attrs={"scalar": 2.0})
    g.case("rdiv_scalar", "rdiv_scalar", [pos(3, 5)], lambda x: 3.0 / x, attrs={"scalar": 3.0})
    g.case("mul_scalar", "mul_scalar", [r(3, 5)], lambda x: x * -0.25, attrs={"scalar": -0.25})
    g.case("where", "where", [(r(4, 1, 6) > 0).float(), r(4, 5, 6), r(5, 1)], lambda c, a, b: torch.where(c > 0, a, b), grad=[False, True, True])

    # -- reductions
    x = r(3, 4, 5, 6)
    for k, (axes, keep) in enumerate([(None, False), ([1], False), ([0, 2], True), ([3], True), ([1, 2], False), ([0, 3], False), ([-1], False)]):
        dims = tuple(range(4)) if axes is None else tuple(axes)
        g.case(f"sum_{k}", "sum", [x.clone()], lambda t: t.sum(dim=dims, keepdim=keep), attrs={"axes": axes, "keepdim": keep})
        g.case(f"mean_{k}", "mean", [x.clone()], lambda t: t.mean(dim=dims, keepdim=keep), attrs={"axes": axes, "keepdim": keep})
        g.case(f"var_{k}", "var", [x.clone()], lambda t: t.var(dim=dims, keepdim=keep), attrs={"axes": axes, "keepdim": keep})
        g.case(f"amax_{k}", "max", [x.clone()], lambda t: t.amax(dim=dims, keepdim=keep), attrs={"axes": axes, "keepdim": keep})
        g.case(f"amin_{k}", "min", [x.clone()], lambda t: t.amin(dim=dims, keepdim=keep), attrs={"axes": axes, "keepdim": keep})
    long_row = r(3, 1000)
    g.case("sum_long", "sum", [long_row], lambda t: t.sum(dim=1), attrs={"axes": [1], "keepdim": False})
    g.case("var_long_biased", "var", [long_row.clone() + 3], lambda t: t.var(dim=1, unbiased=False), attrs={"axes": [1], "keepdim": False, "correction": 0})
    g.case("amax_long", "max", [r(2, 700)], lambda t: t.amax(dim=1), attrs={"axes": [1], "keepdim": False})
    g.case("argmax_rows", "argmax", [r(5, 300)], lambda t: t.argmax(dim=1), attrs={"axis": 1})
    g.case("argmax_mid", "argmax", [r(4, 7, 3)], lambda t: t.argmax(dim=1), attrs={"axis": 1})
    g.case("argmin_mid", "argmin", [r(4, 7, 3)], lambda t: t.argmin(dim=1), attrs={"axis": 1})
    g.case("logsumexp", "logsumexp", [r(3, 17, 5, scale=5)], lambda t: torch.logsumexp(t, dim=1), attrs={"axes": [1], "keepdim": False})

    # -- layout
    y = r(2, 3, 4, 5)
    g.case("permute", "permute", [y.clone()], lambda t: t.permute(2, 0, 3, 1), attrs={"dims": [2, 0, 3, 1]})
    g.case("transpose", "transpose", [r(3, 7, 5)], lambda t: t.transpose(0, 2), attrs={"a": 0, "b": 2})
    g.case("reshape", "reshape", [y.clone()], lambda t: t.reshape(6, -1), attrs={"shape": [6, -1]})
    g.case("expand", "expand", [r(3, 1, 5)], lambda t: t.expand(2, 3, 4, 5), attrs={"shape": [2, 3, 4, 5]})
    g.case("slice_step", "slice", [r(7, 9, 5)], lambda t: t[1:6:2, ::3, -3:], attrs={"specs": [{"start": 1, "end": 6, "step": 2}, {"step": 3}, {"start": -3}]})
    g.case("pad", "pad", [r(2, 3, 4, 5)], lambda t: F.pad(t, (1, 2, 0, 3), value=0.5), attrs={"pads": [1, 2, 0, 3], "value": 0.5})
    g.case("flip", "flip", [r(3, 4, 5)], lambda t: t.flip(0, 2), attrs={"axes": [0, 2]})
    g.case("concat", "concat", [r(2, 3, 5), r(2, 1, 5), r(2, 4, 5)], lambda a, b, c: torch.cat([a, b, c], 1), attrs={"axis": 1})
    g.case("stack", "stack", [r(3, 5), r(3, 5)], lambda a, b: torch.stack([a, b], 1), attrs={"axis": 1})
    g.case("split", "split", [r(4, 10, 3)], lambda t: torch.split(t, [3, 5, 2], 1), attrs={"sizes": [3, 5, 2], "axis": 1})
    g.case("chunk", "chunk", [r(3, 7)], lambda t: torch.chunk(t, 2, -1), attrs={"chunks": 2, "axis": -1})
    g.case("repeat", "repeat", [r(2, 3)], lambda t: t.repeat(2, 1, 3), attrs={"times": [2, 1, 3]})

    # -- matmul (odd sizes vs the 32x64 output tile)
    g.case("matmul_2d", "matmul", [r(37, 29), r(29, 71)], torch.matmul)
    g.case("matmul_batched", "matmul", [r(3, 17, 33), r(3, 33, 5)], torch.matmul)
    g.case("matmul_broadcast_b", "matmul", [r(2, 3, 9, 13), r(13, 65)], torch.matmul)
    g.case("matmul_broadcast_both", "matmul", [r(2, 1, 5, 7), r(1, 3, 7, 4)], torch.matmul)
    g.case("matmul_vec_mat", "matmul", [r(11), r(4, 11, 6)], torch.matmul)
    g.case("matmul_mat_vec", "matmul", [r(5, 11), r(11)], torch.matmul)
    g.case("matmul_large_k", "matmul", [r(33, 515, scale=0.5), r(515, 66, scale=0.5)], torch.matmul)
    g.case("linear", "linear", [r(2, 5, 19), r(23, 19), r(23)], F.linear)
    g.case("linear_nobias", "linear", [r(7, 19), r(3, 19)], F.linear)

    # -- softmax
    g.case("softmax_last", "softmax", [r(4, 5, 37, scale=3)], lambda t: t.softmax(-1), attrs={"axis": -1})
    g.case("softmax_long", "softmax", [r(3, 513, scale=3)], lambda t: t.softmax(-1), attrs={"axis": -1})
    g.case("softmax_mid", "softmax", [r(4, 9, 5, scale=3)], lambda t: t.softmax(1), attrs={"axis": 1})
    g.case("log_softmax", "log_softmax", [r(6, 70, scale=3)], lambda t: t.log_softmax(-1), attrs={"axis": -1})
    g.case("log_softmax_short", "log_softmax", [r(6, 3, 10, scale=3)], lambda t: t.log_softmax(1), attrs={"axis": 1})
    # The class axis of NCHW logits (SCHP's losses), read in place with its stride.
    g.case("log_softmax_nchw", "log_softmax", [r(2, 20, 7, 5, scale=3)], lambda t: t.log_softmax(1), attrs={"axis": 1})
    g.case("softmax_first_axis", "softmax", [r(3, 4, 6, scale=3)], lambda t: t.softmax(0), attrs={"axis": 0})
    # Rows of a multiple of 4 (>= 64 columns) take the vec4 kernels.
    g.case("softmax_vec4", "softmax", [r(3, 516, scale=3)], lambda t: t.softmax(-1), attrs={"axis": -1})
    g.case("log_softmax_vec4", "log_softmax", [r(5, 132, scale=3)], lambda t: t.log_softmax(-1), attrs={"axis": -1})

    # -- reductions over the axes on both sides of the kept ones, in one dispatch: a bias gradient's sum over
    # (N, H, W) on odd sizes and past the 32-value blocks; max / min with NaN and infinities; few outputs over
    # long runs (the two-step path).
    g.case("sum_outer_bias", "sum", [r(5, 7, 9, 11)], lambda t: t.sum(dim=(0, 2, 3)), attrs={"axes": [0, 2, 3], "keepdim": False})
    g.case("sum_outer_long", "sum", [r(6, 20, 40, 41) + 0.5], lambda t: t.sum(dim=(0, 2, 3), keepdim=True), attrs={"axes": [0, 2, 3], "keepdim": True})
    y = r(4, 3, 5, 9, 8)
    y[1, 0, 2, 3, 4] = float("nan")
    y[2, 1, 0, 0, 0] = float("inf")
    y[0, 2, 1, 1, 1] = -float("inf")
    g.case("amax_outer_nan", "max", [y.clone()], lambda t: t.amax(dim=(0, 3, 4)), attrs={"axes": [0, 3, 4], "keepdim": False})
    g.case("amin_outer_nan", "min", [y.clone()], lambda t: t.amin(dim=(0, 3, 4)), attrs={"axes": [0, 3, 4], "keepdim": False})
    g.case("sum_outer_few_outputs", "sum", [r(3, 2, 150, 160)], lambda t: t.sum(dim=(0, 2, 3)), attrs={"axes": [0, 2, 3], "keepdim": False})
    # -- gated linear units: halves of one axis, a * act(b), in one kernel each way (vec4 when a half's run
    # beyond the axis is a multiple of 4). GEGLU is diffusers' feed-forward activation.
    def geglu_ref(approximate):
        def f(x, dim):
            a, b = x.chunk(2, dim)
            return a * F.gelu(b, approximate=approximate)
        return f
    g.case("glu_last", "glu", [r(3, 5, 8, scale=3)], lambda t: F.glu(t, -1), attrs={"axis": -1})
    g.case("glu_mid_odd", "glu", [r(2, 6, 3, scale=3)], lambda t: F.glu(t, 1), attrs={"axis": 1})
    g.case("geglu_last", "geglu", [r(4, 7, 16, scale=2)], lambda t: geglu_ref("none")(t, -1), attrs={"axis": -1})
    g.case("geglu_mid_odd", "geglu", [r(3, 10, 3, scale=2)], lambda t: geglu_ref("none")(t, 1), attrs={"axis": 1})
    g.case("geglu_first", "geglu", [r(4, 5, 3, scale=2)], lambda t: geglu_ref("none")(t, 0), attrs={"axis": 0})
    g.case("geglu_tanh", "geglu", [r(2, 5, 24, scale=2)], lambda t: geglu_ref("tanh")(t, -1), attrs={"axis": -1, "approximate": "tanh"})
    return [g.save(out_dir)]

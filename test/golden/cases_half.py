"""float16: rounding of float32 to half (ties to even, subnormals, overflow) and float16 ops against PyTorch.
PyTorch 1.13's CPU half support is partial, so each op's reference runs in float32 on the half-rounded inputs
and rounds its result to half once: what an f32-accumulating float16 kernel computes."""
import torch
import torch.nn.functional as F

from golden import Group


def half_ref(fn):
    """fn on half-rounded inputs, computed in float32, result rounded to half (kept as float32 values)."""
    def run(*xs):
        out = fn(*[x.half().float() for x in xs])
        return out.half().float()
    return run


def build(out_dir):
    g = Group("half", seed=21)
    r = g.randn
    # Rounding: ties to even at 1 and 1024, the largest half, overflow, subnormals and their ties, underflow.
    e = 2.0 ** -11
    special = torch.tensor([1 + e, 1 + 3 * e, 1 - e / 2, 1024 + 0.5, 1024 + 1.5, 65504, 65519, 65520, 1e6, -1e6,
                            2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -26, 1e-8, -0.0, 0.1, -0.3, 3.14159265,
                            float("inf"), float("-inf"), 6.1e-5, 6.0e-5, 2.0 ** -14 - 2.0 ** -25])
    g.case("cast_special", "half", [special], lambda x: x.half().float(), grad=[False], tol=0)
    g.case("cast_random", "half", [r(4, 333, scale=100)], lambda x: x.half().float(), grad=[False], tol=0)
    g.case("add_broadcast", "add", [r(3, 1, 7), r(5, 1)], half_ref(lambda a, b: a + b), grad=[False, False], tol=1e-3)
    g.case("silu", "silu", [r(4, 33, scale=3)], half_ref(F.silu), grad=[False], tol=1e-3)
    g.case("gelu", "gelu", [r(2, 45, scale=3)], half_ref(F.gelu), grad=[False], tol=1e-3)
    g.case("matmul", "matmul", [r(3, 37, 29), r(29, 18)], half_ref(torch.matmul), grad=[False, False], tol=1e-3)
    g.case("linear_bias", "linear", [r(2, 5, 67), r(23, 67), r(23)], half_ref(F.linear), grad=[False] * 3, tol=1e-3)
    g.case("conv3x3", "conv2d", [r(2, 5, 9, 11), r(7, 5, 3, 3), r(7)], half_ref(lambda x, w, b: F.conv2d(x, w, b, padding=1)),
           attrs={"padding": 1, "stride": 1}, grad=[False] * 3, tol=1e-3)
    g.case("conv3x3_s2", "conv2d", [r(1, 6, 13, 10), r(4, 6, 3, 3), r(4)], half_ref(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1)),
           attrs={"padding": 1, "stride": 2}, grad=[False] * 3, tol=1e-3)
    g.case("conv1x1", "conv2d", [r(2, 12, 5, 7), r(9, 12, 1, 1), r(9)], half_ref(lambda x, w, b: F.conv2d(x, w, b)),
           attrs={"padding": 0, "stride": 1}, grad=[False] * 3, tol=1e-3)
    g.case("conv3x3_wide", "conv2d", [r(1, 40, 12, 10), r(36, 40, 3, 3), r(36)], half_ref(lambda x, w, b: F.conv2d(x, w, b, padding=1)),
           attrs={"padding": 1, "stride": 1}, grad=[False] * 3, tol=1e-3)
    g.case("group_norm", "group_norm", [r(2, 8, 5, 7, scale=3) + 2, r(8), r(8)], half_ref(lambda x, w, b: F.group_norm(x, 4, w, b, 1e-5)),
           attrs={"groups": 4, "eps": 1e-5}, grad=[False] * 3, tol=1e-3)
    g.case("layer_norm", "layer_norm", [r(3, 7, 40, scale=2) + 1, r(40), r(40)], half_ref(lambda x, w, b: F.layer_norm(x, (40,), w, b)),
           attrs={"shape": [40]}, grad=[False] * 3, tol=1e-3)
    g.case("softmax", "softmax", [r(3, 5, 37, scale=4)], half_ref(lambda x: F.softmax(x, -1)), grad=[False], tol=1e-3)

    def attention(q, k, v):
        s = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
        return F.softmax(s, -1) @ v
    g.case("attention", "attention", [r(2, 3, 19, 8), r(2, 3, 23, 8), r(2, 3, 23, 8)], half_ref(attention), grad=[False] * 3, tol=1e-3)
    g.case("sum", "sum", [r(4, 9, 130)], half_ref(lambda x: x.sum(-1)), grad=[False], tol=1e-3)
    g.case("upsample_nearest", "upsample", [r(1, 3, 4, 5)], half_ref(lambda x: F.interpolate(x, scale_factor=2, mode="nearest")), grad=[False], tol=0)
    # GEGLU on float16 storage: the vec4 path (a half's run of 12) and the scalar one (7).
    geglu = lambda x: x.chunk(2, -1)[0] * F.gelu(x.chunk(2, -1)[1])
    g.case("geglu_vec4", "geglu", [r(3, 5, 24, scale=3)], half_ref(geglu), grad=[False], tol=1e-3)
    g.case("geglu_scalar", "geglu", [r(4, 14, scale=3)], half_ref(geglu), grad=[False], tol=1e-3)
    return [g.save(out_dir)]

"""conv2d / conv_transpose2d: strides, padding, dilation, groups, bias, odd sizes, several tiles."""
import torch.nn.functional as F

from golden import Group


def build(out_dir):
    g = Group("conv", seed=3)
    r = g.randn
    cases = [
        # name, x shape, weight shape, bias, options
        ("3x3_pad1", (2, 5, 13, 11), (7, 5, 3, 3), True, {"padding": 1}),
        ("3x3_nopad", (1, 3, 9, 10), (4, 3, 3, 3), False, {}),
        ("stride2_odd", (2, 6, 13, 11), (5, 6, 3, 3), True, {"stride": 2, "padding": 1}),
        ("stride2_asym", (1, 4, 12, 9), (6, 4, 3, 2), True, {"stride": [2, 1], "padding": [1, 0]}),
        ("dilation2", (2, 3, 11, 12), (4, 3, 3, 3), True, {"padding": 2, "dilation": 2}),
        ("groups2", (2, 6, 9, 7), (8, 3, 3, 3), True, {"padding": 1, "groups": 2}),
        ("depthwise", (1, 5, 8, 9), (5, 1, 3, 3), True, {"padding": 1, "groups": 5}),
        ("7x7", (1, 9, 14, 13), (6, 9, 7, 7), True, {"padding": 3}),
        ("1x1", (2, 7, 5, 6), (9, 7, 1, 1), True, {}),
        ("1x1_stride2", (2, 7, 9, 7), (5, 7, 1, 1), False, {"stride": 2}),
        ("tiles", (1, 37, 19, 21), (45, 37, 3, 3), True, {"padding": 1}),
        ("stride3_dil2", (1, 4, 17, 15), (3, 4, 3, 3), False, {"stride": 3, "padding": 2, "dilation": 2}),
        ("same_even", (1, 3, 8, 7), (4, 3, 4, 2), True, {"padding": "same"}),
        ("valid", (2, 3, 6, 7), (2, 3, 3, 3), True, {"padding": "valid"}),
        # Few outputs, long reduction: the weight gradient is split along K.
        ("split_k", (4, 16, 40, 30), (3, 16, 3, 3), True, {"padding": 1}),
        # Winograd F(2x2, 3x3) shapes (chosen automatically from 32 channels; conv.test.ts also forces it on
        # every case): odd sizes (half tiles at the bottom and right edges), channel counts that are not
        # multiples of 4, batches, padding 0 / 1 / 2 / asymmetric, tiny images, a tile count not a multiple of 4.
        ("wino_odd", (3, 33, 9, 7), (34, 33, 3, 3), True, {"padding": 1}),
        ("wino_pad0", (2, 35, 8, 11), (33, 35, 3, 3), False, {}),
        ("wino_pad2", (2, 9, 5, 6), (10, 9, 3, 3), True, {"padding": 2}),
        ("wino_asym", (1, 6, 7, 9), (5, 6, 3, 3), True, {"padding": [2, 1]}),
        ("wino_thin", (2, 32, 1, 3), (33, 32, 3, 3), True, {"padding": 1}),
        ("wino_big", (1, 64, 15, 13), (48, 64, 3, 3), True, {"padding": 1}),
        # The sliding kernel (up to 32 channels): strips of 4 pixels past the row end (W 37), 8-strip groups
        # spanning rows, output channels not a multiple of 8, a 1-pixel-wide image.
        ("slide_wide", (2, 3, 5, 37), (11, 3, 3, 3), True, {"padding": 1}),
        ("slide_narrow", (3, 17, 6, 1), (9, 17, 3, 3), False, {"padding": [1, 2]}),
        # Rows of a multiple of 4 (the sliding kernel's vec4 image loads): padding 1 both ways (W 16), padding 0
        # (W 12; the input gradient's dy is 10 wide, scalar) and 2 (W 8), asymmetric, dy 8 wide at padding 0 -> 2.
        ("slide_vec_pad1", (3, 13, 7, 16), (9, 13, 3, 3), True, {"padding": 1}),
        ("slide_vec_pad0", (1, 5, 6, 12), (7, 5, 3, 3), False, {}),
        ("slide_vec_pad2", (2, 7, 5, 8), (6, 7, 3, 3), True, {"padding": 2}),
        ("slide_vec_asym", (1, 6, 5, 12), (10, 6, 3, 3), True, {"padding": [2, 0]}),
        ("slide_vec_dy8", (3, 3, 4, 10), (5, 3, 3, 3), False, {}),
        # From 16x12 = 192 output pixels the weights are packed as vec4 rows too (a scalar-window case: split_k).
        ("slide_vec_packed", (2, 5, 12, 20), (9, 5, 3, 3), True, {"padding": 1}),
    ]
    for name, xs, ws, bias, opts in cases:
        inputs = [r(*xs), r(*ws, scale=0.3)] + ([r(ws[0])] if bias else [])
        torch_opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in opts.items()}
        g.case(f"conv2d_{name}", "conv2d", inputs, lambda x, w, b=None: F.conv2d(x, w, b, **torch_opts), attrs=opts)
    tcases = [
        ("k3s2", (2, 6, 5, 4), (6, 4, 3, 3), True, {"stride": 2, "padding": 1, "outputPadding": 1}),
        ("k4s2", (1, 5, 6, 7), (5, 3, 4, 4), True, {"stride": 2, "padding": 1}),
        ("groups", (2, 4, 5, 5), (4, 3, 3, 3), False, {"stride": 1, "padding": 1, "groups": 2}),
        ("dil", (1, 3, 6, 5), (3, 2, 3, 2), True, {"stride": [2, 3], "dilation": [2, 1], "padding": [1, 0]}),
        # Stride 1, 3x3: its forward is conv2d's input-gradient product, Winograd from 32 channels.
        ("wino_s1", (2, 33, 7, 5), (33, 34, 3, 3), True, {"padding": 1}),
    ]
    for name, xs, ws, bias, opts in tcases:
        inputs = [r(*xs), r(*ws, scale=0.3)] + ([r(ws[1] * opts.get("groups", 1))] if bias else [])
        torch_opts = {("output_padding" if k == "outputPadding" else k): (tuple(v) if isinstance(v, list) else v) for k, v in opts.items()}
        g.case(f"conv_transpose2d_{name}", "conv_transpose2d", inputs, lambda x, w, b=None: F.conv_transpose2d(x, w, b, **torch_opts), attrs=opts)
    return [g.save(out_dir), build_nonfinite(out_dir)]


def build_nonfinite(out_dir):
    """NaN and infinities in the image or the weight of stride-1 3x3 convolutions: outputs and gradients are NaN or
    infinite exactly where PyTorch's are (fewer than 8 channels, so every product stays direct or sliding)."""
    g = Group("conv_nonfinite", seed=4)
    r = g.randn
    x = r(3, 5, 7, 12)
    x[0, 1, 3, 4] = float("nan")
    x[1, 2, 0, 11] = float("inf")
    x[2, 4, 6, 0] = float("-inf")
    xs = r(2, 3, 5, 7)
    xs[0, 0, 2, 3] = float("inf")
    xs[1, 2, 4, 6] = float("nan")
    xp = r(2, 3, 12, 16)
    xp[1, 1, 5, 7] = float("nan")
    xp[0, 2, 11, 3] = float("inf")
    w = r(5, 3, 3, 3, scale=0.3)
    w[2, 1, 1, 1] = float("nan")
    wp = r(6, 3, 3, 3, scale=0.3)
    wp[4, 0, 1, 1] = float("-inf")
    cases = [
        ("x_vec", [x, r(6, 5, 3, 3, scale=0.3), r(6)], {"padding": 1}),
        ("x_scalar", [xs, r(4, 3, 3, 3, scale=0.3)], {"padding": 1}),
        ("w_vec", [r(1, 3, 5, 8), w], {"padding": 1}),
        # Large enough for the packed weights (16x12 outputs): NaN and infinity in the image, infinity in the weight.
        # (Non-finite weights only at the centre tap. At an edge tap PyTorch's answer on the border depends on its
        # backend: its im2col path multiplies the zero padding (NaN, as our kernels do: a 1x1-channel conv), its
        # oneDNN path skips it (finite: these shapes).)
        ("packed", [xp, wp], {"padding": 1}),
    ]
    for name, inputs, opts in cases:
        g.case(f"conv2d_{name}", "conv2d", inputs, lambda x, w, b=None: F.conv2d(x, w, b, **opts), attrs=opts)
    return g.save(out_dir)

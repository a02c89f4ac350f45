"""Resampling and pooling: interpolate (nearest, bilinear, bicubic, align_corners, sizes and scale factors that
do not divide), grid_sample (bilinear/nearest, zeros/border, align_corners), avg/adaptive/max pooling."""
import torch
import torch.nn.functional as F

from golden import Group


def build(out_dir):
    g = Group("resample", seed=6)
    r = g.randn
    for k, (shape, opts) in enumerate([
        ((2, 3, 5, 7), {"size": [11, 9], "mode": "nearest"}),
        ((1, 2, 6, 4), {"scale_factor": 2.0, "mode": "nearest"}),
        ((2, 3, 5, 7), {"size": [11, 13], "mode": "bilinear", "align_corners": False}),
        ((2, 3, 5, 7), {"size": [11, 13], "mode": "bilinear", "align_corners": True}),
        ((1, 2, 9, 8), {"size": [4, 3], "mode": "bilinear", "align_corners": False}),
        ((1, 2, 4, 5), {"scale_factor": 2.5, "mode": "bilinear", "align_corners": False}),
        ((2, 2, 5, 6), {"size": [13, 10], "mode": "bicubic", "align_corners": False}),
        ((1, 3, 6, 5), {"size": [17, 9], "mode": "bicubic", "align_corners": True}),
        ((1, 19, 6, 6), {"scale_factor": 8.0, "mode": "bicubic", "align_corners": False}),
        ((2, 3, 4, 8), {"size": [12, 16], "mode": "nearest"}),  # whole factors 3 and 2: the dedicated kernels
    ]):
        torch_opts = {kk: (tuple(v) if isinstance(v, list) else v) for kk, v in opts.items()}
        attrs = {"mode": opts["mode"], "alignCorners": opts.get("align_corners", False)}
        if "size" in opts:
            attrs["size"] = opts["size"]
        else:
            attrs["scaleFactor"] = opts["scale_factor"]
        g.case(f"interpolate_{k}_{opts['mode']}", "interpolate", [r(*shape)], lambda x: F.interpolate(x, **torch_opts), attrs=attrs)

    for k, (mode, padding, align) in enumerate([("bilinear", "zeros", False), ("bilinear", "zeros", True), ("bilinear", "border", False),
                                                 ("nearest", "zeros", False), ("bilinear", "border", True)]):
        grid = g.rand(2, 7, 5, 2, low=-1.3, high=1.3)
        g.case(f"grid_sample_{k}_{mode}_{padding}_{align}", "grid_sample", [r(2, 3, 6, 8), grid],
               lambda x, gr: F.grid_sample(x, gr, mode=mode, padding_mode=padding, align_corners=align),
               attrs={"mode": mode, "paddingMode": padding, "alignCorners": align}, grad=[True, mode == "bilinear"])

    for k, (shape, kernel, stride, pad, ceil, include) in enumerate([
        ((2, 3, 7, 9), 3, 2, 1, False, True), ((1, 2, 8, 7), 2, 2, 0, True, True), ((2, 3, 9, 8), 3, 2, 1, True, False), ((1, 4, 6, 6), [3, 2], [1, 2], [1, 0], False, False)]):
        g.case(f"avg_pool_{k}", "avg_pool2d", [r(*shape)],
               lambda x: F.avg_pool2d(x, kernel, stride, pad, ceil_mode=ceil, count_include_pad=include),
               attrs={"kernelSize": kernel, "stride": stride, "padding": pad, "ceilMode": ceil, "countIncludePad": include})
    for size in [1, 2, 3, 6]:
        g.case(f"adaptive_avg_pool_{size}", "adaptive_avg_pool2d", [r(2, 3, 13, 11)], lambda x: F.adaptive_avg_pool2d(x, size), attrs={"size": size})
    for k, (shape, kernel, stride, pad, ceil, dil) in enumerate([
        ((2, 3, 9, 8), 3, 2, 1, False, 1), ((1, 2, 8, 7), 2, 2, 0, True, 1), ((1, 3, 11, 10), 3, 2, 1, True, 1), ((1, 2, 9, 9), 3, 1, 1, False, 2)]):
        g.case(f"max_pool_{k}", "max_pool2d", [r(*shape)],
               lambda x: F.max_pool2d(x, kernel, stride, pad, dilation=dil, ceil_mode=ceil),
               attrs={"kernelSize": kernel, "stride": stride, "padding": pad, "ceilMode": ceil, "dilation": dil})
    return [g.save(out_dir)]

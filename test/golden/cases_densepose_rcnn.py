"""DensePose R-CNN as Leffa uses it (detectron2's densepose_rcnn_R_50_FPN_s1x), re-implemented here in plain
PyTorch 1.13 from detectron2's code (modeling/backbone/{resnet,fpn}.py, layers/roi_align.py; detectron2 itself is
not installable here): ResNet with FrozenBatchNorm and stride in the 1x1 conv (RESNETS.STRIDE_IN_1X1 = True), FPN
with LastLevelMaxPool (p2..p6), and ROIAlign in both its forms (aligned False = "ROIAlign" as the config's poolers
use, True = "ROIAlignV2"). Random weights, detectron2's state-dict key names. When torchvision is importable its
roi_align cross-checks the one written here."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from golden import write_safetensors


class FrozenBN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.register_buffer("weight", torch.ones(c))
        self.register_buffer("bias", torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        scale = self.weight * (self.running_var + 1e-5).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


class D2Conv(nn.Conv2d):
    """detectron2.layers.Conv2d: a conv with an optional `norm` child applied after it."""

    def __init__(self, *args, norm=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x):
        x = super().forward(x)
        return self.norm(x) if self.norm is not None else x


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, mid, stride, stride_in_1x1=True):
        super().__init__()
        self.shortcut = D2Conv(cin, cout, 1, stride=stride, bias=False, norm=FrozenBN(cout)) if cin != cout else None
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = D2Conv(cin, mid, 1, stride=s1, bias=False, norm=FrozenBN(mid))
        self.conv2 = D2Conv(mid, mid, 3, stride=s3, padding=1, bias=False, norm=FrozenBN(mid))
        self.conv3 = D2Conv(mid, cout, 1, bias=False, norm=FrozenBN(cout))

    def forward(self, x):
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class Stem(nn.Module):
    def __init__(self, cout):
        super().__init__()
        self.conv1 = D2Conv(3, cout, 7, stride=2, padding=3, bias=False, norm=FrozenBN(cout))

    def forward(self, x):
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNet(nn.Module):
    def __init__(self, blocks=(3, 4, 6, 3), stem=64, res2_out=256, mid=64):
        super().__init__()
        self.stem = Stem(stem)
        cin = stem
        for i, n in enumerate(blocks):
            cout, m = res2_out * 2**i, mid * 2**i
            stage = nn.Sequential(*[Bottleneck(cin if b == 0 else cout, cout, m, (1 if i == 0 else 2) if b == 0 else 1) for b in range(n)])
            self.add_module(f"res{i + 2}", stage)
            cin = cout

    def forward(self, x):
        out = {}
        x = self.stem(x)
        for i in range(2, 6):
            x = getattr(self, f"res{i}")(x)
            out[f"res{i}"] = x
        return out


class FPN(nn.Module):
    def __init__(self, bottom_up, in_channels, out_channels=256):
        super().__init__()
        self.bottom_up = bottom_up
        for i, c in enumerate(in_channels):
            self.add_module(f"fpn_lateral{i + 2}", nn.Conv2d(c, out_channels, 1))
            self.add_module(f"fpn_output{i + 2}", nn.Conv2d(out_channels, out_channels, 3, padding=1))

    def forward(self, x):
        feats = self.bottom_up(x)
        prev = self.fpn_lateral5(feats["res5"])
        results = [self.fpn_output5(prev)]
        for i in (4, 3, 2):
            top_down = F.interpolate(prev, scale_factor=2, mode="nearest")
            prev = getattr(self, f"fpn_lateral{i}")(feats[f"res{i}"]) + top_down
            results.insert(0, getattr(self, f"fpn_output{i}")(prev))
        results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))  # LastLevelMaxPool
        return dict(zip(["p2", "p3", "p4", "p5", "p6"], results))


def roi_align(x, rois, out_size, scale, sampling_ratio, aligned):
    """ROIAlign as detectron2's / torchvision's CPU kernel computes it, vectorised per roi over bins and samples."""
    N, C, H, W = x.shape
    PH, PW = out_size
    out = x.new_zeros(rois.shape[0], C, PH, PW)
    off = 0.5 if aligned else 0.0
    for k, r in enumerate(rois.tolist()):
        b = int(r[0])
        x1, y1, x2, y2 = (v * scale - off for v in r[1:])
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / PH, rw / PW
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / PH)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / PW)
        count = max(gh * gw, 1)
        # float64 sample coordinates as the C++ kernel's T = float computes them in float: use float32.
        ys = (torch.tensor(y1, dtype=torch.float32) + torch.arange(PH, dtype=torch.float32)[:, None] * bh
              + (torch.arange(gh, dtype=torch.float32)[None, :] + 0.5) * bh / gh).reshape(-1)
        xs = (torch.tensor(x1, dtype=torch.float32) + torch.arange(PW, dtype=torch.float32)[:, None] * bw
              + (torch.arange(gw, dtype=torch.float32)[None, :] + 0.5) * bw / gw).reshape(-1)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        valid = ~((yy < -1) | (yy > H) | (xx < -1) | (xx > W))
        yy, xx = yy.clamp(min=0), xx.clamp(min=0)
        yl, xl = yy.floor().long(), xx.floor().long()
        ytop, xtop = yl >= H - 1, xl >= W - 1
        yl, xl = torch.where(ytop, H - 1, yl), torch.where(xtop, W - 1, xl)
        yh, xh = torch.where(ytop, H - 1, yl + 1), torch.where(xtop, W - 1, xl + 1)
        yy, xx = torch.where(ytop, yl.float(), yy), torch.where(xtop, xl.float(), xx)
        ly, lx = yy - yl, xx - xl
        hy, hx = 1 - ly, 1 - lx
        f = x[b]
        v = (hy * hx * f[:, yl, xl] + hy * lx * f[:, yl, xh] + ly * hx * f[:, yh, xl] + ly * lx * f[:, yh, xh]) * valid
        v = v.reshape(C, PH, gh, PW, gw).sum(dim=(2, 4)) / count
        out[k] = v
    return out


SMALL = dict(blocks=(3, 4, 6, 3), stem=8, res2_out=16, mid=4)


def randomize(model, g):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("norm.weight"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("bias") or name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2.0 / fan_in))



# ---------------------------------------------------------------- RPN, box head and their post-processing

PIXEL_MEAN = [103.530, 116.280, 123.675]  # BGR, PIXEL_STD 1
SCALE_CLAMP = math.log(1000.0 / 16)


class RPNHead(nn.Module):
    def __init__(self, c, a=3):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.objectness_logits = nn.Conv2d(c, a, 1)
        self.anchor_deltas = nn.Conv2d(c, 4 * a, 1)

    def forward(self, feats):
        logits, deltas = [], []
        for x in feats:
            t = F.relu(self.conv(x))
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas


def grid_anchors(h, w, stride, size, ratios=(0.5, 1.0, 2.0)):
    """DefaultAnchorGenerator (offset 0): cell anchors per size then ratio, locations row-major."""
    cell = []
    for r in ratios:
        aw = math.sqrt(size * size / r)
        ah = r * aw
        cell.append([-aw / 2.0, -ah / 2.0, aw / 2.0, ah / 2.0])
    cell = torch.tensor(cell)
    sx = torch.arange(0, w * stride, step=stride, dtype=torch.float32)
    sy = torch.arange(0, h * stride, step=stride, dtype=torch.float32)
    yy, xx = torch.meshgrid(sy, sx, indexing="ij")
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    shifts = torch.stack((xx, yy, xx, yy), dim=1)
    return (shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4)


def apply_deltas(deltas, boxes, weights):
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    cx = boxes[:, 0] + 0.5 * widths
    cy = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = torch.clamp(deltas[:, 2] / ww, max=SCALE_CLAMP)
    dh = torch.clamp(deltas[:, 3] / wh, max=SCALE_CLAMP)
    pcx, pcy = dx * widths + cx, dy * heights + cy
    pw, ph = torch.exp(dw) * widths, torch.exp(dh) * heights
    return torch.stack((pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph), dim=1)


def clip(boxes, h, w):
    return torch.stack((boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)), dim=1)


def nms(boxes, scores, thresh):
    """Greedy NMS as torchvision's CPU kernel: by descending score, drop boxes with IoU > thresh."""
    order = torch.argsort(scores, descending=True).tolist()
    b = boxes.tolist()
    area = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in b]
    removed = [False] * len(b)
    keep = []
    for i in order:
        if removed[i]:
            continue
        keep.append(i)
        for j in order:
            if removed[j] or j == i:
                continue
            iw = max(0.0, min(b[i][2], b[j][2]) - max(b[i][0], b[j][0]))
            ih = max(0.0, min(b[i][3], b[j][3]) - max(b[i][1], b[j][1]))
            inter = iw * ih
            if inter / (area[i] + area[j] - inter) > thresh:
                removed[j] = True
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(boxes, scores, groups, thresh):
    keep = torch.cat([torch.nonzero(groups == g)[:, 0][nms(boxes[groups == g], scores[groups == g], thresh)] for g in groups.unique()])
    keep = keep[torch.argsort(scores[keep], descending=True)]
    try:
        import torchvision
        assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, groups, thresh)), "batched_nms differs from torchvision"
    except ImportError:
        pass
    return keep


def level_pool(feats, boxes, size, sampling_ratio, aligned):
    """ROIPooler over p2..p5: level = floor(4 + log2(sqrt(area) / 224 + 1e-8)) clamped to [2, 5] (poolers.py)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lvl = torch.floor(4 + torch.log2(torch.sqrt(area) / 224 + 1e-8)).clamp(2, 5).long() - 2
    out = feats[0].new_zeros(len(boxes), feats[0].shape[1], size, size)
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
    for l in range(4):
        idx = torch.nonzero(lvl == l)[:, 0]
        if len(idx):
            out[idx] = roi_align(feats[l], rois[idx], (size, size), 1.0 / 2 ** (l + 2), sampling_ratio, aligned)
    return out, lvl


class BoxHead(nn.Module):
    def __init__(self, c, res, fc):
        super().__init__()
        self.fc1 = nn.Linear(c * res * res, fc)
        self.fc2 = nn.Linear(fc, fc)

    def forward(self, x):
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))


class BoxPredictor(nn.Module):
    def __init__(self, fc, classes=1):
        super().__init__()
        self.cls_score = nn.Linear(fc, classes + 1)
        self.bbox_pred = nn.Linear(fc, 4 * classes)



def detect(backbone, rpn, box_head, box_predictor, image):
    """GeneralizedRCNN's test-time detection on one BGR image [1, 3, h, w] (0..255, already resized, h and w
    multiples of 32 or padded by the caller): RPN proposals, box head, score threshold 0.5 and NMS 0.5. Returns
    the stage outputs by name and the FPN levels p2..p6."""
    _, _, h, w = image.shape
    t = {}
    x = image - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    x = F.pad(x, (0, (32 - w % 32) % 32, 0, (32 - h % 32) % 32))
    feats = backbone(x)
    levels = [feats[k] for k in ("p2", "p3", "p4", "p5", "p6")]
    logits, deltas = rpn(levels)
    cand, cand_logits, cand_lvl = [], [], []
    for l, (lg, dl) in enumerate(zip(logits, deltas)):
        t[f"rpn_logits{l}"] = lg
        t[f"rpn_deltas{l}"] = dl
        _, a, hh, ww = lg.shape
        lg = lg.permute(0, 2, 3, 1).reshape(-1)
        dl = dl.view(1, a, 4, hh, ww).permute(0, 3, 4, 1, 2).reshape(-1, 4)
        anchors = grid_anchors(hh, ww, 2 ** (l + 2), 32 * 2 ** l)
        props = apply_deltas(dl, anchors, (1.0, 1.0, 1.0, 1.0))
        k = min(1000, len(lg))
        sc, idx = lg.sort(descending=True)
        cand.append(props[idx[:k]])
        cand_logits.append(sc[:k])
        cand_lvl.append(torch.full((k,), l))
    boxes, scores, lvl = torch.cat(cand), torch.cat(cand_logits), torch.cat(cand_lvl)
    boxes = clip(boxes, h, w)
    ok = ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)
    boxes, scores, lvl = boxes[ok], scores[ok], lvl[ok]
    keep = batched_nms(boxes, scores, lvl, 0.7)[:1000]
    proposals, proposal_logits = boxes[keep], scores[keep]
    t["proposals"] = proposals
    t["proposal_logits"] = proposal_logits
    pooled, plvl = level_pool(levels[:4], proposals, 7, 2, False)
    t["box_pooled"] = pooled
    t["box_levels"] = plvl.int()
    feat = box_head(pooled)
    cls, reg = box_predictor.cls_score(feat), box_predictor.bbox_pred(feat)
    t["cls_logits"] = cls
    t["bbox_deltas"] = reg
    probs = F.softmax(cls, dim=-1)[:, 0]
    det = clip(apply_deltas(reg, proposals, (10.0, 10.0, 5.0, 5.0)), h, w)
    sel = probs > 0.5
    det, probs = det[sel], probs[sel]
    keep = batched_nms(det, probs, torch.zeros(len(det), dtype=torch.int64), 0.5)[:100]
    t["det_boxes"] = det[keep]
    t["det_scores"] = probs[keep]
    return t, levels

def rcnn_case(out_dir, g):
    c, fc = 16, 32
    backbone = FPN(ResNet(**SMALL), [16, 32, 64, 128], out_channels=c).eval()
    randomize(backbone, g)
    rpn = RPNHead(c)
    box_head, box_predictor = BoxHead(c, 7, fc), BoxPredictor(fc)
    for m in (rpn, box_head, box_predictor):
        for name, t in m.state_dict().items():
            with torch.no_grad():
                t.copy_(torch.randn(t.shape, generator=g) * (0.1 if name.endswith("bias") else math.sqrt(1.0 / t[0].numel())))
    h, w = 128, 96
    image = torch.rand(1, 3, h, w, generator=g) * 255  # BGR 0..255
    with torch.no_grad():
        # Weights scaled to the features' size, so that deltas move boxes by about their size.
        x = image - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
        s = max(v.std().item() for v in backbone(x).values())
        rpn.conv.weight /= s
        rpn.anchor_deltas.weight *= 0.3
        box_head.fc1.weight /= s
        box_predictor.bbox_pred.weight *= 0.3
        box_predictor.cls_score.bias.copy_(torch.tensor([0.3, 0.0]))  # about half the boxes above 0.5
    t = {f"weights/backbone.{k}": v for k, v in backbone.state_dict().items()}
    t.update({f"weights/proposal_generator.rpn_head.{k}": v for k, v in rpn.state_dict().items()})
    t.update({f"weights/roi_heads.box_head.{k}": v for k, v in box_head.state_dict().items()})
    t.update({f"weights/roi_heads.box_predictor.{k}": v for k, v in box_predictor.state_dict().items()})
    t["input"] = image
    with torch.no_grad():
        out, _ = detect(backbone, rpn, box_head, box_predictor, image)
    t.update({f"out/{k}": v for k, v in out.items()})
    keep, proposals = out["det_scores"], out["proposals"]
    assert 5 < len(keep) < 100 and len(proposals) > 50, (len(keep), len(proposals))
    write_safetensors(f"{out_dir}/densepose_rcnn_detect.safetensors", t)
    return (f"{out_dir}/densepose_rcnn_detect.safetensors", f"{len(proposals)} proposals, {len(keep)} detections")

def build(out_dir):
    g = torch.Generator().manual_seed(11)
    results = []

    # Backbone + FPN, narrow widths but ResNet-50's depths, input 96 x 64 (a multiple of 32).
    backbone = FPN(ResNet(**SMALL), [16, 32, 64, 128], out_channels=16).eval()
    randomize(backbone, g)
    x = torch.randn(1, 3, 96, 64, generator=g) * 50
    with torch.no_grad():
        feats = backbone(x)
        res = backbone.bottom_up(x)
    t = {f"weights/backbone.{k}": v for k, v in backbone.state_dict().items()}
    t["input"] = x
    t.update({f"out/{k}": v for k, v in feats.items()})
    t.update({f"out/{k}": v for k, v in res.items()})
    write_safetensors(f"{out_dir}/densepose_rcnn_backbone.safetensors", t)
    results.append((f"{out_dir}/densepose_rcnn_backbone.safetensors", len(feats) + len(res)))

    # The full-size backbone's key set and shapes (built on the meta device: no weights allocated).
    full = FPN(ResNet(), [256, 512, 1024, 2048])
    with open(f"{out_dir}/densepose_rcnn_r50_fpn_keys.txt", "w") as f:
        for k, v in full.state_dict().items():
            f.write(f"backbone.{k} {','.join(map(str, v.shape))}\n")
    results.append((f"{out_dir}/densepose_rcnn_r50_fpn_keys.txt", len(full.state_dict())))

    # ROIAlign: boxes inside, across and outside the map, tiny and degenerate ones, two batch entries, both modes,
    # fixed sampling ratio and the adaptive one (0).
    feat = torch.randn(2, 5, 13, 11, generator=g)
    rois = torch.tensor([
        [0, 1.3, 2.2, 30.5, 40.1],
        [1, -6.0, -3.5, 12.0, 9.0],
        [0, 20.0, 30.0, 52.0, 60.0],
        [1, 4.0, 4.0, 4.5, 4.2],
        [0, 10.0, 10.0, 10.0, 10.0],
        [1, 0.0, 0.0, 44.0, 52.0],
        [0, 35.0, 40.0, 70.0, 90.0],
        [1, 100.0, 100.0, 140.0, 120.0],  # wholly outside: zeros
    ])
    t = {"input": feat, "rois": rois}
    for aligned in (False, True):
        for sr in (2, 0):
            for size in ((7, 7), (4, 6)):
                key = f"out/aligned{int(aligned)}_sr{sr}_{size[0]}x{size[1]}"
                t[key] = roi_align(feat, rois, size, 0.25, sr, aligned)
    try:
        import torchvision
        for key, v in t.items():
            if key.startswith("out/"):
                a, s, hw = key[4:].split("_")
                ph, pw = map(int, hw.split("x"))
                ref = torchvision.ops.roi_align(feat, rois, (ph, pw), 0.25, int(s[2:]), a == "aligned1")
                assert torch.allclose(ref, v, atol=1e-5), key
    except ImportError:
        pass
    write_safetensors(f"{out_dir}/densepose_rcnn_roi_align.safetensors", t)
    results.append((f"{out_dir}/densepose_rcnn_roi_align.safetensors", len(t) - 2))
    results.append(rcnn_case(out_dir, g))
    return results

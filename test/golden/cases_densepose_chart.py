"""DensePose R-CNN's chart branch and Leffa's use of it, in plain PyTorch 1.13 from the public sources
(detectron2 is not installable here): DensePoseV1ConvXHead and DensePoseChartPredictor (projects/DensePose,
modeling/roi_heads/v1convx.py, modeling/predictors/chart.py) behind the densepose ROIPooler (28x28, sampling 2,
"ROIAlign" as Base-DensePose-RCNN-FPN.yaml sets), DefaultPredictor's ResizeShortestEdge through Pillow's bilinear
resize (detectron2's ResizeTransform), detector_postprocess, DensePose's chart-result converter, and Leffa's
leffa_utils/densepose_predictor.py (predict_iuv; predict_seg through DensePoseResultsFineSegmentationVisualizer
and Leffa's MatrixVisualizer, rendered with cv2). Random weights on a narrow model with the released key names,
also written as detectron2 model-zoo pickles (numpy arrays under 'model') for the loader, with the full-size
model's key set."""
import math
import pickle

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cases_densepose_rcnn import FPN, SMALL, BoxHead, BoxPredictor, PIXEL_MEAN, ResNet, RPNHead, detect, level_pool, randomize
from golden import write_safetensors


class V1ConvXHead(nn.Module):
    def __init__(self, cin, hidden=512, n=8, kernel=3):
        super().__init__()
        self.n = n
        for i in range(n):
            self.add_module(f"body_conv_fcn{i + 1}", nn.Conv2d(cin if i == 0 else hidden, hidden, kernel, padding=kernel // 2))

    def forward(self, x):
        for i in range(self.n):
            x = F.relu(getattr(self, f"body_conv_fcn{i + 1}")(x))
        return x


class ChartPredictor(nn.Module):
    def __init__(self, cin, coarse=2, patches=24, kernel=4, up=2):
        super().__init__()
        pad = int(kernel / 2 - 1)
        self.ann_index_lowres = nn.ConvTranspose2d(cin, coarse, kernel, stride=2, padding=pad)
        self.index_uv_lowres = nn.ConvTranspose2d(cin, patches + 1, kernel, stride=2, padding=pad)
        self.u_lowres = nn.ConvTranspose2d(cin, patches + 1, kernel, stride=2, padding=pad)
        self.v_lowres = nn.ConvTranspose2d(cin, patches + 1, kernel, stride=2, padding=pad)
        self.up = up

    def forward(self, x):
        interp = lambda t: F.interpolate(t, scale_factor=self.up, mode="bilinear", align_corners=False)
        return (interp(self.ann_index_lowres(x)), interp(self.index_uv_lowres(x)), interp(self.u_lowres(x)), interp(self.v_lowres(x)))


def shortest_edge_size(oldh, oldw, short_edge_length, max_size):
    """ResizeShortestEdge.get_output_shape."""
    h, w = oldh, oldw
    size = short_edge_length * 1.0
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh = newh * scale
        neww = neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def pil_resize(img, new_h, new_w):
    """ResizeTransform.apply_image on a uint8 HxWx3 array."""
    return np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.BILINEAR))


# ---- DensePose's converters (converters/base.py, segm_to_mask.py, chart_output_to_chart_result.py)

def make_int_box(box):
    return tuple(box.long().tolist())


def chart_result(coarse, fine, u, v, box_xyxy):
    box_xywh = box_xyxy.clone()
    box_xywh[2] -= box_xywh[0]
    box_xywh[3] -= box_xywh[1]
    x, y, w, h = make_int_box(box_xywh)
    w, h = max(int(w), 1), max(int(h), 1)
    coarse_bbox = F.interpolate(coarse, (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
    labels = (F.interpolate(fine, (h, w), mode="bilinear", align_corners=False).argmax(dim=1) * (coarse_bbox > 0).long()).squeeze(0)
    u_bbox = F.interpolate(u, (h, w), mode="bilinear", align_corners=False)
    v_bbox = F.interpolate(v, (h, w), mode="bilinear", align_corners=False)
    uv = torch.zeros([2, h, w], dtype=torch.float32)
    for part_id in range(1, u_bbox.size(1)):
        uv[0][labels == part_id] = u_bbox[0, part_id][labels == part_id]
        uv[1][labels == part_id] = v_bbox[0, part_id][labels == part_id]
    return labels, uv


# ---- Leffa's DensePosePredictor.predict_iuv / predict_seg and the visualiser it uses

def predict_iuv(image, results, boxes_xywh):
    labels, uv = results[0]
    img_i = labels[None, ...]
    img_uv = (uv - uv.min()) / (uv.max() - uv.min())
    img_uv *= 255
    img_iuv = torch.cat([img_i, img_uv], dim=0).permute(1, 2, 0).cpu().numpy()
    x1, y1, w, h = [int(x) for x in boxes_xywh[0].cpu().numpy().tolist()]
    image_iuv = np.zeros(image.shape, dtype=image.dtype)
    image_iuv[y1:y1 + h, x1:x1 + w, :] = img_iuv
    return image_iuv[:, :, [0, 2, 1]]


def matrix_visualize(image_bgr, mask, matrix, bbox_xywh, val_scale, alpha=1.0):
    """Leffa's MatrixVisualizer.visualize with inplace=False (its target is the image, cleared)."""
    image_target_bgr = image_bgr
    image_target_bgr *= 0
    x, y, w, h = [int(v) for v in bbox_xywh]
    if w <= 0 or h <= 0:
        return image_bgr
    if (w != mask.shape[1]) or (h != mask.shape[0]):
        mask = cv2.resize(mask, (w, h), cv2.INTER_NEAREST)
    if (w != matrix.shape[1]) or (h != matrix.shape[0]):
        matrix = cv2.resize(matrix, (w, h), cv2.INTER_LINEAR)
    mask_bg = np.tile((mask == 0)[:, :, np.newaxis], [1, 1, 3])
    matrix_scaled = matrix.astype(np.float32) * val_scale
    matrix_scaled_8u = matrix_scaled.clip(0, 255).astype(np.uint8)
    matrix_vis = cv2.applyColorMap(matrix_scaled_8u, cv2.COLORMAP_PARULA)
    matrix_vis[mask_bg] = image_target_bgr[y:y + h, x:x + w, :][mask_bg]
    image_target_bgr[y:y + h, x:x + w, :] = image_target_bgr[y:y + h, x:x + w, :] * (1.0 - alpha) + matrix_vis * alpha
    return image_target_bgr.astype(np.uint8)


def predict_seg(image, results, boxes_xywh):
    image_seg = np.zeros(image.shape, dtype=image.dtype)
    for i, (labels, uv) in enumerate(results):
        iuv = torch.cat((labels[None].type(torch.float32), uv * 255.0)).type(torch.uint8).numpy()
        segm = iuv[0]
        mask = np.zeros(segm.shape, dtype=np.uint8)
        mask[segm > 0] = 1
        matrix_visualize(image_seg, mask, iuv[0], boxes_xywh[i].numpy(), 255.0 / 24)
    return image_seg


def init_head(modules, g):
    for m in modules:
        for name, t in m.state_dict().items():
            with torch.no_grad():
                t.copy_(torch.randn(t.shape, generator=g) * (0.1 if name.endswith("bias") else math.sqrt(1.0 / t[0].numel())))


def narrow_model(g):
    c, fc, hidden = 16, 32, 16
    backbone = FPN(ResNet(**SMALL), [16, 32, 64, 128], out_channels=c).eval()
    randomize(backbone, g)
    rpn, box_head, box_predictor = RPNHead(c), BoxHead(c, 7, fc), BoxPredictor(fc)
    dp_head, dp_predictor = V1ConvXHead(c, hidden), ChartPredictor(hidden)
    init_head((rpn, box_head, box_predictor, dp_head, dp_predictor), g)
    return backbone, rpn, box_head, box_predictor, dp_head, dp_predictor


def state_dict(backbone, rpn, box_head, box_predictor, dp_head, dp_predictor):
    parts = [("backbone", backbone), ("proposal_generator.rpn_head", rpn), ("roi_heads.box_head", box_head),
             ("roi_heads.box_predictor", box_predictor), ("roi_heads.densepose_head", dp_head),
             ("roi_heads.densepose_predictor", dp_predictor)]
    return {f"{p}.{k}": v for p, m in parts for k, v in m.state_dict().items()}


def scale_to_features(model, xn):
    """Weights scaled to the features' size of the (normalised, padded) image xn, so that deltas move boxes by
    about their size."""
    backbone, rpn, box_head, box_predictor, dp_head, _ = model
    s = max(v.std().item() for v in backbone(xn).values())
    rpn.conv.weight /= s
    rpn.anchor_deltas.weight *= 0.3
    box_head.fc1.weight /= s
    dp_head.body_conv_fcn1.weight /= s
    box_predictor.bbox_pred.weight *= 0.3


SHORT, MAX = 96, 160  # the narrow test's MIN_SIZE_TEST / MAX_SIZE_TEST (the released config: 800, 1333)


def run_predictor(model, image, short=SHORT, max_size=MAX):
    """DefaultPredictor + the chart head on one HWC uint8 image (Leffa passes its RGB arrays as they are): the
    resize, detection, densepose head, detector_postprocess and chart results of the kept people."""
    backbone, rpn, box_head, box_predictor, dp_head, dp_predictor = model
    H, W = image.shape[:2]
    h, w = shortest_edge_size(H, W, short, max_size)
    resized = pil_resize(image, h, w)
    x = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))[None]
    with torch.no_grad():
        det, levels = detect(backbone, rpn, box_head, box_predictor, x)
        boxes = det["det_boxes"]
        pooled, _ = level_pool(levels[:4], boxes, 28, 2, False)
        coarse, fine, u, v = dp_predictor(dp_head(pooled))
        # detector_postprocess: to the input image, clipped, non-empty kept.
        out_boxes = boxes.clone()
        out_boxes[:, 0::2] *= W / w
        out_boxes[:, 1::2] *= H / h
        out_boxes[:, 0].clamp_(min=0, max=W)
        out_boxes[:, 1].clamp_(min=0, max=H)
        out_boxes[:, 2].clamp_(min=0, max=W)
        out_boxes[:, 3].clamp_(min=0, max=H)
        ok = ((out_boxes[:, 2] - out_boxes[:, 0]) > 0) & ((out_boxes[:, 3] - out_boxes[:, 1]) > 0)
        idx = torch.nonzero(ok)[:, 0]
        results = [chart_result(coarse[[i]], fine[[i]], u[[i]], v[[i]], out_boxes[i]) for i in idx.tolist()]
    boxes_xywh = out_boxes[idx].clone()
    boxes_xywh[:, 2] -= boxes_xywh[:, 0]
    boxes_xywh[:, 3] -= boxes_xywh[:, 1]
    return dict(resized=resized, det=det, boxes=boxes, pooled=pooled, charts=(coarse, fine, u, v), out_boxes=out_boxes,
                idx=idx, results=results, boxes_xywh=boxes_xywh)


def pipeline_case(out_dir, g):
    backbone, rpn, box_head, box_predictor, dp_head, dp_predictor = model = narrow_model(g)
    H, W = 75, 57
    image = (torch.rand(H, W, 3, generator=g) * 256).clamp(max=255).to(torch.uint8).numpy()
    h, w = shortest_edge_size(H, W, SHORT, MAX)
    x = torch.as_tensor(pil_resize(image, h, w).astype("float32").transpose(2, 0, 1))[None]
    with torch.no_grad():
        xn = F.pad(x - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), (0, (32 - w % 32) % 32, 0, (32 - h % 32) % 32))
        scale_to_features(model, xn)
        box_predictor.cls_score.weight *= 10
        box_predictor.cls_score.bias.copy_(torch.tensor([-0.1, 0.0]))  # 11 people, no score within 5e-3 of 0.5
    r = run_predictor(model, image)
    resized, det, boxes, pooled, out_boxes, idx, results, boxes_xywh = (
        r[k] for k in ("resized", "det", "boxes", "pooled", "out_boxes", "idx", "results", "boxes_xywh"))
    coarse, fine, u, v = r["charts"]
    n = len(results)
    assert 2 <= n <= 12, n
    iuv = predict_iuv(image, results, boxes_xywh)
    seg = predict_seg(image, results, boxes_xywh)
    assert (seg > 0).any() and (iuv[:, :, 0] > 0).any()
    t = {f"weights/{k}": v for k, v in state_dict(*model).items()}
    t["input"] = torch.from_numpy(image.astype(np.int32))
    t["resized"] = torch.from_numpy(resized.astype(np.int32))
    t["out/det_boxes"] = boxes
    t["out/det_scores"] = det["det_scores"]
    t["out/dp_pooled"] = pooled
    t["out/dp_head"] = dp_head(pooled).detach()
    for name, val in (("coarse_segm", coarse), ("fine_segm", fine), ("u", u), ("v", v)):
        t[f"out/{name}"] = val
    t["out/image_boxes"] = out_boxes[idx]
    t["out/kept"] = idx.int()
    for k, (labels, uv) in enumerate(results):
        t[f"out/labels{k}"] = labels.int()
        t[f"out/uv{k}"] = uv
    t["out/predict_iuv"] = torch.from_numpy(iuv.astype(np.int32))
    t["out/predict_seg"] = torch.from_numpy(seg.astype(np.int32))
    write_safetensors(f"{out_dir}/densepose_chart_pipeline.safetensors", t)

    # The same weights as detectron2's model zoo pickles them: numpy arrays under 'model'; and the variants the
    # loader accepts (bare dict, old buffers beside the weights) or refuses (Caffe2 blobs, a missing key, other
    # pixel statistics, a confidence predictor's extra keys).
    weights = {k: v.numpy() for k, v in state_dict(*model).items()}
    extras = {"pixel_mean": np.array(PIXEL_MEAN, dtype=np.float32).reshape(3, 1, 1), "pixel_std": np.ones((3, 1, 1), np.float32),
              "proposal_generator.anchor_generator.cell_anchors.0": np.zeros((3, 4), np.float32)}
    files = {
        "densepose_chart_model.pkl": {"model": weights, "__author__": "Detectron2 Model Zoo"},
        "densepose_chart_bare.pkl": weights,
        "densepose_chart_buffers.pkl": {"model": {**weights, **extras}, "__author__": "Detectron2 Model Zoo"},
        "densepose_chart_blobs.pkl": {"blobs": {"conv1_w": weights["backbone.bottom_up.stem.conv1.weight"]}},
        "densepose_chart_missing.pkl": {"model": {k: v for k, v in weights.items() if k != "roi_heads.densepose_predictor.u_lowres.bias"}},
        "densepose_chart_pixel.pkl": {"model": {**weights, **extras, "pixel_std": np.full((3, 1, 1), 57.0, np.float32)}},
        "densepose_chart_confidence.pkl": {"model": {**weights, "roi_heads.densepose_predictor.sigma_2_lowres.weight": np.zeros((16, 25, 4, 4), np.float32)}},
    }
    for name, obj in files.items():
        with open(f"{out_dir}/{name}", "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return f"{out_dir}/densepose_chart_pipeline.safetensors", f"{n} people, {len(files)} pickles"


def resize_case(out_dir, g):
    """Pillow's bilinear resize: enlarging, shrinking (the widened filter), one side only, the max-size cap."""
    t = {}
    for k, (H, W, short, mx) in enumerate([(75, 57, 96, 160), (50, 40, 23, 100), (31, 90, 31, 60), (64, 48, 47, 1000), (33, 33, 800, 1333), (1024, 768, 800, 1333)]):
        img = (torch.rand(H, W, 3, generator=g) * 256).clamp(max=255).to(torch.uint8).numpy()
        h, w = shortest_edge_size(H, W, short, mx)
        t[f"in{k}"] = torch.from_numpy(img.astype(np.int32))
        t[f"out{k}"] = torch.from_numpy(pil_resize(img, h, w).astype(np.int32))
        t[f"args{k}"] = torch.tensor([H, W, short, mx, h, w], dtype=torch.int32)
    write_safetensors(f"{out_dir}/densepose_chart_resize.safetensors", t)
    return f"{out_dir}/densepose_chart_resize.safetensors", len(t) // 3


def keys_case(out_dir):
    """The full-size densepose_rcnn_R_50_FPN_s1x key set and shapes (what model_final_162be9.pkl holds)."""
    backbone = FPN(ResNet(), [256, 512, 1024, 2048])
    parts = (backbone, RPNHead(256), BoxHead(256, 7, 1024), BoxPredictor(1024), V1ConvXHead(256), ChartPredictor(512))
    sd = state_dict(*parts)
    with open(f"{out_dir}/densepose_chart_s1x_keys.txt", "w") as f:
        for k, v in sd.items():
            f.write(f"{k} {','.join(map(str, v.shape))}\n")
    return f"{out_dir}/densepose_chart_s1x_keys.txt", len(sd)


def build(out_dir):
    g = torch.Generator().manual_seed(19)
    return [pipeline_case(out_dir, g), resize_case(out_dir, g), keys_case(out_dir)]

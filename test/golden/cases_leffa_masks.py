"""Leffa's agnostic masks (leffa_utils/utils.py get_agnostic_mask_hd / get_agnostic_mask_dc), re-stated here with
the same Pillow, OpenCV and numpy calls, on synthetic parse maps (Leffa's 19 labels) and OpenPose keypoints: odd
sizes on both sides of Leffa's height branches (256, 512), every garment category, hd and dc, missing points.
Also the drawing primitives on their own (Pillow lines with curve joints, ellipse outlines, OpenCV's refine_mask
on random blobs), so a mismatch points at its step."""
import json

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from golden import write_safetensors

BODY = {"head": 11, "hair": 2, "neck": 18, "upper": 4, "dress": 7, "skirt": 5, "pants": 6, "l_arm": 14, "r_arm": 15,
        "l_leg": 12, "r_leg": 13, "l_shoe": 9, "r_shoe": 10, "hat": 1, "glasses": 3, "bag": 16, "scarf": 17, "belt": 8}


# ---------------------------------------------------------------- Leffa's functions, re-stated

def _labels(p, *ls):
    return np.isin(p, ls).astype(np.float32)


def _hole_fill(img):
    img = np.pad(img[1:-1, 1:-1], 1, mode="constant", constant_values=0)
    before = img.copy()
    cv2.floodFill(img, np.zeros((img.shape[0] + 2, img.shape[1] + 2), np.uint8), (0, 0), 255)
    return cv2.bitwise_or(before, cv2.bitwise_not(img))


def _refine(mask):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_TC89_L1)
    areas = [abs(cv2.contourArea(c, True)) for c in contours]
    out = np.zeros_like(mask).astype(np.uint8)
    if areas:
        cv2.drawContours(out, contours, areas.index(max(areas)), color=255, thickness=-1)
    return out


def _missing(p):
    return p[0] <= 1.0 and p[1] <= 1.0


def mask_hd(parse, pose, category, model_type):
    h, w = parse.shape
    p = np.array(Image.fromarray(parse).resize((w, h), Image.NEAREST))
    arm_width = {"hd": 60, "dc": 45}[model_type]
    head = _labels(p, 1, 3, 11)
    fixed = _labels(p, 9, 10, 1, 3, 16)
    changeable = _labels(p, 0)
    arms_l, arms_r = _labels(p, 14), _labels(p, 15)
    if category == "dresses":
        garment = _labels(p, 7, 4, 5, 6)
    elif category == "upper_body":
        garment = _labels(p, 4, 7)
        fixed += _labels(p, 5, 6)
    else:
        garment = _labels(p, 6, 12, 13, 5)
        fixed += _labels(p, 4, 14, 15)
    changeable += np.logical_and(p, np.logical_not(fixed))

    pose = np.array(pose).reshape((-1, 2))
    drawn_l, drawn_r = Image.new("L", (w, h)), Image.new("L", (w, h))
    if category in ("dresses", "upper_body"):
        at = lambda i: np.multiply(tuple(pose[i][:2]), h / 512.0)
        lw = int(arm_width / 512 * h)
        half = lw // 2

        def side(img, parsed, shoulder, elbow, wrist, wrist_first):
            if _missing(wrist):
                return parsed
            wrist = elbow + 1.2 * (wrist - elbow)
            chain = (wrist, elbow, shoulder) if wrist_first else (shoulder, elbow, wrist)
            d = ImageDraw.Draw(img)
            d.line(np.concatenate(chain).astype(np.uint16).tolist(), "white", lw, "curve")
            d.arc([shoulder[0] - half, shoulder[1] - half, shoulder[0] + half, shoulder[1] + half], 0, 360, "white", half)
            return img

        drawn_r = side(drawn_r, arms_r, at(2), at(3), at(4), False)
        drawn_l = side(drawn_l, arms_l, at(5), at(6), at(7), True)
        fixed += np.logical_and(np.logical_not(drawn_l), arms_l) + np.logical_and(np.logical_not(drawn_r), arms_r)

    fixed = np.logical_or(cv2.erode(fixed, np.ones((5, 5), np.uint16), iterations=1), head)
    garment = cv2.dilate(garment, np.ones((10, 10), np.uint16), iterations=5)
    if category in ("dresses", "upper_body"):
        neck = cv2.dilate(_labels(p, 18), np.ones((5, 5), np.uint16), iterations=1)
        garment = np.logical_or(garment, np.logical_and(neck, np.logical_not(head)))
        arms = cv2.dilate(np.logical_or(drawn_l, drawn_r).astype("float32"), np.ones((5, 5), np.uint16), iterations=4)
        garment = garment + np.logical_or(garment, arms)
    keep = np.logical_or(np.logical_and(changeable, np.logical_not(garment)), fixed)
    img = np.where(1 - keep, 255, 0).astype(np.uint8)
    return _refine(_hole_fill(img))


def mask_dc(parse, pose, category):
    h, w = parse.shape
    p = parse
    pose = np.array(pose).reshape((-1, 2))
    head = _labels(p, 1, 2, 3, 11, 18)
    fixed = _labels(p, 2, 9, 10, 1, 3, 17, 16)
    changeable = _labels(p, 0)
    arms = _labels(p, 14, 15)
    if category == "dresses":
        garment = _labels(p, 7, 12, 13)
    elif category == "upper_body":
        garment = _labels(p, 4)
        fixed += _labels(p, 5, 6)
    else:
        garment = _labels(p, 6, 12, 13)
        fixed += _labels(p, 4, 14, 15)
    changeable += np.logical_and(p, np.logical_not(fixed))
    head2 = head.copy()
    scale = h / 512.0
    if category in ("dresses", "upper_body"):
        at = lambda i: tuple(np.multiply(pose[i, :2], scale))
        sr, sl, er, el, wr, wl = at(2), at(5), at(3), at(6), at(4), at(7)
        if _missing(wr):
            chain = [wl, el, sl, sr] if _missing(er) else [wl, el, sl, sr, er]
        elif _missing(wl):
            chain = [sl, sr, er, wr] if _missing(el) else [el, sl, sr, er, wr]
        else:
            chain = [wl, el, sl, sr, er, wr]
        drawn = Image.new("L", (w, h))
        ImageDraw.Draw(drawn).line(chain, "white", 30, "curve")
        if h > 512:
            drawn = cv2.dilate(np.float32(drawn), np.ones((10, 10), np.uint16), iterations=5)
        elif h > 256:
            drawn = cv2.dilate(np.float32(drawn), np.ones((5, 5), np.uint16), iterations=5)
        hands = np.logical_and(np.logical_not(drawn), arms)
        garment += drawn
        fixed += hands
        xs = [pose[2, 0] * scale, pose[5, 0] * scale]
        ys = [pose[2, 1] * scale, pose[5, 1] * scale]
        m, c = np.linalg.lstsq(np.vstack([xs, np.ones(2)]).T, ys, rcond=None)[0]
        for col in range(w):
            head2[int(col * m + c - 20 * scale):, col] = 0
    fixed = np.logical_or(fixed, head2.astype(np.uint16))
    garment += np.logical_or(garment, np.logical_and(head.astype(np.uint16), np.logical_not(head2.astype(np.uint16))))
    k = 20 if h > 512 else 10 if h > 256 else 5
    garment = cv2.dilate(garment, np.ones((k, k), np.uint16), iterations=5)
    keep = np.logical_or(np.logical_and(changeable, np.logical_not(garment)), fixed)
    img = np.where(1 - keep, 255, 0).astype(np.uint8)
    return _hole_fill(img)


# ---------------------------------------------------------------- synthetic people

def _ellipse(lab, cx, cy, rx, ry, value):
    h, w = lab.shape
    yy, xx = np.mgrid[0:h, 0:w]
    lab[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = value


def _segment(lab, a, b, r, value):
    h, w = lab.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
    lab[(xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2 <= r * r] = value


def person(h, w, rng, garment, extras=()):
    """A standing figure in Leffa's labels; returns the map and its 18 keypoints in the 512-high frame."""
    lab = np.zeros((h, w), np.uint8)
    s = h / 512.0
    cx = w / 2 + rng.uniform(-0.05, 0.05) * w
    u = lambda v: v * s
    # keypoints in image pixels first
    nose = (cx, u(70))
    neck = (cx, u(120))
    sh_r, sh_l = (cx - u(55), u(128 + rng.uniform(-6, 6))), (cx + u(55), u(128 + rng.uniform(-6, 6)))
    el_r = (sh_r[0] - u(rng.uniform(5, 30)), u(200 + rng.uniform(-10, 10)))
    el_l = (sh_l[0] + u(rng.uniform(5, 30)), u(200 + rng.uniform(-10, 10)))
    wr_r = (el_r[0] + u(rng.uniform(-20, 25)), u(265 + rng.uniform(-15, 15)))
    wr_l = (el_l[0] + u(rng.uniform(-25, 20)), u(265 + rng.uniform(-15, 15)))
    if "raised" in extras:
        # the right hand above the head (Leffa's 1.2x wrist extension leaves the image: uint16 wrap-around), the
        # left one out at the right edge
        el_r, wr_r = (el_r[0], u(100.3)), (el_r[0] + u(9.7), u(4.6))
        el_l, wr_l = (w - u(40.2), u(180.7)), (w - u(2.3), u(190.1))
    if "wild" in extras:
        # arms anywhere: crossed, raised, behind the body, out of the image
        el_r = (rng.uniform(-0.1, 0.8) * w, rng.uniform(0.05, 0.7) * h)
        el_l = (rng.uniform(0.2, 1.1) * w, rng.uniform(0.05, 0.7) * h)
        wr_r = (rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.05, 0.8) * h)
        wr_l = (rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.05, 0.8) * h)
    hip_r, hip_l = (cx - u(32), u(275)), (cx + u(32), u(275))
    kn_r, kn_l = (cx - u(36), u(375)), (cx + u(36), u(375))
    an_r, an_l = (cx - u(38), u(470)), (cx + u(38), u(470))
    # body parts, back to front
    for a, b in ((hip_r, kn_r), (kn_r, an_r)):
        _segment(lab, a, b, u(19), BODY["r_leg"])
    for a, b in ((hip_l, kn_l), (kn_l, an_l)):
        _segment(lab, a, b, u(19), BODY["l_leg"])
    _ellipse(lab, an_r[0], an_r[1] + u(12), u(20), u(10), BODY["r_shoe"])
    _ellipse(lab, an_l[0], an_l[1] + u(12), u(20), u(10), BODY["l_shoe"])
    if garment == "pants":
        for a, b in ((hip_r, kn_r), (kn_r, an_r)):
            _segment(lab, a, b, u(21), BODY["pants"])
        for a, b in ((hip_l, kn_l), (kn_l, an_l)):
            _segment(lab, a, b, u(21), BODY["pants"])
    elif garment == "skirt":
        _segment(lab, (cx, u(270)), (cx, u(350)), u(50), BODY["skirt"])
    _segment(lab, neck, (cx, u(130)), u(16), BODY["neck"])
    top = BODY["dress"] if garment == "dress" else BODY["upper"]
    _segment(lab, (cx, u(150)), (cx, u(260 if garment != "dress" else 360)), u(52), top)
    for (a, b, c), v in (((sh_r, el_r, wr_r), BODY["r_arm"]), ((sh_l, el_l, wr_l), BODY["l_arm"])):
        _segment(lab, a, b, u(14), v)
        _segment(lab, b, c, u(12), v)
    _ellipse(lab, nose[0], nose[1], u(34), u(44), BODY["head"])
    _ellipse(lab, nose[0], nose[1] - u(30), u(36), u(20), BODY["hair"])
    if "hat" in extras:
        _ellipse(lab, nose[0], nose[1] - u(45), u(40), u(14), BODY["hat"])
    if "glasses" in extras:
        _ellipse(lab, nose[0], nose[1] - u(5), u(26), u(6), BODY["glasses"])
    if "bag" in extras:
        _ellipse(lab, wr_l[0] + u(10), wr_l[1] + u(20), u(22), u(26), BODY["bag"])
    if "scarf" in extras:
        _segment(lab, (cx - u(25), u(135)), (cx + u(25), u(135)), u(9), BODY["scarf"])
    if "belt" in extras:
        _segment(lab, (cx - u(45), u(262)), (cx + u(45), u(262)), u(5), BODY["belt"])
    # a stray blob of clothing (a second contour for refine_mask)
    if "blob" in extras:
        _ellipse(lab, u(30), u(480), u(12), u(9), BODY["upper"])
    pts = [nose, neck, sh_r, el_r, wr_r, sh_l, el_l, wr_l, hip_r, kn_r, an_r, hip_l, kn_l, an_l,
           (nose[0] - u(12), nose[1] - u(10)), (nose[0] + u(12), nose[1] - u(10)), (nose[0] - u(25), nose[1]), (nose[0] + u(25), nose[1])]
    # to the 512-high frame Leffa's OpenPose uses, kept exactly representable in float32
    kp = np.array([[x / s, y / s] for x, y in pts], np.float32)
    return lab, kp


def build(out_dir):
    rng = np.random.default_rng(7)
    tensors = {}
    cases = []
    specs = [
        # name, h, w, garment drawn, extras, missing points, (category, model type) list
        ("std", 512, 384, "pants", ("hat", "bag"), (), [("upper_body", "hd"), ("lower_body", "hd"), ("dresses", "hd"), ("upper_body", "dc"), ("lower_body", "dc"), ("dresses", "dc")]),
        ("odd", 203, 157, "skirt", ("glasses", "scarf", "blob"), (), [("upper_body", "hd"), ("lower_body", "dc"), ("dresses", "hd"), ("upper_body", "dc"), ("dresses", "dc")]),
        ("mid", 301, 227, "dress", ("belt", "blob"), (), [("dresses", "hd"), ("dresses", "dc"), ("upper_body", "hd"), ("lower_body", "hd"), ("upper_body", "dc")]),
        ("big", 611, 459, "pants", ("scarf",), (), [("upper_body", "hd"), ("upper_body", "dc"), ("lower_body", "dc")]),
        ("nowrist_r", 512, 384, "pants", (), (4,), [("upper_body", "hd"), ("upper_body", "dc"), ("dresses", "dc")]),
        ("noarm_r", 333, 250, "skirt", (), (3, 4), [("upper_body", "hd"), ("upper_body", "dc")]),
        ("noarm_l", 287, 211, "pants", ("bag",), (6, 7), [("dresses", "hd"), ("upper_body", "dc")]),
        ("nowrist_l", 199, 151, "dress", (), (7,), [("dresses", "dc"), ("upper_body", "hd")]),
        ("nowrists", 512, 384, "pants", (), (4, 7), [("upper_body", "hd"), ("upper_body", "dc")]),
        ("raised", 512, 384, "pants", ("raised",), (), [("upper_body", "hd"), ("dresses", "hd"), ("upper_body", "dc")]),
        ("raised_odd", 401, 263, "skirt", ("raised",), (), [("upper_body", "hd"), ("upper_body", "dc")]),
        ("noshoulder", 256, 193, "pants", (), (2,), [("upper_body", "hd"), ("upper_body", "dc")]),
    ]
    # random people, poses and missing points, small sizes: many draws of the rasterisers
    garments = ["pants", "skirt", "dress"]
    extras_pool = ["hat", "glasses", "bag", "scarf", "belt", "blob"]
    combos = [(c, m) for c in ("upper_body", "lower_body", "dresses") for m in ("hd", "dc")]
    for j in range(24):
        h = int(rng.integers(100, 280))
        w = int(rng.integers(int(h * 0.6), int(h * 0.9)))
        extras = ("wild",) + tuple(e for e in extras_pool if rng.random() < 0.3)
        missing = tuple(int(i) for i in rng.choice([2, 3, 4, 5, 6, 7], size=int(rng.integers(0, 3)), replace=False))
        specs.append((f"random{j}", h, w, garments[j % 3], extras, missing, [combos[j % 6], combos[(j * 5 + 1) % 6]]))
    for name, h, w, garment, extras, missing, variants in specs:
        lab, kp = person(h, w, rng, garment, extras)
        for i in missing:
            kp[i] = 0
        for category, model_type in variants:
            case = f"{name}_{category}_{model_type}"
            pose = kp.astype(np.float64).tolist()
            mask = mask_hd(lab, pose, category, model_type) if model_type == "hd" else mask_dc(lab, pose, category)
            tensors[f"{case}.parsing"] = torch.from_numpy(lab.astype(np.int32))
            tensors[f"{case}.keypoints"] = torch.from_numpy(kp)
            tensors[f"{case}.mask"] = torch.from_numpy(mask.astype(np.int32))
            cases.append({"name": case, "height": h, "width": w, "category": category, "modelType": model_type,
                          "missing": list(missing)})

    # drawing primitives on their own
    prims = []
    for j, (h, w, width, n) in enumerate([(97, 83, 3, 3), (120, 101, 11, 4), (150, 140, 30, 3), (211, 173, 45, 5), (256, 192, 60, 3), (131, 117, 23, 6)]):
        pts = [(float(rng.uniform(-10, w + 10)), float(rng.uniform(-10, h + 10))) for _ in range(n)]
        if j % 2 == 0:
            pts = [(int(x) if x > 0 else 0, int(y) if y > 0 else 0) for x, y in pts]
        img = Image.new("L", (w, h))
        ImageDraw.Draw(img).line(pts, "white", width, "curve")
        key = f"line{j}"
        tensors[f"{key}.out"] = torch.from_numpy(np.array(img).astype(np.int32))
        prims.append({"name": key, "kind": "line", "height": h, "width": w, "lineWidth": width, "points": pts})
    for j in range(6):
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        x0, y0 = float(rng.uniform(-5, w / 2)), float(rng.uniform(-5, h / 2))
        r = int(rng.integers(3, 30))
        box = [x0, y0, x0 + 2 * r + rng.uniform(-3, 3), y0 + 2 * r + rng.uniform(-3, 3)]
        img = Image.new("L", (w, h))
        ImageDraw.Draw(img).arc(box, 0, 360, "white", max(1, r // 2))
        key = f"arc{j}"
        tensors[f"{key}.out"] = torch.from_numpy(np.array(img).astype(np.int32))
        prims.append({"name": key, "kind": "arc", "height": h, "width": w, "box": box, "lineWidth": max(1, r // 2)})
    for j in range(8):
        h, w = int(rng.integers(30, 120)), int(rng.integers(30, 120))
        blob = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            _ellipse(blob, rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, w / 3), rng.uniform(2, h / 3), 255)
        blob[rng.random((h, w)) < 0.02] = 255  # single pixels and thin bits
        blob = _hole_fill(blob)
        key = f"refine{j}"
        tensors[f"{key}.in"] = torch.from_numpy(blob.astype(np.int32))
        tensors[f"{key}.out"] = torch.from_numpy(_refine(blob).astype(np.int32))
        prims.append({"name": key, "kind": "refine", "height": h, "width": w})
    path = f"{out_dir}/leffa_masks.safetensors"
    write_safetensors(path, tensors, {"cases": json.dumps(cases), "primitives": json.dumps(prims)})
    return [(path, len(cases) + len(prims))]

"""Leffa's app.py around its models, for the released-checkpoint pipeline (packages/pipelines/src/released-leffa*.ts):

1. released_leffa.safetensors: app.py's image handling on random images, run by the code it calls (cv2 4.6 and
   Pillow): leffa_utils.utils.resize_and_center (cv2 INTER_CUBIC, upscaling and downscaling), Image.resize's
   default bicubic filter (the 384x512 parser input, the mask back to the model size), LeffaTransform's tensors
   for try-on and pose transfer (transcribed from leffa/transform.py and diffusers' VaeImageProcessor:
   pil_to_numpy, normalize, binarize, convert('L')), and do_repaint (ImageFilter.GaussianBlur, the blend);
2. released_leffa/: a checkpoint folder with the released layout (virtual_tryon.pth, virtual_tryon_dc.pth,
   pose_transfer.pth, the two diffusers folders' config files, openpose/body_pose_model.pth,
   humanparsing/parsing_atr.onnx + parsing_lip.onnx, densepose/model_final_162be9.pkl) holding random-weight
   models at the small shapes of cases_official_weights.py, cases_onnx.py and cases_densepose_chart.py, in the
   formats of the released files (torch.save state dicts, torch.onnx.export graphs, a detectron2 pickle), and
   app.py's preprocessing on that folder's models end to end: pose transfer, try-on on a synthetic person and on
   a real photo (the astronaut JPEG of packages/pipelines/test/fixtures/, opened with PIL as app.py does).
"""
import json
import os
import pickle
import shutil

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter

from cases_densepose_chart import PIXEL_MEAN, narrow_model, predict_iuv, predict_seg, run_predictor, scale_to_features, state_dict
from cases_official_weights import LEFFA_SDXL_UNET, OPENPOSE, Leffa, randomize
from cases_leffa_masks import mask_hd
from cases_onnx import combine_official, export, random_ce2p
from cases_schp import parse_reference
from cases_openpose import BodyPose
from golden import write_safetensors


# ---------------------------------------------------------------- app.py's image handling (transcribed)

def resize_and_center(image, target_width, target_height):
    """leffa_utils.utils.resize_and_center, as released."""
    img = np.array(image)
    if img.shape[-1] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    elif len(img.shape) == 2 or img.shape[-1] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    original_height, original_width = img.shape[:2]
    scale = min(target_height / original_height, target_width / original_width)
    new_height = int(original_height * scale)
    new_width = int(original_width * scale)
    resized_img = cv2.resize(img, (new_width, new_height), interpolation=cv2.INTER_CUBIC)
    padded_img = np.ones((target_height, target_width, 3), dtype=np.uint8) * 255
    top = (target_height - new_height) // 2
    left = (target_width - new_width) // 2
    padded_img[top:top + new_height, left:left + new_width] = resized_img
    return Image.fromarray(padded_img)


def vae_preprocess(image):
    """VaeImageProcessor().preprocess on a PIL image at the target size: pil_to_numpy, to torch, 2x - 1."""
    arr = np.array(image).astype(np.float32) / 255.0
    t = torch.from_numpy(arr[None].transpose(0, 3, 1, 2))
    return 2.0 * t - 1.0


def mask_preprocess(mask):
    """VaeImageProcessor(do_normalize=False, do_binarize=True, do_convert_grayscale=True).preprocess, then
    LeffaTransform.prepare_mask (binarise again)."""
    arr = np.array(mask.convert("L")).astype(np.float32) / 255.0
    t = torch.from_numpy(arr[None, None])
    t[t < 0.5] = 0
    t[t >= 0.5] = 1
    return t


def prepare_densepose(densepose):
    """LeffaTransform.prepare_densepose (pose transfer) on a PIL image."""
    d = np.array(densepose.convert("RGB"))[None].transpose(0, 3, 1, 2).astype(np.float32)
    d[:, 0:2] /= 255.0
    d[:, 2:3] /= 24.0
    return torch.from_numpy(d) * 2.0 - 1.0


def do_repaint(person, mask, result):
    """leffa.pipeline.do_repaint, as released."""
    _, h = result.size
    kernal_size = h // 100
    if kernal_size % 2 == 0:
        kernal_size += 1
    mask = mask.filter(ImageFilter.GaussianBlur(kernal_size))
    person_np = np.array(person)
    result_np = np.array(result)
    mask_np = np.array(mask) / 255
    repaint_result = person_np * (1 - mask_np) + result_np * mask_np
    return Image.fromarray(repaint_result.astype(np.uint8))


def smooth_image(g, h, w, channels=3):
    """A random image with structure at several scales (resampling filters differ on edges and gradients)."""
    coarse = torch.rand(1, channels, max(2, h // 6), max(2, w // 6), generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    fine = torch.rand(1, channels, h, w, generator=g)
    img = (0.7 * up + 0.3 * fine)[0].permute(1, 2, 0).numpy()
    return (img * 255).round().clip(0, 255).astype(np.uint8)


def blob_mask(g, h, w):
    """0/255 mask: a few random rectangles and a disc."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(3):
        y0, x0 = (int(v) for v in torch.randint(0, h - 4, (1,), generator=g).tolist() + torch.randint(0, w - 4, (1,), generator=g).tolist())
        m[y0:y0 + int(torch.randint(3, h // 2, (1,), generator=g)), x0:x0 + int(torch.randint(3, w // 2, (1,), generator=g))] = 255
    yy, xx = np.mgrid[:h, :w]
    m[(yy - h * 0.6) ** 2 + (xx - w * 0.4) ** 2 < (min(h, w) * 0.2) ** 2] = 255
    return m


def u8(a):
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.int64))


def transform_cases(g):
    t = {}
    H, W = 64, 48
    # resize_and_center of a wide, a tall (RGBA) and a grey image: downscaling and upscaling.
    person = smooth_image(g, 77, 53)
    garment = np.concatenate([smooth_image(g, 40, 90), np.full((40, 90, 1), 200, np.uint8)], axis=2)  # RGBA
    grey = smooth_image(g, 21, 17, channels=1)[:, :, 0]
    t["person"] = u8(person)
    t["garment_rgba"] = u8(garment)
    t["grey"] = u8(grey)
    src = resize_and_center(Image.fromarray(person), W, H)
    ref = resize_and_center(Image.fromarray(garment, "RGBA"), W, H)
    t["src"] = u8(np.array(src))
    t["ref"] = u8(np.array(ref))
    t["grey_up"] = u8(np.array(resize_and_center(Image.fromarray(grey), 40, 52)))
    # The 384x512 parser input (here half the model size): Image.resize's default filter, bicubic.
    t["src_small"] = u8(np.array(src.resize((W // 2, H // 2))))
    # The mask back to the model size (mode L, bicubic), then LeffaTransform.
    small_mask = blob_mask(g, H // 2, W // 2)
    t["mask_small"] = u8(small_mask)
    mask = Image.fromarray(small_mask).resize((W, H))
    t["mask"] = u8(np.array(mask))
    seg = smooth_image(g, H, W)
    iuv = np.stack([smooth_image(g, H, W, 1)[:, :, 0], smooth_image(g, H, W, 1)[:, :, 0],
                    torch.randint(0, 25, (H, W), generator=g).numpy().astype(np.uint8)], axis=2)
    t["seg"] = u8(seg)
    t["iuv"] = u8(iuv)
    t["tryon/src"] = vae_preprocess(src)
    t["tryon/ref"] = vae_preprocess(ref)
    t["tryon/mask"] = mask_preprocess(mask)
    t["tryon/densepose"] = vae_preprocess(Image.fromarray(seg))
    pose_mask = Image.fromarray(np.ones_like(np.array(src)) * 255)
    t["pose/mask"] = mask_preprocess(pose_mask)
    t["pose/densepose"] = prepare_densepose(Image.fromarray(iuv).resize((W, H), Image.NEAREST))
    # do_repaint at two heights (blur radius 1 and 3) with the mask as the pipeline hands it over (0/255 RGB).
    for h, w in ((64, 48), (310, 90)):
        p = smooth_image(g, h, w)
        r = smooth_image(g, h, w)
        m = blob_mask(g, h, w)
        t[f"repaint{h}/person"] = u8(p)
        t[f"repaint{h}/result"] = u8(r)
        t[f"repaint{h}/mask"] = u8(m)
        t[f"repaint{h}/out"] = u8(np.array(do_repaint(Image.fromarray(p), Image.fromarray(m).convert("RGB"), Image.fromarray(r))))
    # GaussianBlur alone on one channel, odd radii and a fractional one.
    m = blob_mask(g, 37, 29)
    t["blur/in"] = u8(m)
    for r in (1, 2, 5, 1.5):
        t[f"blur/r{r}"] = u8(np.array(Image.fromarray(m).filter(ImageFilter.GaussianBlur(r))))
    return t


# ---------------------------------------------------------------- the released folder at small shapes

# The small SD1.5 layout of cases_official_weights.LEFFA_UNET, as the diffusers folder's unet/config.json
# writes it (keys of stable-diffusion-inpainting's file; in_channels 9 as there: LeffaModel replaces conv_in).
SD15_UNET_JSON = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0.dev0", "act_fn": "silu", "attention_head_dim": 1,
    "block_out_channels": [8, 8], "center_input_sample": False, "cross_attention_dim": 4,
    "down_block_types": ["DownBlock2D", "DownBlock2D"], "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0,
    "in_channels": 9, "layers_per_block": 1, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 4,
    "out_channels": 4, "sample_size": 64, "up_block_types": ["UpBlock2D", "UpBlock2D"],
}
SDXL_UNET_JSON = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.21.0.dev0", "act_fn": "silu", "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 2, "attention_head_dim": [1, 2], "block_out_channels": [8, 8],
    "center_input_sample": False, "class_embed_type": None, "class_embeddings_concat": False, "conv_in_kernel": 3, "conv_out_kernel": 3,
    "cross_attention_dim": 4, "cross_attention_norm": None, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "encoder_hid_dim": None, "encoder_hid_dim_type": None, "flip_sin_to_cos": True,
    "freq_shift": 0, "in_channels": 9, "layers_per_block": 1, "mid_block_only_cross_attention": None, "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 4, "num_attention_heads": None,
    "num_class_embeds": None, "only_cross_attention": False, "out_channels": 4, "projection_class_embeddings_input_dim": 12,
    "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": False, "resnet_time_scale_shift": "default", "sample_size": 128,
    "time_cond_proj_dim": None, "time_embedding_act_fn": None, "time_embedding_dim": None, "time_embedding_type": "positional",
    "timestep_post_act": None, "transformer_layers_per_block": [1, 2], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "upcast_attention": None, "use_linear_projection": True,
}
assert LEFFA_SDXL_UNET["boc"] == SDXL_UNET_JSON["block_out_channels"] and LEFFA_SDXL_UNET["addition"] == 12


def vae_json(scaling):
    return {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu", "block_out_channels": [4, 4],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "in_channels": 3, "latent_channels": 4,
        "layers_per_block": 1, "norm_num_groups": 2, "out_channels": 3, "sample_size": 256, "scaling_factor": scaling,
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    }


# The scheduler configs as released (SD inpainting's PNDM one, SDXL inpainting's Euler one): Leffa reads them
# into a DDPMScheduler.
SD15_SCHEDULER_JSON = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None, "clip_sample": False,
}
SDXL_SCHEDULER_JSON = {
    "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.21.0.dev0", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False,
}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def folder_case(out_dir, g):
    root = f"{out_dir}/released_leffa"
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    # Leffa: LeffaModel's state dicts as torch.save writes them.
    torch.save(randomize(Leffa(), g).state_dict(), f"{root}/virtual_tryon.pth")
    torch.save(randomize(Leffa(), g).state_dict(), f"{root}/virtual_tryon_dc.pth")
    torch.save(randomize(Leffa(LEFFA_SDXL_UNET), g).state_dict(), f"{root}/pose_transfer.pth")
    for base, unet, scaling, scheduler in (("stable-diffusion-inpainting", SD15_UNET_JSON, 0.18215, SD15_SCHEDULER_JSON),
                                           ("stable-diffusion-xl-1.0-inpainting-0.1", SDXL_UNET_JSON, 0.13025, SDXL_SCHEDULER_JSON)):
        write_json(f"{root}/{base}/unet/config.json", unet)
        write_json(f"{root}/{base}/vae/config.json", vae_json(scaling))
        write_json(f"{root}/{base}/scheduler/scheduler_config.json", scheduler)
    # OpenPose: body_pose_model.pth's flat keys.
    body = randomize(BodyPose(**OPENPOSE), g)
    os.makedirs(f"{root}/openpose")
    torch.save({".".join(k.split(".")[1:]): v for k, v in body.state_dict().items()}, f"{root}/openpose/body_pose_model.pth")
    # Human parsing: SCHP exports at ATR's 18 and LIP's 20 classes (small input sizes).
    os.makedirs(f"{root}/humanparsing")
    # The try-on case's images: the ATR parser is tuned on the person below.
    H, W = 64, 48
    gi = torch.Generator().manual_seed(212)
    tryon_images = smooth_image(gi, 70, 50), smooth_image(gi, 44, 44)
    src_small = np.array(resize_and_center(Image.fromarray(tryon_images[0]), W, H).resize((W // 2, H // 2)))
    small = torch.from_numpy(src_small.astype(np.float32).transpose(2, 0, 1) / 255)
    parsers = {}
    for name, classes, size in (("atr", 18, (89, 81)), ("lip", 20, (85, 95))):
        net = random_ce2p(g, classes)
        with torch.no_grad():
            # As cases_onnx.py: no head biases and larger head weights give maps with several classes.
            net.fushion[3].bias.zero_()
            net.fushion[3].weight.mul_(3.0)
            if name == "atr":
                # Upper clothes (4) raised to win on about half of the person's pixels, so that the try-on mask has
                # a garment region and an outside.
                logits = parse_reference(net, small, size, flip_idx=())
                others = torch.cat([logits[:4], logits[5:]]).max(0).values
                net.fushion[3].bias[4] = (others - logits[4]).median() + 1e-3
        with open(f"{root}/humanparsing/parsing_{name}.onnx", "wb") as f:
            f.write(export(net, torch.zeros(1, 3, *size), 11))
        parsers[name] = (net, size)
    # DensePose: the narrow R-CNN as detectron2's model zoo pickles it, scaled as cases_densepose_chart.py does so
    # that boxes have about their size, and person logits raised by 2: app.py stops when no person is found, so
    # the random model must find people in any image (their scores still differ, so the best one is well defined).
    os.makedirs(f"{root}/densepose")
    model = narrow_model(g)
    with torch.no_grad():
        scale_to_features(model, torch.rand(1, 3, 128, 96, generator=g) * 255 - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1))
        model[3].cls_score.bias.copy_(torch.tensor([2.0, 0.0]))
    weights = {k: v.numpy() for k, v in state_dict(*model).items()}
    with open(f"{root}/densepose/model_final_162be9.pkl", "wb") as f:
        pickle.dump({"model": weights, "__author__": "Detectron2 Model Zoo"}, f, protocol=2)
    # A real photo as the person (app.py opens it with PIL: libjpeg's decoding), a smooth garment.
    astronaut = np.array(Image.open(ASTRONAUT).convert("RGB"))
    photo_garment = smooth_image(torch.Generator().manual_seed(213), 44, 44)
    return sum(len(files) for _, _, files in os.walk(root)), {
        **pose_transfer_case(model, g),
        **tryon_case(model, parsers, tryon_images),
        **tryon_case(model, parsers, (astronaut, photo_garment), "tryon_photo"),
    }


def pose_transfer_case(densepose, g):
    """app.py's pose-transfer preprocessing end to end at 64x48 with the folder's DensePose R-CNN (its released
    detector settings: 1000 proposals, 100 detections): resize_and_center of both images, the all-white mask,
    predict_iuv reversed to [U, V, I], LeffaTransform."""
    H, W = 64, 48
    target, source = smooth_image(g, 61, 45), smooth_image(g, 50, 70)
    src = np.array(resize_and_center(Image.fromarray(target), W, H))
    ref = resize_and_center(Image.fromarray(source), W, H)
    r = run_predictor(densepose, src, 96, 160)
    # The random model's best person is well defined (its score apart from the next, none near the threshold)
    # and has body parts.
    scores = r["det"]["det_scores"][r["idx"]].sort(descending=True).values
    assert len(scores) >= 2 and scores[0] - scores[1] > 1e-4 and (scores - 0.5).abs().min() > 1e-4, scores[:4]
    iuv = predict_iuv(src, r["results"], r["boxes_xywh"])[:, :, ::-1]
    assert (iuv[:, :, 2] > 0).any()
    mask = Image.fromarray(np.ones_like(src) * 255)
    return {
        "pose_e2e/target": u8(target),
        "pose_e2e/source": u8(source),
        "pose_e2e/src": vae_preprocess(Image.fromarray(src)),
        "pose_e2e/ref": vae_preprocess(ref),
        "pose_e2e/mask": mask_preprocess(mask),
        "pose_e2e/densepose_image": u8(iuv),
        "pose_e2e/densepose": prepare_densepose(Image.fromarray(np.ascontiguousarray(iuv)).resize((W, H), Image.NEAREST)),
    }


ASTRONAUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../packages/pipelines/test/fixtures/astronaut-192x256.jpg")


def tryon_case(densepose, parsers, images, key="tryon_e2e"):
    """app.py's viton_hd try-on preprocessing at 64x48 on the folder's models: the parsers (SCHP's extractor on the
    exported networks, then parsing_api's combination) on the 24x32 resize, get_agnostic_mask_hd with OpenPose's
    points all missing (the folder's random OpenPose finds no person; app.py would stop there, this library goes on
    without arm strokes), the mask back to 64x48, predict_seg reversed, LeffaTransform."""
    H, W = 64, 48
    person, garment = images
    src = resize_and_center(Image.fromarray(person), W, H)
    ref = resize_and_center(Image.fromarray(garment), W, H)
    small = torch.from_numpy(np.array(src.resize((W // 2, H // 2))).astype(np.float32).transpose(2, 0, 1) / 255)
    with torch.no_grad():
        labels = {name: parse_reference(net, small, size, flip_idx=()).argmax(0).numpy() for name, (net, size) in parsers.items()}
    parse, _ = combine_official(labels["atr"], labels["lip"])
    parse = np.asarray(parse, np.uint8)
    small_mask = np.array(mask_hd(parse, [[0.0, 0.0]] * 18, "upper_body", "hd"))
    mask = Image.fromarray(small_mask).resize((W, H))
    src_array = np.array(src)
    r = run_predictor(densepose, src_array, 96, 160)
    seg = predict_seg(src_array, r["results"], r["boxes_xywh"])[:, :, ::-1]
    return {
        f"{key}/person": u8(person),
        f"{key}/garment": u8(garment),
        f"{key}/src_small": u8(np.array(src.resize((W // 2, H // 2)))),
        f"{key}/parse": u8(parse),
        f"{key}/mask_small": u8(small_mask),
        f"{key}/src": vae_preprocess(src),
        f"{key}/ref": vae_preprocess(ref),
        f"{key}/mask": mask_preprocess(mask),
        f"{key}/densepose_image": u8(seg),
        f"{key}/densepose": vae_preprocess(Image.fromarray(np.ascontiguousarray(seg))),
    }


def build(out_dir):
    g = torch.Generator().manual_seed(211)
    t = transform_cases(g)
    files, pose = folder_case(out_dir, g)
    write_safetensors(f"{out_dir}/released_leffa.safetensors", {**t, **pose})
    return [(f"{out_dir}/released_leffa.safetensors", len(t) + len(pose)), (f"{out_dir}/released_leffa/", files)]

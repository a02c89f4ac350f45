"""Diffusion model parity: random weights under diffusers' key names, inputs and outputs of the VAE mid-block,
a ResnetBlock2D (with gradients), a Leffa Transformer2DModel with reference concat, a tiny VAE, a tiny
reference + generative UNet pair, the same pair in SDXL's layout at test size, and the full key sets and shapes of
the SD 1.5 UNet / VAE and of Leffa's SDXL model (pose_transfer.pth), built without weights."""
from contextlib import contextmanager

import torch

from golden import write_safetensors
from torch import nn

from torch_diffusion import VAE, ResnetBlock2D, Transformer2DModel, UNet, VaeMid

TINY_UNET = {"in": 12, "out": 4, "boc": [32, 64, 64], "layers": 1, "heads": 2, "groups": 8, "cross": 32,
             "down": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "up": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}


def randomize(module, gen, scale=0.2):
    """Non-trivial weights everywhere (norm affines included) so that no path hides behind an init of 0 or 1."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)


def save(out_dir, name, module, tensors, meta):
    state = {f"weights/{k}": v for k, v in module.state_dict().items()}
    state.update(tensors)
    path = f"{out_dir}/{name}.safetensors"
    write_safetensors(path, state, {k: str(v) for k, v in meta.items()})
    return path, len(tensors)


def leffa_unet_pair(config, gen):
    """A random Leffa reference (4 input channels) + generative UNet pair of `config` run on a 6x5 latent batch of
    2: returns the generative UNet, the tensors to save (inputs, outputs, reference weights, every reference
    feature) and the number of features."""
    unet_ref = UNet({**config, "in": 4})
    unet_gen = UNet(config)
    randomize(unet_ref, gen, 0.1)
    randomize(unet_gen, gen, 0.1)
    lat_ref = torch.randn(2, 4, 6, 5, generator=gen)
    lat_gen = torch.randn(2, 12, 6, 5, generator=gen)
    t = torch.tensor([10, 870])
    with torch.no_grad():
        ctx = {"mode": "collect", "features": [], "cursor": 0}
        out_ref = unet_ref(lat_ref, t, ctx)
        out_gen = unet_gen(lat_gen, t, {"mode": "consume", "features": ctx["features"], "cursor": 0})
    tens = {"input/latent_ref": lat_ref, "input/latent_gen": lat_gen, "input/t": t, "output/ref": out_ref, "output/gen": out_gen}
    tens.update({f"refweights/{k}": v for k, v in unet_ref.state_dict().items()})
    for i, f in enumerate(ctx["features"]):
        tens[f"output/feature{i}"] = f
    return unet_gen, tens, len(ctx["features"])


def build_blocks(out_dir):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(11)
    results = []

    # ResnetBlock2D with a timestep embedding and a channel change (conv_shortcut): outputs and all gradients.
    blk = ResnetBlock2D(16, 24, temb=20, groups=8, eps=1e-5)
    randomize(blk, gen)
    x = torch.randn(2, 16, 7, 5, generator=gen, requires_grad=True)
    temb = torch.randn(2, 20, generator=gen, requires_grad=True)
    y = blk(x, temb)
    gout = torch.randn(y.shape, generator=gen)
    y.backward(gout)
    grads = {f"grad/{k}": p.grad for k, p in blk.named_parameters()}
    results.append(save(out_dir, "diffusion_resnet", blk, {"input/x": x, "input/temb": temb, "output/y": y, "gout/y": gout,
                                                         "grad/input.x": x.grad, "grad/input.temb": temb.grad, **grads}, {"groups": 8, "eps": 1e-5}))

    # VAE mid-block (resnet, single-head spatial attention with group norm, resnet).
    mid = VaeMid(32, 8)
    randomize(mid, gen)
    x = torch.randn(2, 32, 5, 6, generator=gen)
    results.append(save(out_dir, "diffusion_vae_mid", mid, {"input/x": x, "output/y": mid(x)}, {"groups": 8}))

    # Leffa transformer: reference model collects norm1 states; the generative one attends over [own; ref].
    ref_tr = Transformer2DModel(32, 4, 24, 8)
    gen_tr = Transformer2DModel(32, 4, 24, 8)
    randomize(ref_tr, gen)
    randomize(gen_tr, gen)
    xr = torch.randn(2, 32, 6, 5, generator=gen)
    xg = torch.randn(2, 32, 6, 5, generator=gen, requires_grad=True)
    ctx = {"mode": "collect", "features": [], "cursor": 0}
    yr = ref_tr(xr, ctx)
    feats = ctx["features"]
    yg = gen_tr(xg, {"mode": "consume", "features": feats, "cursor": 0})
    gout = torch.randn(yg.shape, generator=gen)
    yg.backward(gout)
    tens = {"input/x_ref": xr, "input/x_gen": xg, "output/y_ref": yr, "output/feature0": feats[0], "output/y_gen": yg,
            "gout/y_gen": gout, "grad/input.x_gen": xg.grad}
    tens.update({f"refweights/{k}": v for k, v in ref_tr.state_dict().items()})
    tens.update({f"grad/{k}": p.grad for k, p in gen_tr.named_parameters() if p.grad is not None})
    results.append(save(out_dir, "diffusion_transformer", gen_tr, tens, {"heads": 4, "cross": 24, "groups": 8}))

    # Tiny VAE, encode (moments) and decode.
    vae = VAE([16, 32, 32, 32], 1, 8)
    randomize(vae, gen, 0.1)
    img = torch.rand(1, 3, 32, 24, generator=gen) * 2 - 1
    z = torch.randn(1, 4, 4, 3, generator=gen)
    with torch.no_grad():
        results.append(save(out_dir, "diffusion_vae", vae, {"input/image": img, "output/moments": vae.encode(img), "input/z": z,
                                                          "output/decoded": vae.decode(z)}, {"boc": [16, 32, 32, 32]}))

    # Tiny Leffa UNet pair (generative conv_in takes 12 channels); odd latent size 6x5 exercises explicit upsample sizes.
    unet_gen, tens, n_features = leffa_unet_pair(TINY_UNET, gen)
    results.append(save(out_dir, "diffusion_unet", unet_gen, tens, {"features": n_features}))

    # A decoder wider than its encoder (decoderBlockOutChannels), decoded from an odd 3x5 latent, with gradients.
    wide = VAE([8, 16], 1, 8, dec_boc=[16, 24])
    randomize(wide, gen, 0.1)
    zw = torch.randn(1, 4, 3, 5, generator=gen, requires_grad=True)
    decoded = wide.decode(zw)
    gout = torch.randn(decoded.shape, generator=gen)
    decoded.backward(gout)
    tens = {"input/z": zw.detach(), "output/decoded": decoded.detach(), "gout/decoded": gout, "grad/input.z": zw.grad}
    tens.update({f"grad/{k}": p.grad for k, p in wide.named_parameters() if p.grad is not None})
    results.append(save(out_dir, "diffusion_vae_wide_decoder", wide, tens, {"boc": [8, 16], "dec_boc": [16, 24]}))
    return results


SD15 = {"in": 12, "out": 4, "boc": [320, 640, 1280, 1280], "layers": 2, "heads": 8, "groups": 32, "cross": 768,
        "down": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], "up": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3}


def sd15_key_shapes():
    """Key -> shape of the SD1.5-size Leffa generative UNet and the SD VAE, built without initialising weights."""
    import json
    import torch.nn as nn

    saved = (nn.Conv2d.reset_parameters, nn.Linear.reset_parameters)
    nn.Conv2d.reset_parameters = lambda self: None
    nn.Linear.reset_parameters = lambda self: None
    try:
        unet = UNet(SD15)
        vae = VAE([128, 256, 512, 512], 2, 32)
    finally:
        nn.Conv2d.reset_parameters, nn.Linear.reset_parameters = saved
    shapes = {"unet": {k: list(v.shape) for k, v in unet.state_dict().items()}, "vae": {k: list(v.shape) for k, v in vae.state_dict().items()}}
    return json.dumps(shapes)


# SDXL's layout at test size; must match SDXL_TINY_UNET (packages/models/src/diffusion/unet.ts): per-block heads
# [1, 2, 4] (head widths 24 and 16) and transformer depths [1, 2, 3] (mid block 3, up blocks reversed), linear
# projections, an add_embedding (40 -> 128 -> 128) that is loaded and never used.
SDXL_TINY = {"in": 12, "out": 4, "boc": [32, 48, 64], "layers": 1, "heads": [1, 2, 4], "depth": [1, 2, 3], "linear": True,
             "addition": 40, "groups": 8, "cross": 32,
             "down": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
             "up": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]}

# stable-diffusion-xl-1.0-inpainting-0.1's UNet as Leffa builds it for pose_transfer.pth (generative conv_in: 12).
SDXL = {"in": 12, "out": 4, "boc": [320, 640, 1280], "layers": 2, "heads": [5, 10, 20], "depth": [1, 2, 10], "linear": True,
        "addition": 2816, "groups": 32, "cross": 2048,
        "down": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]}


def build_sdxl_tiny(out_dir):
    """The Leffa reference + generative UNet pair in SDXL's layout: reference features and both outputs."""
    gen = torch.Generator().manual_seed(29)
    unet_gen, tens, n_features = leffa_unet_pair(SDXL_TINY, gen)
    assert unet_gen.add_embedding.linear_1.weight.shape == (128, 40)
    # down 1: 1 x 2 blocks, down 2: 1 x 3, mid 3, up 0: 2 x 3, up 1: 2 x 2
    assert n_features == 2 + 3 + 3 + 6 + 4
    return save(out_dir, "diffusion_unet_sdxl", unet_gen, tens, {"features": n_features})


@contextmanager
def on_meta_device():
    """Builds modules on PyTorch's meta device (shapes, no storage): torch 1.13 has no `with torch.device(...)`, so
    the constructors of the parameterised layers get device='meta'."""
    classes = (nn.Linear, nn.Conv2d, nn.GroupNorm, nn.LayerNorm)
    saved = {c: c.__init__ for c in classes}

    def on_meta(init):
        def init_meta(self, *args, **kwargs):
            kwargs.setdefault("device", "meta")
            init(self, *args, **kwargs)
        return init_meta

    for c in classes:
        c.__init__ = on_meta(saved[c])
    try:
        yield
    finally:
        for c, init in saved.items():
            c.__init__ = init


def sdxl_leffa_key_shapes():
    """Key -> shape of Leffa's SDXL model as its pose_transfer.pth state dict holds it: vae.* (SDXL's VAE has SD's
    layout), unet_encoder.* (reference UNet, conv_in 4) and unet.* (generative UNet, conv_in 12), both with
    add_embedding.*. About 5.2 billion parameters, so built on the meta device."""
    import json

    with on_meta_device():
        leffa = nn.Module()
        leffa.vae = VAE([128, 256, 512, 512], 2, 32)
        leffa.unet_encoder = UNet({**SDXL, "in": 4})
        leffa.unet = UNet(SDXL)
    state = leffa.state_dict()
    assert all(v.is_meta for v in state.values())
    shapes = {k: list(v.shape) for k, v in state.items()}
    counts = {p: sum(v.numel() for k, v in state.items() if k.startswith(p + ".")) for p in ("vae", "unet_encoder", "unet")}
    return json.dumps({"shapes": shapes, "parameters": counts})


def build(out_dir):
    results = build_blocks(out_dir)
    path = f"{out_dir}/diffusion_sd15_keys.json"
    with open(path, "w") as f:
        f.write(sd15_key_shapes())
    results.append((path, 2))
    results.append(build_sdxl_tiny(out_dir))
    path = f"{out_dir}/diffusion_sdxl_leffa_keys.json"
    with open(path, "w") as f:
        f.write(sdxl_leffa_key_shapes())
    results.append((path, 3))
    return results

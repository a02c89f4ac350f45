"""Tiled VAE parity (diffusers' enable_tiling): a small random VAE with SD's four levels (8x downsampling),
encoded and decoded with diffusers' tiling rules (diffusers_vae_tiling.py) with small tiles so that
several rows and columns of tiles, both blends, partial tiles at the bottom and right edges, and a tile wholly
inside its neighbour's overlap all occur; sizes that are not multiples of the tile stride. The untiled results
are saved too, for the tiled-vs-untiled difference."""
import torch

from cases_diffusion import randomize, save
from diffusers_vae_tiling import TiledVAE
from torch_diffusion import VAE

BOC = [8, 16, 16, 16]


def build(out_dir):
    gen = torch.Generator().manual_seed(2121)
    vae = VAE(BOC, 1, 4)
    randomize(vae, gen, 0.1)
    tens = {}
    meta = {"boc": BOC, "groups": 4, "layers": 1}
    cases = [
        # name, image tile, input
        ("enc64", 64, torch.rand(2, 3, 152, 120, generator=gen) * 2 - 1),
        ("enc96", 96, torch.rand(1, 3, 200, 136, generator=gen) * 2 - 1),
        ("dec64", 64, torch.randn(1, 4, 19, 15, generator=gen)),
        ("dec96", 96, torch.randn(2, 4, 26, 17, generator=gen)),
    ]
    with torch.no_grad():
        for name, size, x in cases:
            tiled = TiledVAE(vae, size)
            if name.startswith("enc"):
                out, whole = tiled.encode_moments(x), vae.encode(x)
            else:
                out, whole = tiled.decode(x), vae.decode(x)
            assert out.shape == whole.shape, (name, out.shape, whole.shape)
            tens[f"input/{name}"] = x
            tens[f"output/{name}"] = out
            tens[f"untiled/{name}"] = whole
            meta[f"tile/{name}"] = size
    return [save(out_dir, "vae_tiling", vae, tens, meta)]

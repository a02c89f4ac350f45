"""Tiled VAE encoding and decoding with the rules of diffusers' `AutoencoderKL.enable_tiling()` (v0.30.3, the
version Leffa pins, and main agree), restated independently of our TypeScript so the tiled goldens check it
against those rules, around the reference VAE of torch_diffusion.py.

The rules: tile only when the input is larger than one tile. Tiles of `tile` input pixels start every
int(tile * (1 - overlap)) pixels (the last ones are cut by the border). Each tile's output is blended with the
tile above and then the tile to its left over int(tile_out * overlap) rows / columns, linearly from the
neighbour's last rows to its own, where the neighbours are taken as already blended (raster order, in place),
then cropped to its first tile_out - extent rows and columns; the crops are concatenated.
"""
import torch


def _blend(prev, cur, extent, dim):
    """Linear cross-fade of `cur`'s first rows (dim 2) or columns (dim 3) from `prev`'s last ones, in place."""
    n = min(prev.shape[dim], cur.shape[dim], extent)
    for k in range(n):
        w = k / n
        theirs = prev.select(dim, prev.shape[dim] - n + k)
        mine = cur.select(dim, k)
        mine.copy_(theirs * (1 - w) + mine * w)
    return cur


def _tiled(x, run, tile_in, tile_out, overlap):
    """Runs `run` on overlapping tiles of x and stitches the blended outputs."""
    stride = int(tile_in * (1 - overlap))
    extent = int(tile_out * overlap)
    keep = tile_out - extent
    starts_h = range(0, x.shape[2], stride)
    starts_w = range(0, x.shape[3], stride)
    grid = [[run(x[:, :, i : i + tile_in, j : j + tile_in]) for j in starts_w] for i in starts_h]
    rows = []
    for r, tiles in enumerate(grid):
        for c, t in enumerate(tiles):
            if r > 0:
                _blend(grid[r - 1][c], t, extent, 2)
            if c > 0:
                _blend(tiles[c - 1], t, extent, 3)
        rows.append(torch.cat([t[:, :, :keep, :keep] for t in tiles], dim=3))
    return torch.cat(rows, dim=2)


class TiledVAE:
    """torch_diffusion's VAE with tiling at a given tile size (in image pixels; the latent tile is that over the
    VAE's downsampling factor, as diffusers derives it from config.sample_size)."""

    def __init__(self, vae, tile_sample_min_size, overlap_factor=0.25):
        self.vae = vae
        self.tile = tile_sample_min_size
        self.tile_latent = int(tile_sample_min_size / (2 ** (len(vae.encoder.down_blocks) - 1)))
        self.overlap = overlap_factor

    def _encoder(self, x):
        """torch_diffusion's encode, quant_conv included (diffusers applies it per tile too)."""
        e = self.vae.encoder
        h = e.conv_in(x)
        for blk in e.down_blocks:
            h = self.vae.run_stage(blk, h)
        return self.vae.quant_conv(e.conv_out(torch.nn.functional.silu(e.conv_norm_out(e.mid_block(h)))))

    def _decoder(self, z):
        """torch_diffusion's decode, post_quant_conv included (diffusers applies it per tile too)."""
        d = self.vae.decoder
        h = d.mid_block(d.conv_in(self.vae.post_quant_conv(z)))
        for blk in d.up_blocks:
            h = self.vae.run_stage(blk, h)
        return d.conv_out(torch.nn.functional.silu(d.conv_norm_out(h)))

    def encode_moments(self, x):
        if x.shape[-1] > self.tile or x.shape[-2] > self.tile:
            return _tiled(x, self._encoder, self.tile, self.tile_latent, self.overlap)
        return self._encoder(x)

    def decode(self, z):
        if z.shape[-1] > self.tile_latent or z.shape[-2] > self.tile_latent:
            return _tiled(z, self._decoder, self.tile_latent, self.tile, self.overlap)
        return self._decoder(z)

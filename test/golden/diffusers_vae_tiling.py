"""diffusers' AutoencoderKL tiling (enable_tiling), as its source has it, around the reference VAE of
torch_diffusion.py, so the tiled goldens come from diffusers' own code rather than a re-implementation.

The methods below are copied verbatim from diffusers (src/diffusers/models/autoencoders/autoencoder_kl.py,
Apache License 2.0, Copyright 2024 The HuggingFace Team): `blend_v`, `blend_h`, `_tiled_encode` and
`tiled_decode` of the main branch (August 2026; v0.30.3, which Leffa uses, has the same loops, its
`tiled_encode` wrapping the same moments in a DiagonalGaussianDistribution), plus the size conditions of
`_encode` / `_decode` that decide whether to tile (docstrings, and tiled_decode's return_dict=True branch that
wraps the result in a DecoderOutput, left out). Only the surrounding class is ours.
"""
import torch


class _Config:
    use_quant_conv = True
    use_post_quant_conv = True


class TiledVAE:
    """diffusers' tiling state and methods on torch_diffusion's VAE (whose encode/decode include the
    quant convs, split apart here as diffusers calls them)."""

    def __init__(self, vae, tile_sample_min_size, overlap_factor=0.25):
        self.vae = vae
        self.config = _Config()
        self.quant_conv = vae.quant_conv
        self.post_quant_conv = vae.post_quant_conv
        # As AutoencoderKL.__init__ with config.sample_size = tile_sample_min_size.
        self.tile_sample_min_size = tile_sample_min_size
        self.tile_latent_min_size = int(tile_sample_min_size / (2 ** (len(vae.encoder.down_blocks) - 1)))
        self.tile_overlap_factor = overlap_factor

    def encoder(self, x):
        """torch_diffusion's encode without its quant_conv."""
        e = self.vae.encoder
        h = e.conv_in(x)
        for blk in e.down_blocks:
            h = self.vae.run_stage(blk, h)
        return e.conv_out(torch.nn.functional.silu(e.conv_norm_out(e.mid_block(h))))

    def decoder(self, z):
        """torch_diffusion's decode without its post_quant_conv."""
        d = self.vae.decoder
        h = d.mid_block(d.conv_in(z))
        for blk in d.up_blocks:
            h = self.vae.run_stage(blk, h)
        return d.conv_out(torch.nn.functional.silu(d.conv_norm_out(h)))

    def encode_moments(self, x):
        """diffusers' _encode with use_tiling = True."""
        batch_size, num_channels, height, width = x.shape
        if width > self.tile_sample_min_size or height > self.tile_sample_min_size:
            return self._tiled_encode(x)
        enc = self.encoder(x)
        return self.quant_conv(enc)

    def decode(self, z):
        """diffusers' _decode with use_tiling = True."""
        if z.shape[-1] > self.tile_latent_min_size or z.shape[-2] > self.tile_latent_min_size:
            return self.tiled_decode(z, return_dict=False)[0]
        return self.decoder(self.post_quant_conv(z))

    # ---- verbatim from diffusers ----

    def blend_v(self, a: torch.Tensor, b: torch.Tensor, blend_extent: int) -> torch.Tensor:
        blend_extent = min(a.shape[2], b.shape[2], blend_extent)
        for y in range(blend_extent):
            b[:, :, y, :] = a[:, :, -blend_extent + y, :] * (1 - y / blend_extent) + b[:, :, y, :] * (y / blend_extent)
        return b

    def blend_h(self, a: torch.Tensor, b: torch.Tensor, blend_extent: int) -> torch.Tensor:
        blend_extent = min(a.shape[3], b.shape[3], blend_extent)
        for x in range(blend_extent):
            b[:, :, :, x] = a[:, :, :, -blend_extent + x] * (1 - x / blend_extent) + b[:, :, :, x] * (x / blend_extent)
        return b

    def _tiled_encode(self, x: torch.Tensor) -> torch.Tensor:
        overlap_size = int(self.tile_sample_min_size * (1 - self.tile_overlap_factor))
        blend_extent = int(self.tile_latent_min_size * self.tile_overlap_factor)
        row_limit = self.tile_latent_min_size - blend_extent

        # Split the image into 512x512 tiles and encode them separately.
        rows = []
        for i in range(0, x.shape[2], overlap_size):
            row = []
            for j in range(0, x.shape[3], overlap_size):
                tile = x[:, :, i : i + self.tile_sample_min_size, j : j + self.tile_sample_min_size]
                tile = self.encoder(tile)
                if self.config.use_quant_conv:
                    tile = self.quant_conv(tile)
                row.append(tile)
            rows.append(row)
        result_rows = []
        for i, row in enumerate(rows):
            result_row = []
            for j, tile in enumerate(row):
                # blend the above tile and the left tile
                # to the current tile and add the current tile to the result row
                if i > 0:
                    tile = self.blend_v(rows[i - 1][j], tile, blend_extent)
                if j > 0:
                    tile = self.blend_h(row[j - 1], tile, blend_extent)
                result_row.append(tile[:, :, :row_limit, :row_limit])
            result_rows.append(torch.cat(result_row, dim=3))

        enc = torch.cat(result_rows, dim=2)
        return enc

    def tiled_decode(self, z: torch.Tensor, return_dict: bool = True):
        overlap_size = int(self.tile_latent_min_size * (1 - self.tile_overlap_factor))
        blend_extent = int(self.tile_sample_min_size * self.tile_overlap_factor)
        row_limit = self.tile_sample_min_size - blend_extent

        # Split z into overlapping 64x64 tiles and decode them separately.
        # The tiles have an overlap to avoid seams between tiles.
        rows = []
        for i in range(0, z.shape[2], overlap_size):
            row = []
            for j in range(0, z.shape[3], overlap_size):
                tile = z[:, :, i : i + self.tile_latent_min_size, j : j + self.tile_latent_min_size]
                if self.config.use_post_quant_conv:
                    tile = self.post_quant_conv(tile)
                decoded = self.decoder(tile)
                row.append(decoded)
            rows.append(row)
        result_rows = []
        for i, row in enumerate(rows):
            result_row = []
            for j, tile in enumerate(row):
                # blend the above tile and the left tile
                # to the current tile and add the current tile to the result row
                if i > 0:
                    tile = self.blend_v(rows[i - 1][j], tile, blend_extent)
                if j > 0:
                    tile = self.blend_h(row[j - 1], tile, blend_extent)
                result_row.append(tile[:, :, :row_limit, :row_limit])
            result_rows.append(torch.cat(result_row, dim=3))

        dec = torch.cat(result_rows, dim=2)
        if not return_dict:
            return (dec,)

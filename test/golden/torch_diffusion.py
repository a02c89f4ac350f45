"""Reference PyTorch implementations of the diffusers blocks our models port (AutoencoderKL, UNet2DConditionModel
with Leffa's reference attention), written from diffusers' formulas with the same state-dict key names."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t, dim, flip_sin_to_cos=True, shift=0.0, max_period=10000):
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb=None, groups=32, eps=1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, cross=None, bias=False, group_norm=None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.group_norm = nn.GroupNorm(group_norm, dim, 1e-6) if group_norm else None
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(cross or dim, inner, bias=bias)
        self.to_v = nn.Linear(cross or dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def heads_of(self, x):
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def attend(self, q, k, v):
        d = q.shape[-1]
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        o = (p @ v).transpose(1, 2)
        return self.to_out[0](o.reshape(o.shape[0], o.shape[1], -1))

    def forward(self, x, context=None):
        context = x if context is None else context
        return self.attend(self.heads_of(self.to_q(x)), self.heads_of(self.to_k(context)), self.heads_of(self.to_v(context)))

    def forward_spatial(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        return self.forward(t).transpose(1, 2).reshape(b, c, h, w) + x


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """Leffa's block: attn1 over [own; reference] tokens in the generative UNet, attn2 replaced by a pass-through."""

    def __init__(self, dim, heads, dim_head, cross):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim_head, cross=cross)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        n = self.norm1(x)
        if ctx["mode"] == "collect":
            ctx["features"].append(n)
        if ctx["mode"] == "consume":
            ref = ctx["features"][ctx["cursor"]]
            ctx["cursor"] += 1
            both = torch.cat([n, ref], dim=1)
            a = self.attn1(both)[:, : x.shape[1]]  # Leffa: queries over the concatenation, own outputs kept
        else:
            a = self.attn1(n)
        x = x + a
        x = x + self.norm2(x)  # SkipAttnProcessor returns its input
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """diffusers' Transformer2DModel: 1x1-conv projections on the map (SD 1.5) or, with linear=True
    (use_linear_projection, SDXL), Linear projections on the tokens."""

    def __init__(self, channels, heads, cross, groups, layers=1, linear=False):
        super().__init__()
        self.linear = linear
        self.norm = nn.GroupNorm(groups, channels, 1e-6)
        self.proj_in = nn.Linear(channels, channels) if linear else nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, heads, channels // heads, cross) for _ in range(layers)])
        self.proj_out = nn.Linear(channels, channels) if linear else nn.Conv2d(channels, channels, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        if self.linear:
            t = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c))
        else:
            t = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        for blk in self.transformer_blocks:
            t = blk(t, ctx)
        if self.linear:
            return self.proj_out(t).reshape(b, h, w, c).permute(0, 3, 1, 2) + x
        return self.proj_out(t.reshape(b, h, w, c).permute(0, 3, 1, 2)) + x


class Sampler(nn.Module):
    def __init__(self, c, down, vae=False):
        super().__init__()
        self.down, self.vae = down, vae
        self.conv = nn.Conv2d(c, c, 3, stride=2 if down else 1, padding=0 if (down and vae) else 1)

    def forward(self, x, size=None):
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)) if self.vae else x)
        return self.conv(F.interpolate(x, size=size, mode="nearest") if size else F.interpolate(x, scale_factor=2.0, mode="nearest"))


def per_block(value, n):
    """diffusers' int-or-list UNet settings (attention heads, transformer depth) as one entry per down block."""
    out = [value] * n if isinstance(value, int) else list(value)
    assert len(out) == n, (value, n)
    return out


class UNet(nn.Module):
    """cfg: in, out, boc, layers, heads (int or per block), groups, cross, down, up; optional depth (transformer
    layers, int or per block), linear (use_linear_projection) and addition (SDXL's add_embedding input width:
    projection_class_embeddings_input_dim). Per-block lists go down i -> entry i, mid -> the last entry, up i -> the
    reversed list's entry i, as diffusers' UNet2DConditionModel does. add_embedding is built and never used, as in
    Leffa (addition_embed_type set to None after building)."""

    def __init__(self, cfg):
        super().__init__()
        boc, L, groups, cross = cfg["boc"], cfg["layers"], cfg["groups"], cfg["cross"]
        heads = per_block(cfg["heads"], len(boc))
        depth = per_block(cfg.get("depth", 1), len(boc))
        linear = cfg.get("linear", False)
        temb = boc[0] * 4
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg["in"], boc[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(boc[0], temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)
        if cfg.get("addition"):
            self.add_embedding = nn.Module()
            self.add_embedding.linear_1 = nn.Linear(cfg["addition"], temb)
            self.add_embedding.linear_2 = nn.Linear(temb, temb)
        res = lambda i, o: ResnetBlock2D(i, o, temb, groups, 1e-5)
        tr = lambda c, k: Transformer2DModel(c, heads[k], cross, groups, depth[k], linear)
        last = len(boc) - 1
        self.down_blocks = nn.ModuleList()
        ch = boc[0]
        pushed = [boc[0]]
        for i, typ in enumerate(cfg["down"]):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([res(ch if j == 0 else boc[i], boc[i]) for j in range(L)])
            if typ.startswith("CrossAttn"):
                blk.attentions = nn.ModuleList([tr(boc[i], i) for _ in range(L)])
            if i < len(boc) - 1:
                blk.downsamplers = nn.ModuleList([Sampler(boc[i], True)])
            self.down_blocks.append(blk)
            pushed += [boc[i]] * L + ([boc[i]] if i < len(boc) - 1 else [])
            ch = boc[i]
        self.mid_block = nn.Module()
        self.mid_block.attentions = nn.ModuleList([tr(boc[-1], last)])
        self.mid_block.resnets = nn.ModuleList([res(boc[-1], boc[-1]), res(boc[-1], boc[-1])])
        rev = list(reversed(boc))
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, typ in enumerate(cfg["up"]):
            out = rev[i]
            skips = [pushed.pop() for _ in range(L + 1)]
            blk = nn.Module()
            blk.resnets = nn.ModuleList([res((prev if j == 0 else out) + s, out) for j, s in enumerate(skips)])
            if typ.startswith("CrossAttn"):
                blk.attentions = nn.ModuleList([tr(out, last - i) for _ in range(L + 1)])
            if i < len(boc) - 1:
                blk.upsamplers = nn.ModuleList([Sampler(out, False)])
            self.up_blocks.append(blk)
            prev = out
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], 1e-5)
        self.conv_out = nn.Conv2d(boc[0], cfg["out"], 3, padding=1)

    def forward(self, x, t, ctx):
        emb = timestep_embedding(t, self.cfg["boc"][0])
        temb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(emb)))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(h, temb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[j](h, ctx)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, temb)
        h = self.mid_block.attentions[0](h, ctx)
        h = self.mid_block.resnets[1](h, temb)
        for i, blk in enumerate(self.up_blocks):
            for j, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[j](h, ctx)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h, size=skips[-1].shape[2:])
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class VaeMid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(c, 1, c, bias=True, group_norm=groups)])
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, None, groups), ResnetBlock2D(c, c, None, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0].forward_spatial(self.resnets[0](x)))


class VAE(nn.Module):
    def __init__(self, boc, layers, groups, latent=4, dec_boc=None):
        # dec_boc: the decoder's own channels (diffusers builds Decoder from its own block_out_channels).
        super().__init__()
        enc, dec = nn.Module(), nn.Module()
        enc.conv_in = nn.Conv2d(3, boc[0], 3, padding=1)
        enc.down_blocks = nn.ModuleList()
        for i, o in enumerate(boc):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([ResnetBlock2D((boc[0] if i == 0 else boc[i - 1]) if j == 0 else o, o, None, groups) for j in range(layers)])
            if i < len(boc) - 1:
                blk.downsamplers = nn.ModuleList([Sampler(o, True, vae=True)])
            enc.down_blocks.append(blk)
        enc.mid_block = VaeMid(boc[-1], groups)
        enc.conv_norm_out = nn.GroupNorm(groups, boc[-1], 1e-6)
        enc.conv_out = nn.Conv2d(boc[-1], 2 * latent, 3, padding=1)
        rev = list(reversed(dec_boc or boc))
        dec.conv_in = nn.Conv2d(latent, rev[0], 3, padding=1)
        dec.mid_block = VaeMid(rev[0], groups)
        dec.up_blocks = nn.ModuleList()
        for i, o in enumerate(rev):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([ResnetBlock2D((rev[0] if i == 0 else rev[i - 1]) if j == 0 else o, o, None, groups) for j in range(layers + 1)])
            if i < len(rev) - 1:
                blk.upsamplers = nn.ModuleList([Sampler(o, False)])
            dec.up_blocks.append(blk)
        dec.conv_norm_out = nn.GroupNorm(groups, rev[-1], 1e-6)
        dec.conv_out = nn.Conv2d(rev[-1], 3, 3, padding=1)
        self.encoder, self.decoder = enc, dec
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1)
        self.post_quant_conv = nn.Conv2d(latent, latent, 1)

    @staticmethod
    def run_stage(blk, h):
        for r in blk.resnets:
            h = r(h)
        if hasattr(blk, "downsamplers"):
            h = blk.downsamplers[0](h)
        if hasattr(blk, "upsamplers"):
            h = blk.upsamplers[0](h)
        return h

    def encode(self, x):
        e = self.encoder
        h = e.conv_in(x)
        for blk in e.down_blocks:
            h = self.run_stage(blk, h)
        h = e.conv_out(F.silu(e.conv_norm_out(e.mid_block(h))))
        return self.quant_conv(h)

    def decode(self, z):
        d = self.decoder
        h = d.mid_block(d.conv_in(self.post_quant_conv(z)))
        for blk in d.up_blocks:
            h = self.run_stage(blk, h)
        return d.conv_out(F.silu(d.conv_norm_out(h)))

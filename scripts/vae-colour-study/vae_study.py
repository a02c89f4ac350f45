"""A PyTorch replica of train-vae's recipe, to study how fast the tiny VAE learns colour (run.sh; a diagnostic,
the shipped models are trained by the library). Same model (test/golden/torch_diffusion.py's AutoencoderKL), loss
(L1 + MSE of the posterior sample, 1e-4 KL / (H W 3), optional colour term as VaeTrainOptions.chromaWeight),
AdamW, clipping at 1, 64x48 crops, 4 people + their 4 garments per step; held-out people and garments at 128x96
scored by PSNR and colour kept as packages/train's reconstructionScores.
usage: python vae_study.py <name> <steps> <lr> <groups> <latent> [block channels]
env: DATA (folder of train.u8 / held.u8), CHROMA (weight), NO_NOISE=1, NORM=none, FULL=1 (whole images)."""
import os, sys, time, numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'golden'))
import torch_diffusion as td
if os.environ.get('NORM') == 'none':
    td.nn.GroupNorm = lambda g, c, eps=1e-5, affine=True: td.nn.Identity()
VAE = td.VAE
name, steps, lr, groups, latent = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
boc = [int(c) for c in (sys.argv[6] if len(sys.argv) > 6 else '16,32,32,32').split(',')]
NO_NOISE = os.environ.get("NO_NOISE") == "1"
DATA = os.environ.get('DATA', '.')
CHROMA = float(os.environ.get('CHROMA', '0'))
torch.manual_seed(0); torch.set_num_threads(1)
H, W = 128, 96
data = np.fromfile(os.path.join(DATA, 'train.u8'), np.uint8).reshape(-1, 2, H, W, 3)
held = np.fromfile(os.path.join(DATA, 'held.u8'), np.uint8).reshape(-1, 2, H, W, 3)
vae = VAE(boc, 1, groups, latent)
opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0)
to_t = lambda a: torch.from_numpy(a).float().permute(0, 3, 1, 2) / 127.5 - 1
rng = np.random.default_rng(0)
def colourfulness(x):  # NCHW in [0,255]
    g = x.mean(1, keepdim=True); return (x - g).abs().mean().item()
def evaluate():
    with torch.no_grad():
        out = {}
        for k, nm in ((0, 'people'), (1, 'garments')):
            x = to_t(held[:, k]); m = vae.encode(x)[:, :latent]; y = vae.decode(m)
            yi = ((y.clamp(-1, 1) + 1) * 127.5).round(); xi = ((x + 1) * 127.5).round()
            mse = ((yi - xi) ** 2).mean((1, 2, 3)); psnr = (10 * torch.log10(255 ** 2 / mse)).mean().item()
            # colour error: |chroma(out) - chroma(in)| over |chroma(in)|; a grey output scores 1, wrong hues more.
            ch = lambda t: t - t.mean(1, keepdim=True)
            err = (ch(yi) - ch(xi)).abs().mean().item() / ch(xi).abs().mean().item()
            out[nm] = (psnr, colourfulness(yi) / colourfulness(xi), err)
        return out
t0 = time.time()
for s in range(1, steps + 1):
    idx = rng.integers(0, len(data), 4)
    imgs = data[idx].reshape(-1, H, W, 3)
    crops = imgs if os.environ.get('FULL') == '1' else np.stack([im[y:y + 64, x:x + 48] for im, y, x in zip(imgs, rng.integers(0, H - 63, 8), rng.integers(0, W - 47, 8))])
    x = to_t(crops)
    mom = vae.encode(x); mean, logvar = mom[:, :latent], mom[:, latent:].clamp(-30, 20)
    z = mean + (0 if NO_NOISE else torch.exp(0.5 * logvar) * torch.randn_like(mean))
    rec = vae.decode(z)
    kl = (0.5 * (mean ** 2 + logvar.exp() - logvar - 1).sum((1, 2, 3))).mean() / (x.shape[2] * x.shape[3] * 3)
    loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-4 * kl
    if CHROMA > 0:
        ch = lambda t: t - t.mean(1, keepdim=True)
        loss = loss + CHROMA * (F.l1_loss(ch(rec), ch(x)) + F.mse_loss(ch(rec), ch(x)))
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(vae.parameters(), 1); opt.step()
    if s % 250 == 0 or s == steps:
        e = evaluate()
        print(f"{name} {s} {time.time()-t0:.0f}s loss {loss.item():.4f} people {e['people'][0]:.2f} dB col {100*e['people'][1]:.0f}% err {100*e['people'][2]:.0f}% garments {e['garments'][0]:.2f} dB col {100*e['garments'][1]:.0f}% err {100*e['garments'][2]:.0f}%", flush=True)
with torch.no_grad():
    rows = []
    for k in (0, 1):
        x = to_t(held[:6, k]); y = vae.decode(vae.encode(x)[:, :latent])
        rows += [((x + 1) * 127.5).round(), ((y.clamp(-1, 1) + 1) * 127.5).round()]
    grid = torch.cat([torch.cat(list(r), 2) for r in rows], 1).permute(1, 2, 0).byte().numpy()
    np.save(os.path.join(DATA, f'{name}.npy'), grid)

"""DDPM/DDIM schedulers: a transcription of diffusers' DDPMScheduler/DDIMScheduler formulas (float32 torch,
as diffusers computes them) for the beta schedules, timestep spacings and single steps."""
import math

import numpy as np
import torch

from golden import Group

T_TRAIN = 1000


def betas_for(schedule, start=0.00085, end=0.012):
    if schedule == "linear":
        return torch.linspace(start, end, T_TRAIN, dtype=torch.float32)
    if schedule == "scaled_linear":
        return torch.linspace(start ** 0.5, end ** 0.5, T_TRAIN, dtype=torch.float32) ** 2
    alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - alpha_bar((i + 1) / T_TRAIN) / alpha_bar(i / T_TRAIN), 0.999) for i in range(T_TRAIN)], dtype=torch.float32)


def rescale_zero_terminal_snr(betas):
    """diffusers' rescale_zero_terminal_snr (schedulers/scheduling_ddpm.py), float32 as diffusers runs it."""
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    a0 = alphas_bar_sqrt[0].clone()
    aT = alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= aT
    alphas_bar_sqrt *= a0 / (a0 - aT)
    alphas_bar = alphas_bar_sqrt ** 2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1 - alphas


def timesteps_for(spacing, n, offset):
    if spacing == "leading":
        ratio = T_TRAIN // n
        ts = (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64) + offset
    elif spacing == "trailing":
        ratio = T_TRAIN / n
        ts = np.round(np.arange(T_TRAIN, 0, -ratio)).astype(np.int64) - 1
    else:
        ts = np.linspace(0, T_TRAIN - 1, n).round()[::-1].copy().astype(np.int64)
    return torch.from_numpy(ts.astype(np.int32))


def ddpm_step(ac, n, out, t, sample, noise, pred="epsilon", clip=False):
    prev_t = t - T_TRAIN // n
    a_t = ac[t]
    a_prev = ac[prev_t] if prev_t >= 0 else torch.tensor(1.0)
    b_t, b_prev = 1 - a_t, 1 - a_prev
    cur_a = a_t / a_prev
    cur_b = 1 - cur_a
    if pred == "epsilon":
        x0 = (sample - b_t ** 0.5 * out) / a_t ** 0.5
    elif pred == "sample":
        x0 = out
    else:
        x0 = a_t ** 0.5 * sample - b_t ** 0.5 * out
    if clip:
        x0 = x0.clamp(-1, 1)
    prev = (a_prev ** 0.5 * cur_b / b_t) * x0 + (cur_a ** 0.5 * b_prev / b_t) * sample
    if t > 0:
        var = torch.clamp(b_prev / b_t * cur_b, min=1e-20)
        prev = prev + var ** 0.5 * noise
    return prev, x0


def ddim_step(ac, n, out, t, sample, noise, eta, pred="epsilon"):
    prev_t = t - T_TRAIN // n
    a_t = ac[t]
    a_prev = ac[prev_t] if prev_t >= 0 else ac[0]
    b_t = 1 - a_t
    if pred == "epsilon":
        x0, eps = (sample - b_t ** 0.5 * out) / a_t ** 0.5, out
    else:
        x0 = a_t ** 0.5 * sample - b_t ** 0.5 * out
        eps = a_t ** 0.5 * out + b_t ** 0.5 * sample
    var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * var ** 0.5
    prev = a_prev ** 0.5 * x0 + (1 - a_prev - std ** 2) ** 0.5 * eps
    if eta > 0:
        prev = prev + std * noise
    return prev, x0


def build(out_dir):
    g = Group("schedulers", seed=5)
    for schedule in ["linear", "scaled_linear", "squaredcos_cap_v2"]:
        start, end = (0.0001, 0.02) if schedule == "linear" else (0.00085, 0.012)
        betas = betas_for(schedule, start, end)
        g.case(f"alphas_cumprod_{schedule}", "alphas_cumprod", [], lambda: torch.cumprod(1 - betas, 0),
               attrs={"betaSchedule": schedule, "betaStart": start, "betaEnd": end})
    for spacing, n, offset in [("leading", 50, 1), ("leading", 30, 0), ("trailing", 30, 0), ("trailing", 7, 0), ("linspace", 25, 0), ("linspace", 8, 0)]:
        g.case(f"timesteps_{spacing}_{n}", "timesteps", [], lambda: timesteps_for(spacing, n, offset),
               attrs={"spacing": spacing, "steps": n, "stepsOffset": offset})
    ac = torch.cumprod(1 - betas_for("scaled_linear"), 0)
    shape = (2, 4, 5, 3)
    for k, (t, n, pred, clip) in enumerate([(981, 50, "epsilon", False), (21, 50, "epsilon", False), (1, 50, "epsilon", False),
                                           (500, 20, "v_prediction", False), (700, 10, "sample", False), (300, 25, "epsilon", True)]):
        inputs = [g.randn(*shape), g.randn(*shape), g.randn(*shape)]
        g.case(f"ddpm_step_{k}", "ddpm_step", inputs, lambda o, s, z: ddpm_step(ac, n, o, t, s, z, pred, clip),
               attrs={"t": t, "steps": n, "prediction": pred, "clip": clip}, grad=[False] * 3)
    for k, (t, n, eta, pred) in enumerate([(981, 50, 0.0, "epsilon"), (41, 50, 1.0, "epsilon"), (1, 50, 0.5, "epsilon"), (600, 20, 0.0, "v_prediction")]):
        inputs = [g.randn(*shape), g.randn(*shape), g.randn(*shape)]
        g.case(f"ddim_step_{k}", "ddim_step", inputs, lambda o, s, z: ddim_step(ac, n, o, t, s, z, eta, pred),
               attrs={"t": t, "steps": n, "eta": eta, "prediction": pred}, grad=[False] * 3)
    x0, noise = g.randn(3, 4, 2, 3), g.randn(3, 4, 2, 3)
    ts = [0, 499, 999]
    g.case("add_noise", "add_noise", [x0, noise],
           lambda a, z: ac[ts].sqrt().view(3, 1, 1, 1) * a + (1 - ac[ts]).sqrt().view(3, 1, 1, 1) * z,
           attrs={"timesteps": ts}, grad=[False, False])

    # Zero terminal SNR (SDXL as Leffa uses it: rescale_betas_zero_snr=True on SD's scaled-linear betas): the
    # schedule (whole, and its last 100 values on their own scale), then DDPM/DDIM steps with alphas_cumprod[999]
    # = 0 as diffusers leaves it (v and x0 predictions at t = 999, epsilon below it, the final step to t < 0).
    # Not DDIM with eta = 1 at t = 999: there 1 - a_prev - std^2 is 0 up to rounding and diffusers' float32 sqrt of
    # it can be NaN; ours clamps it at 0 (a test in schedulers.test.ts covers that step).
    zbetas = rescale_zero_terminal_snr(betas_for("scaled_linear"))
    zac = torch.cumprod(1 - zbetas, 0)
    assert zac[-1].item() == 0.0 and zbetas[-1].item() == 1.0
    g.case("alphas_cumprod_zero_snr", "alphas_cumprod", [], lambda: zac, attrs={"betaSchedule": "scaled_linear", "betaStart": 0.00085, "betaEnd": 0.012, "zeroSnr": True})
    g.case("alphas_cumprod_zero_snr_tail", "alphas_cumprod_tail", [], lambda: zac[-100:], attrs={"betaSchedule": "scaled_linear", "betaStart": 0.00085, "betaEnd": 0.012, "zeroSnr": True, "tail": 100})
    for k, (t, n, pred) in enumerate([(999, 20, "v_prediction"), (999, 10, "sample"), (981, 50, "epsilon"), (1, 50, "epsilon")]):
        inputs = [g.randn(*shape), g.randn(*shape), g.randn(*shape)]
        g.case(f"ddpm_step_zero_snr_{k}", "ddpm_step", inputs, lambda o, s, z: ddpm_step(zac, n, o, t, s, z, pred),
               attrs={"t": t, "steps": n, "prediction": pred, "clip": False, "zeroSnr": True}, grad=[False] * 3)
    for k, (t, n, eta, pred) in enumerate([(999, 20, 0.5, "v_prediction"), (981, 50, 0.0, "epsilon"), (1, 50, 0.5, "epsilon")]):
        inputs = [g.randn(*shape), g.randn(*shape), g.randn(*shape)]
        g.case(f"ddim_step_zero_snr_{k}", "ddim_step", inputs, lambda o, s, z: ddim_step(zac, n, o, t, s, z, eta, pred),
               attrs={"t": t, "steps": n, "eta": eta, "prediction": pred, "zeroSnr": True}, grad=[False] * 3)
    x0, noise = g.randn(3, 4, 2, 3), g.randn(3, 4, 2, 3)
    g.case("add_noise_zero_snr", "add_noise", [x0, noise],
           lambda a, z: zac[ts].sqrt().view(3, 1, 1, 1) * a + (1 - zac[ts]).sqrt().view(3, 1, 1, 1) * z,
           attrs={"timesteps": ts, "zeroSnr": True}, grad=[False, False])
    return [g.save(out_dir)]

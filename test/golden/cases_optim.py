"""Optimizers (torch.optim.SGD / AdamW over several steps), clip_grad_norm_, EMA and learning-rate schedules.

Optimizer cases take inputs [p0, G0, p1, G1, ...]: initial parameters and their gradients for every step
stacked on a leading axis. Outputs per parameter: the final value, the total change (p - p0, which shows
the update itself rather than the parameter's magnitude) and the optimizer's state buffers.
"""
import math
import warnings

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, _LRScheduler

from golden import Group

TORCH_NAMES = {"weightDecay": "weight_decay"}


def torch_options(opts):
    out = {}
    for k, v in opts.items():
        out[TORCH_NAMES.get(k, k)] = tuple(v) if k == "betas" else v
    return out


def optimizer_case(g, name, kind, params, steps, defaults, groups=None, lr_scales=None, skip=(), grad_scales=None, tol=None):
    """params: shapes. grad_scales: per-step factors on the gradients (AMSGrad's max needs shrinking grads)."""
    inputs = []
    for shape in params:
        inputs.append(g.randn(*shape))
        G = g.randn(steps, *shape)
        if grad_scales is not None:
            G = G * torch.tensor(grad_scales, dtype=torch.float32).reshape(steps, *([1] * len(shape)))
        inputs.append(G)
    groups = groups or [{"params": list(range(len(params)))}]
    state_names = {"sgd": ["momentum_buffer"], "adamw": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
                   "adam": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]}[kind]
    skip = [list(s) for s in skip]

    def run(*ins):
        ps = [ins[2 * i].detach().clone().requires_grad_(True) for i in range(len(params))]
        tgroups = [{"params": [ps[i] for i in grp["params"]], **torch_options({k: v for k, v in grp.items() if k != "params"})} for grp in groups]
        cls = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[kind]
        opt = cls(tgroups, **torch_options(defaults))
        initial = [grp["lr"] for grp in opt.param_groups]
        for k in range(steps):
            if lr_scales is not None:
                for grp, lr0 in zip(opt.param_groups, initial):
                    grp["lr"] = lr0 * lr_scales[k]
            for i, p in enumerate(ps):
                p.grad = None if [k, i] in skip else ins[2 * i + 1][k].detach().clone()
            opt.step()
        outs = []
        for i, p in enumerate(ps):
            outs += [p.detach().clone(), p.detach() - ins[2 * i].detach()]
            st = opt.state[p]
            outs += [st[n].clone() if st.get(n) is not None else torch.zeros_like(p) for n in state_names]
        return outs

    attrs = {"optimizer": kind, "defaults": defaults, "groups": groups, "steps": steps, "lrScales": lr_scales,
             "skip": skip, "state": state_names}
    g.case(name, "optimizer", inputs, run, attrs=attrs, grad=[False] * len(inputs), tol=tol)


def clip_case(g, name, shapes, max_norm, norm_type, no_grad=(), scale=1.0):
    inputs = [g.randn(*s, scale=scale) for s in shapes]

    def run(*grads):
        ps = [torch.zeros_like(x, requires_grad=True) for x in grads]
        for i, (p, x) in enumerate(zip(ps, grads)):
            p.grad = None if i in no_grad else x.detach().clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
        return [x.detach().clone() if i in no_grad else p.grad for i, (p, x) in enumerate(zip(ps, grads))] + [total]

    attrs = {"maxNorm": max_norm, "normType": "inf" if norm_type == math.inf else norm_type, "noGrad": list(no_grad)}
    g.case(name, "clip_grad_norm", inputs, run, attrs=attrs, grad=[False] * len(inputs))


class SCHPCyclicalLR(_LRScheduler):
    """Transcription of SCHP's SGDRScheduler (utils/warmup_scheduler.py): warmup, cosine annealing, cosine cycles."""

    def __init__(self, optimizer, total_epoch=150, start_cyclical=100, cyclical_base_lr=7e-4, cyclical_epoch=10, eta_min=0, warmup_epoch=10, last_epoch=-1):
        self.total_epoch = total_epoch
        self.start_cyclical = start_cyclical
        self.cyclical_epoch = cyclical_epoch
        self.cyclical_base_lr = cyclical_base_lr
        self.eta_min = eta_min
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e = self.last_epoch
        if e < self.warmup_epoch:
            return [self.eta_min + e * (base - self.eta_min) / self.warmup_epoch for base in self.base_lrs]
        if e < self.start_cyclical:
            t = math.pi * (e - self.warmup_epoch) / (self.start_cyclical - self.warmup_epoch)
            return [self.eta_min + (base - self.eta_min) * (1 + math.cos(t)) / 2 for base in self.base_lrs]
        t = math.pi * ((e - self.start_cyclical) % self.cyclical_epoch) / self.cyclical_epoch
        # SCHP's cycles peak at cyclical_base_lr whatever the group's base lr.
        return [self.eta_min + (self.cyclical_base_lr - self.eta_min) * (1 + math.cos(t)) / 2 for _ in self.base_lrs]


def lr_trace(base_lr, make_scheduler, steps, per_epoch=False):
    """The lr the optimizer uses at each step 0..steps-1 under a torch scheduler."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch) is deprecated but is how SCHP drives its schedule
        for k in range(steps):
            if per_epoch:
                sched.step(epoch=k)
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if not per_epoch:
                sched.step()
    return torch.tensor(lrs, dtype=torch.float32)


def schedule_case(g, name, kind, options, steps, make_scheduler, per_epoch=False):
    lrs = lr_trace(options.get("baseLr", 1.0), make_scheduler, steps, per_epoch)
    # The schedules are float64 scalar functions; only the float32 storage of the trace limits agreement.
    g.case(name, "schedule", [], lambda: lrs.clone(), attrs={"kind": kind, "options": options, "steps": steps}, tol=1e-6)


def ema_case(g, name, shape, updates, decay, min_decay=0.0, update_after_step=0, warmup=None):
    p0 = g.randn(*shape)
    # A drifting parameter so the average differs visibly from the last value.
    P = p0 + torch.cumsum(g.randn(updates, *shape, scale=0.3), 0)

    def run(p0, P):
        shadow = p0.detach().clone()
        for k in range(updates):
            t = k + 1 - update_after_step
            if t <= 0:
                d = 0.0
            elif warmup is None:
                d = decay
            else:
                d = min(decay, max(min_decay, 1 - (1 + t / warmup["invGamma"]) ** -warmup["power"]))
            shadow.lerp_(P[k].detach(), 1 - d)
        return shadow

    attrs = {"decay": decay, "minDecay": min_decay, "updateAfterStep": update_after_step, "warmup": warmup}
    g.case(name, "ema", [p0, P], run, attrs=attrs, grad=[False, False])


def build(out_dir):
    g = Group("optim", seed=5)

    # -- SGD
    optimizer_case(g, "sgd_plain", "sgd", [(7, 5)], 4, {"lr": 0.1})
    optimizer_case(g, "sgd_momentum_dampening_wd", "sgd", [(3, 1, 9), (13,)], 5,
                   {"lr": 0.05, "momentum": 0.9, "dampening": 0.25, "weightDecay": 0.02})
    optimizer_case(g, "sgd_nesterov_schedule", "sgd", [(2, 3, 5)], 6,
                   {"lr": 0.08, "momentum": 0.8, "nesterov": True, "weightDecay": 1e-3},
                   lr_scales=[1.0, 0.9, 0.5, 0.25, 1.5, 0.1])
    optimizer_case(g, "sgd_groups_skip", "sgd", [(5, 3), (1, 11), (6,)], 5, {"lr": 0.03, "momentum": 0.9},
                   groups=[{"params": [0, 2]}, {"params": [1], "lr": 0.12, "weightDecay": 0.1, "momentum": 0.5}],
                   lr_scales=[1.0, 1.0, 0.5, 0.5, 0.2], skip=[(0, 1), (2, 1), (3, 2)])

    # -- AdamW
    optimizer_case(g, "adamw_default", "adamw", [(13, 3), (1, 7, 1)], 5, {"lr": 1e-2})
    optimizer_case(g, "adamw_wd_betas_eps", "adamw", [(4, 9)], 6,
                   {"lr": 3e-2, "betas": [0.8, 0.95], "eps": 1e-3, "weightDecay": 0.1})
    optimizer_case(g, "adamw_amsgrad", "adamw", [(5, 7), (3,)], 6,
                   {"lr": 2e-2, "betas": [0.7, 0.9], "eps": 1e-6, "weightDecay": 0.05, "amsgrad": True},
                   grad_scales=[3.0, 2.0, 1.0, 0.5, 0.25, 0.1])
    optimizer_case(g, "adamw_groups_skip_schedule", "adamw", [(3, 5), (17,), (2, 1, 3)], 6, {"lr": 1e-2, "weightDecay": 1e-2},
                   groups=[{"params": [0]}, {"params": [1, 2], "lr": 4e-2, "weightDecay": 0.0, "betas": [0.5, 0.99]}],
                   lr_scales=[0.1, 0.4, 1.0, 1.0, 0.7, 0.3], skip=[(0, 2), (1, 2), (4, 0)])

    # -- Adam (L2-style weight decay)
    # Several parameters per dispatch (as many as the adapter's storage buffers allow, 4 or 3 with AMSGrad on
    # lavapipe), one of them over a workgroup's tile (4096 values).
    optimizer_case(g, "adamw_many", "adamw", [(k % 5 + 1, 2) for k in range(9)] + [(70, 61)], 3, {"lr": 1e-2})
    optimizer_case(g, "adamw_amsgrad_many", "adamw", [(k % 3 + 2,) for k in range(7)], 3, {"lr": 2e-2, "amsgrad": True})
    # Sizes divisible by 4 go to the vec4 kernel (one over a workgroup's tile of 4096 vec4s), the others beside it.
    optimizer_case(g, "adamw_vec4_large", "adamw", [(128, 161), (128, 160), (12,), (6, 6, 3)], 3, {"lr": 1e-2, "weightDecay": 0.1})
    optimizer_case(g, "adam_amsgrad_vec4", "adam", [(9, 4), (5,), (20, 1000)], 4,
                   {"lr": 2e-2, "weightDecay": 0.05, "amsgrad": True}, grad_scales=[3.0, 1.0, 0.5, 0.25])
    optimizer_case(g, "adam_default", "adam", [(13, 3), (1, 7, 1)], 5, {"lr": 1e-2})
    optimizer_case(g, "adam_l2_betas_eps", "adam", [(4, 9)], 6,
                   {"lr": 3e-2, "betas": [0.8, 0.95], "eps": 1e-3, "weightDecay": 0.1})
    optimizer_case(g, "adam_amsgrad", "adam", [(5, 7), (3,)], 6,
                   {"lr": 2e-2, "betas": [0.7, 0.9], "eps": 1e-6, "weightDecay": 0.05, "amsgrad": True},
                   grad_scales=[3.0, 2.0, 1.0, 0.5, 0.25, 0.1])
    optimizer_case(g, "adam_groups_skip_schedule", "adam", [(3, 5), (17,), (2, 1, 3)], 6, {"lr": 1e-2},
                   groups=[{"params": [0]}, {"params": [1, 2], "lr": 4e-2, "weightDecay": 0.2, "betas": [0.5, 0.99]}],
                   lr_scales=[0.1, 0.4, 1.0, 1.0, 0.7, 0.3], skip=[(0, 2), (1, 2), (4, 0)])

    # -- clip_grad_norm_
    clip_case(g, "clip_l2", [(3, 4), (17,), (2, 1, 5)], 1.0, 2.0)
    clip_case(g, "clip_l2_no_clip", [(3, 4), (5,)], 100.0, 2.0)
    clip_case(g, "clip_l1_skip_none", [(6, 7), (9,), (1, 3)], 2.5, 1.0, no_grad=(1,))
    clip_case(g, "clip_inf", [(5, 5), (31,)], 0.5, math.inf)
    clip_case(g, "clip_p3", [(4, 3), (10,)], 0.7, 3.0)
    # More gradients than one dispatch binds (16, fewer on adapters with fewer storage buffers), one of them over
    # one workgroup's tile (32768 values), one without a gradient.
    clip_case(g, "clip_l2_many", [(k % 7 + 1, 3) for k in range(18)] + [(201, 200), (5,)], 1.0, 2.0, no_grad=(4,))
    clip_case(g, "clip_inf_many", [(k % 5 + 2,) for k in range(17)] + [(3, 11000)], 0.5, math.inf)
    # Several workgroups' partial sums per gradient (over 4096 elements each).
    clip_case(g, "clip_l2_large", [(70001,), (3, 4099), (7,)], 5.0, 2.0)

    # -- EMA (a transcription of diffusers' EMAModel update with torch.lerp_)
    ema_case(g, "ema_constant", (4, 1, 7), 6, 0.9)
    ema_case(g, "ema_warmup_after", (19,), 8, 0.99, min_decay=0.2, update_after_step=2, warmup={"invGamma": 1.0, "power": 2 / 3})
    ema_case(g, "ema_warmup_gamma", (3, 5), 7, 0.95, warmup={"invGamma": 3.0, "power": 0.75})
    ema_case(g, "ema_vec4_large", (160, 130), 3, 0.9)

    # -- learning-rate schedules (the lr used at each step)
    schedule_case(g, "sched_cosine_annealing", "cosineAnnealing", {"baseLr": 0.1, "tMax": 7, "etaMin": 0.01}, 23,
                  lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.01))
    warm, total, floor = 5, 23, 0.1

    def warmup_cosine(k):
        if k < warm:
            return k / warm
        progress = min(1.0, (k - warm) / max(1, total - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    schedule_case(g, "sched_warmup_cosine", "warmupCosine", {"baseLr": 0.02, "warmupSteps": warm, "totalSteps": total, "minLr": 0.002}, 31,
                  lambda o: LambdaLR(o, warmup_cosine))
    schedule_case(g, "sched_warmup_cosine_nofloor", "warmupCosine", {"baseLr": 0.5, "warmupSteps": 0, "totalSteps": 9}, 12,
                  lambda o: LambdaLR(o, lambda k: 0.5 * (1 + math.cos(math.pi * min(1.0, k / 9)))))
    schedule_case(g, "sched_constant_warmup", "constant", {"baseLr": 0.3, "warmupSteps": 4}, 9,
                  lambda o: LambdaLR(o, lambda k: min(1.0, k / 4)))
    schedule_case(g, "sched_constant", "constant", {"baseLr": 0.3}, 5, lambda o: LambdaLR(o, lambda k: 1.0))
    # SCHP's training script: lr 7e-3, eta_min lr/100, warmup 10, cycles of 10 epochs from epoch 100, peak lr/2.
    schedule_case(g, "sched_schp_defaults", "schp", {"baseLr": 7e-3}, 150,
                  lambda o: SCHPCyclicalLR(o, total_epoch=150, eta_min=7e-5, warmup_epoch=10, start_cyclical=100,
                                           cyclical_base_lr=3.5e-3, cyclical_epoch=10), per_epoch=True)
    schedule_case(g, "sched_schp_short", "schp",
                  {"baseLr": 0.1, "etaMin": 0.004, "warmupSteps": 3, "cyclicalStart": 11, "cyclicalBaseLr": 0.06, "cyclicalSteps": 4}, 27,
                  lambda o: SCHPCyclicalLR(o, total_epoch=27, eta_min=0.004, warmup_epoch=3, start_cyclical=11,
                                           cyclical_base_lr=0.06, cyclical_epoch=4), per_epoch=True)
    return [g.save(out_dir)]

"""The baseline of ``make bench``: the same U-Net, R_nn and guided sampling loop in plain PyTorch,
run eagerly step by step from Python as the authors' code (Diffuser + PyTorch) runs it.

Weights are copied from our JAX parameters, so the two implementations compute the same function
(``tests/bench/test_bench.py`` checks the outputs agree). Layout is PyTorch's channels-first [B, C, H].
Needs ``torch`` (``pip install -e .[bench]``); importing this module without it raises
ImportError with that hint.
"""

from __future__ import annotations

import math

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:  # pragma: no cover - exercised where torch is absent
    raise ImportError("the PyTorch baseline needs torch: pip install -e '.[bench]'") from e

from dmpc_jax.diffusion.unet import UNetConfig


def mish(x):
    return F.mish(x)  # PyTorch's fused kernel: x * tanh(softplus(x))


def sinusoidal(k, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
    args = k.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class Block(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, padding=k // 2)
        self.norm = nn.GroupNorm(8, cout, eps=1e-5)

    def forward(self, x):
        return mish(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, k):
        super().__init__()
        self.block1, self.block2 = Block(cin, cout, k), Block(cout, cout, k)
        self.time = nn.Linear(tdim, cout)
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else None

    def forward(self, x, t):
        out = self.block1(x) + self.time(mish(t))[:, :, None]
        out = self.block2(out)
        return out + (self.residual(x) if self.residual is not None else x)


class LinearAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        self.norm = nn.LayerNorm(dim, eps=1e-5, bias=False)
        self.to_qkv = nn.Conv1d(dim, heads * dim_head * 3, 1, bias=False)
        self.to_out = nn.Conv1d(heads * dim_head, dim, 1)

    def forward(self, x):
        b, _, h = x.shape
        y = self.norm(x.transpose(1, 2)).transpose(1, 2)
        qkv = self.to_qkv(y).reshape(b, 3, self.heads, self.dim_head, h)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # [B, heads, d, H]
        q = q.softmax(dim=-2) / math.sqrt(self.dim_head)
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, -1, h)
        return x + self.to_out(out)


class TimeMLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.fc1, self.fc2 = nn.Linear(dim, dim * 4), nn.Linear(dim * 4, dim)

    def forward(self, k):
        return self.fc2(mish(self.fc1(sinusoidal(k, self.dim))))


class TemporalUNet(nn.Module):
    def __init__(self, transition_dim: int, cfg: UNetConfig):
        super().__init__()
        dims = [transition_dim] + [cfg.dim * m for m in cfg.dim_mults]
        pairs = list(zip(dims[:-1], dims[1:], strict=True))
        kern, tdim = cfg.kernel_size, cfg.dim
        self.time_mlp = TimeMLP(tdim)
        self.downs = nn.ModuleList()
        for i, (cin, cout) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ResBlock(cin, cout, tdim, kern), ResBlock(cout, cout, tdim, kern),
                LinearAttention(cout) if cfg.attention else nn.Identity(),
                nn.Conv1d(cout, cout, 3, 2, 1) if not last else nn.Identity(),
            ]))  # fmt: skip
        mid = dims[-1]
        self.mid1 = ResBlock(mid, mid, tdim, kern)
        self.mid_attn = LinearAttention(mid) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(mid, mid, tdim, kern)
        self.ups = nn.ModuleList()
        for cin, cout in reversed(pairs[1:]):
            self.ups.append(nn.ModuleList([
                ResBlock(cout * 2, cin, tdim, kern), ResBlock(cin, cin, tdim, kern),
                LinearAttention(cin) if cfg.attention else nn.Identity(),
                nn.ConvTranspose1d(cin, cin, 4, 2, 1),
            ]))  # fmt: skip
        self.final_block = Block(cfg.dim, cfg.dim, kern)
        self.final_conv = nn.Conv1d(cfg.dim, transition_dim, 1)

    def forward(self, x, k):  # x [B, Dx, H]
        t = self.time_mlp(k)
        skips = []
        for res1, res2, attn, down in self.downs:
            x = attn(res2(res1(x, t), t))
            skips.append(x)
            x = down(x)
        x = self.mid2(self.mid_attn(self.mid1(x, t)), t)
        for res1, res2, attn, up in self.ups:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(attn(res2(res1(x, t), t)))
        return self.final_conv(self.final_block(x))


class ValueNet(nn.Module):
    def __init__(self, transition_dim: int, horizon: int, cfg: UNetConfig):
        super().__init__()
        dims = [transition_dim] + [cfg.value_dim * m for m in cfg.dim_mults]
        kern, tdim = cfg.kernel_size, cfg.value_dim
        self.time_mlp = TimeMLP(tdim)
        self.blocks = nn.ModuleList()
        length = horizon
        for cin, cout in zip(dims[:-1], dims[1:], strict=True):
            self.blocks.append(nn.ModuleList([
                ResBlock(cin, cout, tdim, kern), ResBlock(cout, cout, tdim, kern),
                nn.Conv1d(cout, cout, 3, 2, 1),
            ]))  # fmt: skip
            length = (length - 1) // 2 + 1
        mid = dims[-1]
        self.mid1 = ResBlock(mid, mid // 2, tdim, kern)
        self.mid_down1 = nn.Conv1d(mid // 2, mid // 2, 3, 2, 1)
        self.mid2 = ResBlock(mid // 2, mid // 4, tdim, kern)
        self.mid_down2 = nn.Conv1d(mid // 4, mid // 4, 3, 2, 1)
        for _ in range(2):
            length = (length - 1) // 2 + 1
        fc = mid // 4 * length
        self.fc1 = nn.Linear(fc + tdim, fc // 2 if fc >= 2 else 1)
        self.fc2 = nn.Linear(fc // 2 if fc >= 2 else 1, 1)

    def forward(self, x, k):
        t = self.time_mlp(k)
        for res1, res2, down in self.blocks:
            x = down(res2(res1(x, t), t))
        x = self.mid_down2(self.mid2(self.mid_down1(self.mid1(x, t)), t))
        # flatten in JAX's [H, C] order so the copied fc1 weights line up
        h = torch.cat([x.transpose(1, 2).reshape(x.shape[0], -1), t], dim=-1)
        return self.fc2(mish(self.fc1(h)))[:, 0]


# ------------------------------------------------------------------ weights from JAX


def _copy(module: nn.Module, tree: dict) -> None:
    """Load our flax parameter dict (same attribute names) into the torch module."""
    for name, sub in tree.items():
        key = str(name)
        target = module[int(key)] if isinstance(module, nn.ModuleList) else getattr(module, key)
        if isinstance(target, (nn.Conv1d, nn.ConvTranspose1d)) and set(sub) == {"conv"}:
            sub = sub["conv"]  # our Downsample / Upsample wrap one conv
        if isinstance(sub, dict) and "kernel" in sub and not isinstance(sub["kernel"], dict):
            _load_layer(target, sub)
        elif isinstance(sub, dict) and "scale" in sub and not isinstance(sub["scale"], dict):
            target.weight.data = torch.from_numpy(np.asarray(sub["scale"], np.float32).copy())
            if getattr(target, "bias", None) is not None and "bias" in sub:
                target.bias.data = torch.from_numpy(np.asarray(sub["bias"], np.float32).copy())
        else:
            _copy(target, sub)


def _load_layer(layer: nn.Module, p: dict) -> None:
    w = np.asarray(p["kernel"], np.float32)
    if isinstance(layer, nn.Linear):
        w = w.T  # [in, out] -> [out, in]
    elif isinstance(layer, nn.ConvTranspose1d):
        w = w[::-1].transpose(1, 2, 0)  # ours correlates the dilated input: flip for torch
    else:
        w = w.transpose(2, 1, 0)  # [k, in, out] -> [out, in, k]
    # contiguous: a transposed view keeps numpy's strides, and torch's conv then copies the whole
    # weight into its own layout on every call (about 0.9 GB per DDPM-10 plan of the paper U-Net)
    layer.weight.data = torch.from_numpy(np.array(w, np.float32, order="C"))  # a writable copy
    if p.get("bias") is not None and layer.bias is not None:
        layer.bias.data = torch.from_numpy(np.asarray(p["bias"], np.float32).copy())


def from_jax(dcfg, params: dict, transition_dim: int):
    """(TemporalUNet, ValueNet) in eval mode holding our JAX parameters."""
    if dcfg.unet.state_cond:
        raise NotImplementedError(
            "the PyTorch reference is the authors' U-Net: it has no state conditioning "
            "(UNetConfig.state_cond); benchmark a planner without it"
        )
    unet = TemporalUNet(transition_dim, dcfg.unet)
    value = ValueNet(transition_dim, dcfg.horizon, dcfg.unet)
    _copy(unet, _plain(params["denoiser"]))
    _copy(value, _plain(params["value"]))
    for net in (unet, value):  # autograd tracks the guided sample only, never the weights
        net.requires_grad_(False)
    return unet.eval(), value.eval()


def _plain(tree):
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return {str(i): _plain(v) for i, v in enumerate(tree)}
    return tree


# ------------------------------------------------------------------ the sampling loop


class TorchSampler:
    """Guided DDPM / DDIM sampling of N candidates, one Python iteration per reverse step:
    R_nn guidance by autograd, inpainting of the current state, x0 prediction, posterior step.

    Eager best practice: the weights never require grad (``from_jax``), so autograd records the
    value net's graph for the sample alone; the denoiser, the posterior step and the ranking run
    under ``torch.inference_mode`` (no autograd bookkeeping at all); the schedule's coefficients
    are tensors made once; intra-op threads are the caller's (``torch.set_num_threads``).
    ``unet`` / ``value`` may be ``torch.compile``d modules (the second baseline of ``make bench``).
    """

    def __init__(self, unet, value, sched, steps: np.ndarray, method: str, action_dim: int):
        self.unet, self.value, self.steps, self.method = unet, value, list(steps), method
        self.action_dim = action_dim
        f = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
        self.c1, self.c2 = f(sched.posterior_mean_coef1), f(sched.posterior_mean_coef2)
        self.logvar = f(sched.posterior_log_variance_clipped)
        self.abar = f(sched.alphas_cumprod)

    def plan(self, s_now: torch.Tensor, n: int, horizon: int, guidance: float, x=None):
        """s_now [Do] in diffusion space -> the best of n plans [H, Dx] (channels last)."""
        dx = self.action_dim + s_now.shape[0]
        if x is None:
            x = torch.randn(n, dx, horizon)
        x[:, self.action_dim :, 0] = s_now
        for i, k in enumerate(self.steps):
            kk = torch.full((n,), k, dtype=torch.long)
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self.value(xg, kk).sum(), xg)
            x = x + guidance * g
            x[:, self.action_dim :, 0] = s_now
            with torch.inference_mode():
                x0 = self.unet(x, kk)
                if self.method == "ddpm":
                    noise = torch.randn_like(x) if k > 0 else torch.zeros_like(x)
                    x = self.c1[k] * x0 + self.c2[k] * x + torch.exp(0.5 * self.logvar[k]) * noise
                else:
                    k_prev = self.steps[i + 1] if i + 1 < len(self.steps) else -1
                    a, a_prev = self.abar[k], (self.abar[k_prev] if k_prev >= 0 else 1.0)
                    eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
                    x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
            x = x.clone()  # an ordinary tensor again: the next step's gradient may record it
            x[:, self.action_dim :, 0] = s_now
        if n == 1:  # nothing to rank (as the authors' GuidedPolicy)
            return x[0].T
        with torch.inference_mode():
            r = self.value(x, torch.zeros(n, dtype=torch.long))
        return x[int(torch.argmax(r))].T

"""Speed on a CPU, against a plain PyTorch loop written here, in the same run.

    python benchmarks/throughput.py [--train-steps 3000] [--quality-seconds 20] [--sample-steps 10 20]

The reference ("plain") is what a reader would write from a tutorial: a 3×128 ReLU MLP on
(x, t/T), Adam, L_simple with the schedule tables gathered per batch, and a 1000-step
ancestral sampler, all in readable eager PyTorch (no EMA, no clipping).  Measured:

  * training steps/s (batch 128) of the plain loop, of ``ddpm_lite.training.train`` eager,
    and of ``train(compile=True)`` (the compiled whole step, :mod:`ddpm_lite.training.step`):
    rates over the steps after the first 20 % of each run, so compilation and warm-up are
    excluded (the compile time is reported separately);
  * 5000 points: the plain loop's 1000-step sampler against ddpm_lite's DPM-Solver++(2M) at
    each ``--sample-steps`` K, with sliced W2 of both against the test points, each model
    trained for ``--quality-seconds`` by its own loop (ours compiled);
  * images/s of 300 digits with the U-Net and DPM-Solver++(2M) at 20 calls, fp32 and under
    bf16 autocast (untrained weights: speed only).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import time

from _common import THREADS, emit, setup

import torch  # noqa: E402
from torch import nn  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS  # noqa: E402
from ddpm_lite.data.metrics import sliced_wasserstein2, swiss_roll_benchmark_data  # noqa: E402
from ddpm_lite.nets import MLPDenoiser, UNet  # noqa: E402
from ddpm_lite.training import train  # noqa: E402

T = 1000


class PlainMLP(nn.Module):
    """The tutorial model: ε̂ = MLP([x, t/T]) with three hidden ReLU layers of 128."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                 nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, (t.float() / T)[:, None]], dim=1))


def plain_train(data: torch.Tensor, steps: int | None, seconds: float | None, seed: int = 0):
    """The plain loop; returns (model, steps done, steps/s after the first 20 % of the steps)."""
    torch.manual_seed(seed)
    betas = torch.linspace(1e-4, 0.02, T)
    alpha_bars = torch.cumprod(1 - betas, 0)
    model = PlainMLP()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    marks, i, t0 = [], 0, time.perf_counter()
    while (steps is None or i < steps) and (seconds is None or time.perf_counter() - t0 < seconds):
        x0 = data[torch.randint(0, len(data), (128,))]
        t = torch.randint(0, T, (128,))
        noise = torch.randn_like(x0)
        ab = alpha_bars[t][:, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        loss = ((model(xt, t) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        i += 1
        marks.append(time.perf_counter())
    return model, i, late_rate(marks)


def late_rate(times: list[float]) -> float:
    """Steps/s over the last 80 % of the steps whose end times are ``times``."""
    k = len(times) // 5
    return (len(times) - 1 - k) / (times[-1] - times[k])


@torch.no_grad()
def plain_sample(model: nn.Module, n: int, seed: int = 1) -> torch.Tensor:
    """Algorithm 2 written out, σ_t² = β_t."""
    g = torch.Generator().manual_seed(seed)
    betas = torch.linspace(1e-4, 0.02, T)
    alphas = 1 - betas
    alpha_bars = torch.cumprod(alphas, 0)
    x = torch.randn(n, 2, generator=g)
    for t in range(T - 1, -1, -1):
        eps = model(x, torch.full((n,), t))
        x = (x - betas[t] / (1 - alpha_bars[t]).sqrt() * eps) / alphas[t].sqrt()
        if t > 0:
            x = x + betas[t].sqrt() * torch.randn(n, 2, generator=g)
    return x


def ours_train(diffusion, data, steps=None, seconds=None, compile=False, seed=0):
    """ddpm_lite's train(); returns (result, steps/s after the first 20 %, seconds to the first log)."""
    log: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    r = train(MLPDenoiser(T=T), diffusion, data, steps=steps, seconds=seconds, lr=2e-3, device="cpu", seed=seed,
              progress=False, log_every=10, compile=compile, callback=lambda ev, s, info: log.append((time.perf_counter(), s)))
    k = len(log) // 5
    rate = (log[-1][1] - log[k][1]) / (log[-1][0] - log[k][0])
    return r, rate, log[0][0] - t0


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-steps", type=int, default=3000)
    p.add_argument("--quality-seconds", type=float, default=20.0)
    p.add_argument("--sample-steps", type=int, nargs="+", default=[10, 20, 50])
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--threads", type=int, default=THREADS)
    args = p.parse_args()
    threads = setup(args.threads)
    diffusion = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None)
    train_pts, test_pts = swiss_roll_benchmark_data()
    out: dict = {"benchmark": "throughput", "threads": threads}

    # Training speed, all three in one run, alternating so load drifts hit each alike.
    _, _, plain_rate = plain_train(train_pts, args.train_steps, None)
    _, eager_rate, _ = ours_train(diffusion, train_pts, steps=args.train_steps)
    _, compiled_rate, first_log_s = ours_train(diffusion, train_pts, steps=args.train_steps, compile=True)
    out.update({"plain_steps_per_s": round(plain_rate, 1), "eager_steps_per_s": round(eager_rate, 1),
                "compiled_steps_per_s": round(compiled_rate, 1), "compile_s": round(first_log_s, 1),
                "compiled_over_plain": round(compiled_rate / plain_rate, 2),
                "eager_over_plain": round(eager_rate / plain_rate, 2)})

    # 5000 points: each loop trains for the same wall time, then samples.
    plain_model, plain_steps, _ = plain_train(train_pts, None, args.quality_seconds)
    r, _, _ = ours_train(diffusion, train_pts, seconds=args.quality_seconds, compile=True)
    x, plain_s = timed(lambda: plain_sample(plain_model, 5000))
    sw_plain = sliced_wasserstein2(x, test_pts)
    out.update({"quality_seconds": args.quality_seconds, "plain_quality_steps": plain_steps,
                "ours_quality_steps": r.steps, "plain_5000x1000_s": round(plain_s, 2),
                "plain_sw2": round(sw_plain, 4)})
    x, anc_s = timed(lambda: diffusion.sample(r.ema_model, (5000, 2), generator=torch.Generator().manual_seed(1)))
    out.update({"ours_ancestral_1000_s": round(anc_s, 2), "ours_ancestral_1000_sw2": round(sliced_wasserstein2(x, test_pts), 4)})
    for k in args.sample_steps:
        x, s = timed(lambda k=k: diffusion.dpm_solver_sample(r.ema_model, (5000, 2), steps=k,
                                                         generator=torch.Generator().manual_seed(1)))
        sw = sliced_wasserstein2(x, test_pts)
        out[f"ours_dpm{k}"] = {"s": round(s, 3), "sw2": round(sw, 4), "speedup_vs_plain": round(plain_s / s, 1),
                               "sw2_over_plain": round(sw / sw_plain, 3)}

    if not args.skip_digits:
        digits_diff = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=DIGITS_LEVELS)
        torch.manual_seed(0)
        unet = UNet(T=T).eval()
        gen = torch.Generator().manual_seed(0)
        def few():
            return digits_diff.dpm_solver_sample(unet, (300, 1, 8, 8), steps=20, generator=gen)

        few()  # warm-up: oneDNN builds its convolution kernels on the first calls
        _, fp32_s = timed(few)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            few()
            _, bf16_s = timed(few)
        out.update({"digits_unet_300x20_fp32_s": round(fp32_s, 2), "digits_fp32_images_per_s": round(300 / fp32_s, 1),
                    "digits_unet_300x20_bf16_s": round(bf16_s, 2), "digits_bf16_images_per_s": round(300 / bf16_s, 1)})
    emit(out)


if __name__ == "__main__":
    main()

"""GPU checks for ddpm_lite (CUDA only; without CUDA it prints one JSON line saying so, exit 0).

    python benchmarks/gpu_check.py

On CUDA it checks, and reports in one JSON line:
  * the device-aware unit tests (model shapes, "training reduces the loss") rerun with
    DDPM_LITE_TEST_DEVICE=cuda;
  * the model/data/training path on the GPU: U-Net and MLP forward shapes, 30 training
    steps with checkpoints that load back on the CPU;
  * bf16 autocast: finite loss and gradients, and gradient direction close to fp32 on the
    same batch, t and ε (cosine similarity);
  * sampling: 4000 swiss-roll samples from one model drawn on the GPU and on the CPU agree
    in mean and std within 5 Monte-Carlo standard errors;
  * images/s for training steps and for one sampling step at a few batch sizes.
Exit code 1 if a check fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit

import torch  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.cli import load_run  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS, digits, swiss_roll  # noqa: E402
from ddpm_lite.nets import MLPDenoiser, UNet  # noqa: E402
from ddpm_lite.training import train  # noqa: E402


def flat_grad(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])


def main() -> int:
    if not torch.cuda.is_available():
        emit({"benchmark": "gpu_check", "cuda": False, "skipped": "no CUDA device; nothing to check"})
        return 0
    dev = torch.device("cuda")
    out: dict = {"benchmark": "gpu_check", "cuda": True, "device_name": torch.cuda.get_device_name(dev)}
    failures: list[str] = []
    T = 1000
    ddiff = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=DIGITS_LEVELS)
    pdiff = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None)
    train_digits = digits("train")

    # 0. the device-aware unit tests, rerun on the GPU
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DDPM_LITE_TEST_DEVICE": "cuda", "PYTHONPATH": str(root / "src")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_models.py", "tests/test_training.py", "-k", "shape or reduces"],
                          cwd=root, env=env, capture_output=True, text=True)
    out["unit_tests_on_gpu"] = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    if proc.returncode != 0:
        failures.append("unit tests on the GPU")

    # 1. shapes on the GPU
    for c, s, mult in ((1, 8, (1, 2)), (3, 16, (1, 2)), (3, 32, (1, 2, 2))):
        m = UNet(in_channels=c, image_size=s, channel_mult=mult, attention_resolutions=(s // 2,), T=T).to(dev)
        y = m(torch.randn(4, c, s, s, device=dev), torch.randint(1, T + 1, (4,), device=dev))
        if y.shape != (4, c, s, s) or y.device.type != "cuda":
            failures.append(f"unet shape {c}x{s}")

    # 2. training + checkpoint on the GPU, loaded back on the CPU
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        r = train(UNet(T=T), ddiff, train_digits, steps=30, device="cuda", checkpoint_dir=tmp, progress=False,
                  log_every=10)
        out["train_losses_finite"] = all(torch.isfinite(torch.tensor(v)) for _, v in r.losses)
        model_cpu, _, state, _ = load_run(tmp, "cpu")
        same = all(torch.equal(a.cpu(), b) for a, b in zip(r.ema_model.state_dict().values(),
                                                            model_cpu.state_dict().values()))
        out["checkpoint_roundtrip"] = bool(same and state["step"] == 30)
        if not (out["train_losses_finite"] and out["checkpoint_roundtrip"]):
            failures.append("cuda training/checkpoint")

    # 3. bf16 autocast vs fp32 gradients on the same batch, t and ε
    torch.manual_seed(0)
    model = UNet(T=T).to(dev)
    with torch.no_grad():  # give the zero-initialised layers weight so gradients are informative
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0, 0.02)
    x0 = train_digits[:256].to(dev)
    g = torch.Generator(device=dev).manual_seed(0)
    t = torch.randint(1, T + 1, (256,), device=dev, generator=g)
    noise = torch.randn(x0.shape, device=dev, generator=g)
    grads, losses = {}, {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = ddiff.loss_simple(model, x0, t=t, noise=noise).float().mean()
        loss.backward()
        grads[name], losses[name] = flat_grad(model), float(loss)
    cos = float(torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0))
    out.update({"bf16_loss": losses["bf16"], "fp32_loss": losses["fp32"], "bf16_grad_cosine": round(cos, 5),
                "bf16_finite": bool(torch.isfinite(grads["bf16"]).all() and abs(losses["bf16"]) < float("inf"))})
    if not (out["bf16_finite"] and cos > 0.99 and abs(losses["bf16"] - losses["fp32"]) < 0.02 * losses["fp32"] + 1e-3):
        failures.append("bf16 autocast")
    torch.manual_seed(0)
    r16 = train(UNet(T=T), ddiff, train_digits, steps=50, device="cuda", amp="bf16", progress=False, log_every=10)
    if not all(v == v and abs(v) < 1e6 for _, v in r16.losses):
        failures.append("bf16 training loss")

    # 4. GPU vs CPU sampling statistics from one trained 2-D model
    pts = swiss_roll(20000)
    torch.manual_seed(0)
    rp = train(MLPDenoiser(T=T), pdiff, pts, steps=1500, lr=2e-3, device="cuda", progress=False)
    n = 4000
    with torch.no_grad():
        xg = pdiff.sample(rp.ema_model, (n, 2), generator=torch.Generator(device=dev).manual_seed(1), device=dev).cpu()
        xc = pdiff.sample(rp.ema_model.cpu(), (n, 2), generator=torch.Generator().manual_seed(2), device="cpu")
    se_mean = (xc.var(0) / n + xg.var(0) / n).sqrt()
    se_std = (xc.std(0) ** 2 / (2 * n) + xg.std(0) ** 2 / (2 * n)).sqrt()  # Gaussian approx. of std's s.e.
    z_mean = ((xg.mean(0) - xc.mean(0)).abs() / se_mean).max().item()
    z_std = ((xg.std(0) - xc.std(0)).abs() / se_std).max().item()
    out.update({"sampling_mean_z": round(z_mean, 2), "sampling_std_z": round(z_std, 2)})
    if z_mean > 5 or z_std > 5:
        failures.append("gpu/cpu sampling statistics")

    # 5. throughput
    speed = {}
    for shape, ch in (((8, 8), 1), ((32, 32), 3)):
        data = torch.rand(4096, ch, *shape) * 2 - 1
        diff = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None)
        for bs in (128, 512, 2048):
            torch.manual_seed(0)
            m = UNet(in_channels=ch, image_size=shape, channel_mult=(1, 2) if shape[0] == 8 else (1, 2, 2),
                     base_channels=16 if shape[0] == 8 else 64,
                     attention_resolutions=() if shape[0] == 8 else (8,), T=T)
            train(m, diff, data, steps=5, batch_size=bs, device="cuda", progress=False)  # warm-up
            torch.cuda.synchronize()
            r = train(m, diff, data, steps=30, batch_size=bs, device="cuda", progress=False, amp="bf16")
            torch.cuda.synchronize()
            xt = torch.randn(bs, ch, *shape, device=dev)
            tt = torch.full((bs,), 500, device=dev)
            with torch.no_grad():
                m.eval()(xt, tt)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(20):
                    m(xt, tt)
                torch.cuda.synchronize()
                fwd = (time.perf_counter() - t0) / 20
            key = f"{shape[0]}px_{ch}ch_bs{bs}"
            speed[key] = {"train_img_per_s": round(r.steps_per_second * bs), "sample_step_img_per_s": round(bs / fwd)}
    out["throughput"] = speed
    out["failures"] = failures
    emit(out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

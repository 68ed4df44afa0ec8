"""Controlled experiments for the chapters "The theory at work".

:func:`train_and_evaluate` runs one experiment — train a fresh digits ε-model with a fixed
step budget and seed, then measure sample quality and the bound — so that chapter 9 can
compare settings that differ in one thing only.  The rest are its set-up helpers.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import checks
from ..diffusion import GaussianDiffusion
from ..sampling import SamplerConfig, SamplerKind
from ..schedule import NoiseSchedule

__all__ = [
    "scaled_linear_schedule",
    "digits_eps_model",
    "code_of",
    "code_excerpt",
    "pixel_categorical_bpd",
    "sample_images",
    "confident_share",
    "ExperimentResult",
    "train_and_evaluate",
]


# ---------------------------------------------------------------------------- set-up helpers
def scaled_linear_schedule(T: int = 1000) -> NoiseSchedule:
    """The linear schedule of Ho et al. (β from 1e−4 to 0.02 at T = 1000) rescaled to T steps.

    β_1 = 1e−4·1000/T and β_T = 0.02·1000/T, as in Nichol & Dhariwal's code: the chain then
    adds about the same total noise whatever T is (ᾱ_T stays near 4e−5 for T ≥ 100),
    whereas keeping β fixed and shortening T leaves signal at the end (chapter 1).
    Valid for 21 ≤ T ≤ 10⁶ (for smaller T, β_T would reach 1).
    """
    T = checks.integer("T", T, 21, hint="The rescaled linear schedule needs β_T = 20/T < 1.")
    scale = 1000.0 / T
    return NoiseSchedule.linear(int(T), 1e-4 * scale, 0.02 * scale)


def digits_eps_model(T: int, kind: str = "mlp", seed: int = 0) -> nn.Module:
    """A fresh ε-model for the 8×8 digits, initialised from ``seed``.

    ``kind="mlp"``: ``MLPDenoiser(dim=64, hidden=256, depth=3)`` on the flattened images
    (the CPU default of the chapters); ``kind="unet"``: the package's small U-Net.
    """
    from ..nets.mlp import MLPDenoiser
    from ..nets.unet import UNet

    checks.choice("kind", kind, ("mlp", "unet"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "mlp":
            return MLPDenoiser(dim=64, hidden=256, depth=3, T=T, data_shape=(1, 8, 8))
        return UNet(T=T)


def code_of(func: object) -> str:
    """Source of a function or method without its docstring, dedented (for showing next to the algorithm)."""
    try:
        src = textwrap.dedent(inspect.getsource(func))
    except (TypeError, OSError) as exc:
        raise ValueError(f"cannot read the source of {func!r}: {exc}") from None
    node = ast.parse(src).body[0]
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines = src.splitlines()
        doc = body[0]
        src = "\n".join(lines[: doc.lineno - 1] + lines[doc.end_lineno:])
    return src


def code_excerpt(func: object, start: str, stop: str) -> str:
    """The contiguous lines of ``func``'s source from the first containing ``start`` to the
    next containing ``stop`` (both included), dedented, under a comment naming where they are.

    For showing the few lines that implement a formula next to it, without the argument
    checks around them.  Raises ``ValueError`` when a marker is not found, so a chapter
    whose excerpt no longer matches the package fails to build instead of showing stale code.
    """
    lines, first = inspect.getsourcelines(func) if callable(func) else ([], 0)
    if not lines:
        raise ValueError(f"cannot read the source of {func!r}")
    try:
        i = next(k for k, line in enumerate(lines) if start in line)
        j = next(k for k in range(i, len(lines)) if stop in lines[k])
    except StopIteration:
        raise ValueError(f"{func.__qualname__}: no lines from {start!r} to {stop!r}; "
                         "update the excerpt markers to the current source.") from None
    path = inspect.getsourcefile(func) or "?"
    where = path[path.rfind("ddpm_lite"):] if "ddpm_lite" in path else path
    body = textwrap.dedent("".join(lines[i:j + 1])).rstrip("\n")
    return f"# {func.__qualname__}, {where} lines {first + i}-{first + j}\n{body}"


def pixel_categorical_bpd(train_levels: torch.Tensor, test_levels: torch.Tensor, num_levels: int,
                          pseudocount: float = 1.0) -> float:
    """Bits/dim on ``test`` of independent per-pixel categoricals fitted on ``train``.

    Each pixel i gets P_i(k) = (n_ik + a)/(N + K·a) over the K = ``num_levels`` levels,
    with n_ik the train count and a = ``pseudocount`` (add-a smoothing, so no test level
    has probability 0).  Inputs are integer level tensors (N, ...) in 0..K−1; returns the
    mean of −log₂ P_i(x_i) over test pixels.
    """
    checks.integer("num_levels", num_levels, 2)
    checks.number("pseudocount", pseudocount, 0.0, lo_open=True, hint="(0 would give unseen levels probability 0.)")
    tr, te = train_levels.long().flatten(1), test_levels.long().flatten(1)
    if tr.shape[1] != te.shape[1]:
        raise ValueError(f"train and test must have the same number of pixels, got {tr.shape[1]} and {te.shape[1]}.")
    for name, x in (("train_levels", tr), ("test_levels", te)):
        if x.numel() and (x.min() < 0 or x.max() >= num_levels):
            raise ValueError(f"{name} must hold integer levels in 0..{num_levels - 1}, found [{int(x.min())}, {int(x.max())}].")
    counts = torch.zeros(tr.shape[1], num_levels, dtype=torch.float64)
    counts.scatter_add_(1, tr.T, torch.ones_like(tr.T, dtype=torch.float64))
    log_p = torch.log(counts + pseudocount) - math.log(tr.shape[0] + num_levels * pseudocount)
    return float(-log_p.gather(1, te.T).mean() / math.log(2.0))


def sample_images(diffusion: GaussianDiffusion, model: nn.Module, n: int, seed: int,
                  sampler: SamplerKind = "ancestral", steps: int | None = None) -> torch.Tensor:
    """n samples shaped like the 8×8 digits from ``model``, with a fresh generator seeded ``seed``.

    ``sampler`` is any of :data:`ddpm_lite.sampling.SAMPLER_KINDS` (``"ancestral"``: Algorithm 2,
    σ_t² from ``diffusion.variance``; ``"ddim"``: η = 0), on ``steps`` model calls (its default when None).
    """
    how = SamplerConfig(sampler, None if sampler == "ancestral" else steps)
    return diffusion.sample(model, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed), sampler=how)


def confident_share(images: torch.Tensor, level: float = 0.9) -> float:
    """Share of 8×8 digit images that the FD's classifier puts in one class with probability ≥ ``level``.

    The classifier is :func:`ddpm_lite.data.metrics.digit_classifier` (trained on the train split,
    ≈ 97 % test accuracy); images are model-range (N, 1, 8, 8), clamped to [−1, 1] first.
    A second, readable measure of sample quality next to the FD: real test digits score
    about 0.96 at ``level`` = 0.9, unstructured noise close to 0.
    """
    from ..data.metrics import digit_classifier

    checks.number("level", level, 0.0, 1.0)
    x = torch.as_tensor(images).detach().cpu().float()
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"images must have shape (N, 1, 8, 8), got {tuple(x.shape)}.")
    with torch.no_grad():
        p = digit_classifier()(x.clamp(-1.0, 1.0)).softmax(1)
    return float((p.max(1).values >= level).float().mean())


# ---------------------------------------------------------------------------- one controlled experiment
@dataclass
class ExperimentResult:
    """What :func:`train_and_evaluate` measured.

    ``fd``: the digit-feature Fréchet distance of ``n_samples`` ancestral samples to the
    test split (:func:`ddpm_lite.data.metrics.digits_fd`); ``bpd``: the full bound on the test
    images in bits/dim (None when not computed); ``losses``: (step, training loss) pairs;
    ``details``: ``samples``, and with the bound ``bpd_se`` (standard error over images)
    and ``bound`` (the dict of :meth:`GaussianDiffusion.bits_per_dim`).
    """

    name: str
    model: nn.Module
    diffusion: GaussianDiffusion
    losses: list
    fd: float
    bpd: float | None
    seconds: float
    details: dict = field(default_factory=dict)


def train_and_evaluate(name: str, diffusion: GaussianDiffusion, train_data: torch.Tensor, test_data: torch.Tensor, *,
                       steps: int, seed: int = 0, loss_kind: str = "simple", model_kind: str = "mlp",
                       batch_size: int = 128, lr: float = 1e-3, n_samples: int = 300, bound: bool = True,
                       bound_images: int | None = None, t_sampler: object | None = None) -> ExperimentResult:
    """Train a fresh digits ε-model under one setting, then measure it. Same seed ⇒ same run.

    The model is initialised from ``seed`` and trained with :func:`ddpm_lite.training.train`
    (``steps`` AdamW steps, the batch order, t and ε all drawn from ``seed``); the EMA
    weights are evaluated.  Sample quality: FD of ``n_samples`` ancestral samples (seeded
    ``seed``) to the test split.  Bound: :meth:`GaussianDiffusion.bits_per_dim` on the
    first ``bound_images`` test images (all by default).  Runs on the CPU, so results do
    not depend on the machine's accelerator.  ``t_sampler`` (an
    :class:`ddpm_lite.training.timesteps.ImportanceSampler`) draws t for ``loss_kind`` "vb"/"hybrid".
    """
    from ..data.metrics import digits_fd
    from ..training.loop import train

    start = time.perf_counter()
    model = digits_eps_model(diffusion.T, model_kind, seed)
    res = train(model, diffusion, train_data, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                loss_kind=loss_kind, device="cpu", progress=False, log_every=max(1, steps // 50),
                t_sampler=t_sampler)
    ema = res.ema_model
    samples = sample_images(diffusion, ema, n_samples, seed)
    fd = digits_fd(samples, test_data)
    bpd, details = None, {"samples": samples}
    if bound:
        x = test_data if bound_images is None else test_data[:bound_images]
        b = diffusion.bits_per_dim(ema, x, generator=torch.Generator().manual_seed(seed))
        bpd, per = b["total"], b["per_sample"]
        details.update(bpd_se=float(per.std() / math.sqrt(len(per))) if len(per) > 1 else float("nan"), bound=b)
    return ExperimentResult(name=name, model=ema, diffusion=diffusion, losses=res.losses, fd=fd, bpd=bpd,
                            seconds=time.perf_counter() - start, details=details)

"""Small controlled experiments for the chapters "The theory at work".

Two kinds of helper live here:

* :func:`train_and_evaluate` runs one controlled experiment — train an ε-model with a
  fixed step budget and seed, then measure sample quality and the bound — so that
  chapter 9 can compare settings that differ in one thing only.
* The *exact Gaussian* functions (:func:`optimal_eps_coef`, :func:`linear_reverse_chain`,
  :func:`exact_gaussian_bound`, :func:`exact_gaussian_nll`) treat data x_0 ~ N(0, s²) per
  dimension.  Then q is Gaussian at every step, the best ε-predictor is linear in x_t,
  and the reverse chain p_θ it defines is a linear-Gaussian model whose log-likelihood
  and bound are closed-form expectations: chapter 10 checks the whole story with them.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .diffusion import GaussianDiffusion
from .schedule import NoiseSchedule

__all__ = [
    "scaled_linear_schedule",
    "FlatEpsModel",
    "digits_eps_model",
    "code_of",
    "pixel_categorical_bpd",
    "sample_images",
    "ExperimentResult",
    "train_and_evaluate",
    "optimal_eps_coef",
    "LinearEps",
    "linear_reverse_chain",
    "exact_gaussian_nll",
    "exact_gaussian_bound",
    "optimal_simple_loss",
]

_LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------- set-up helpers
def scaled_linear_schedule(T: int = 1000) -> NoiseSchedule:
    """The linear schedule of Ho et al. (β from 1e−4 to 0.02 at T = 1000) rescaled to T steps.

    β_1 = 1e−4·1000/T and β_T = 0.02·1000/T, as in Nichol & Dhariwal's code: the chain then
    adds about the same total noise whatever T is (ᾱ_T stays near 4e−5 for T ≥ 100),
    whereas keeping β fixed and shortening T leaves signal at the end (chapter 1).
    Valid for 21 ≤ T ≤ 10⁶ (for smaller T, β_T would reach 1).
    """
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 21:
        raise ValueError(f"T must be an integer ≥ 21 for the rescaled linear schedule (β_T = 20/T < 1), got T={T!r}.")
    scale = 1000.0 / int(T)
    return NoiseSchedule.linear(int(T), 1e-4 * scale, 0.02 * scale)


class FlatEpsModel(nn.Module):
    """Runs a vector ε-model (e.g. :class:`~ddpm_lite.models.MLPDenoiser`) on images.

    ``forward(xt, t)`` flattens (batch, C, H, W) to (batch, C·H·W), calls ``inner`` and
    reshapes back, so the diffusion, the samplers and the metrics see images.  For 8×8
    digits an MLP this way is several times cheaper on a CPU than the small U-Net.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = {"kind": "flat", "inner": getattr(inner, "config", None)}

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.inner(xt.flatten(1), t).view_as(xt)


def digits_eps_model(T: int, kind: str = "mlp", seed: int = 0) -> nn.Module:
    """A fresh ε-model for the 8×8 digits, initialised from ``seed``.

    ``kind="mlp"``: :class:`FlatEpsModel` around ``MLPDenoiser(dim=64, hidden=256, depth=3)``
    (the CPU default of the chapters); ``kind="unet"``: the package's small U-Net.
    """
    from .models import MLPDenoiser, UNet

    if kind not in ("mlp", "unet"):
        raise ValueError(f"kind must be 'mlp' or 'unet', got kind={kind!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "mlp":
            return FlatEpsModel(MLPDenoiser(dim=64, hidden=256, depth=3, T=T))
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


def pixel_categorical_bpd(train_levels: torch.Tensor, test_levels: torch.Tensor, num_levels: int,
                          pseudocount: float = 1.0) -> float:
    """Bits/dim on ``test`` of independent per-pixel categoricals fitted on ``train``.

    Each pixel i gets P_i(k) = (n_ik + a)/(N + K·a) over the K = ``num_levels`` levels,
    with n_ik the train count and a = ``pseudocount`` (add-a smoothing, so no test level
    has probability 0).  Inputs are integer level tensors (N, ...) in 0..K−1; returns the
    mean of −log₂ P_i(x_i) over test pixels.
    """
    if num_levels < 2:
        raise ValueError(f"num_levels must be ≥ 2, got {num_levels}.")
    if not pseudocount > 0:
        raise ValueError(f"pseudocount must be > 0 (else unseen levels get probability 0), got {pseudocount}.")
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


def sample_images(diffusion: GaussianDiffusion, model: nn.Module, n: int, seed: int, sampler: str = "ancestral",
                  ddim_steps: int = 50) -> torch.Tensor:
    """n samples shaped like the 8×8 digits from ``model``, with a fresh generator seeded ``seed``.

    ``sampler``: ``"ancestral"`` (Algorithm 2, σ_t² from ``diffusion.variance``) or ``"ddim"``
    (η = 0 on ``ddim_steps`` of the T steps).
    """
    g = torch.Generator().manual_seed(seed)
    if sampler == "ancestral":
        return diffusion.sample(model, (n, 1, 8, 8), generator=g)
    if sampler == "ddim":
        return diffusion.ddim_sample(model, (n, 1, 8, 8), steps=ddim_steps, generator=g)
    raise ValueError(f"sampler must be 'ancestral' or 'ddim', got sampler={sampler!r}.")


# ---------------------------------------------------------------------------- one controlled experiment
@dataclass
class ExperimentResult:
    """What :func:`train_and_evaluate` measured.

    ``fd``: the digit-feature Fréchet distance of ``n_samples`` ancestral samples to the
    test split (:func:`ddpm_lite.metrics.digits_fd`); ``bpd``: the full bound on the test
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
                       bound_images: int | None = None) -> ExperimentResult:
    """Train a fresh digits ε-model under one setting, then measure it. Same seed ⇒ same run.

    The model is initialised from ``seed`` and trained with :func:`ddpm_lite.training.train`
    (``steps`` AdamW steps, the batch order, t and ε all drawn from ``seed``); the EMA
    weights are evaluated.  Sample quality: FD of ``n_samples`` ancestral samples (seeded
    ``seed``) to the test split.  Bound: :meth:`GaussianDiffusion.bits_per_dim` on the
    first ``bound_images`` test images (all by default).  Runs on the CPU, so results do
    not depend on the machine's accelerator.
    """
    from .metrics import digits_fd
    from .training import train

    start = time.perf_counter()
    model = digits_eps_model(diffusion.T, model_kind, seed)
    res = train(model, diffusion, train_data, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                loss_kind=loss_kind, device="cpu", progress=False, log_every=max(1, steps // 50))
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


# ---------------------------------------------------------------------------- exact Gaussian story
def _check_s2(s2: float) -> float:
    if isinstance(s2, bool) or not isinstance(s2, (int, float, np.floating)) or not (math.isfinite(s2) and s2 > 0):
        raise ValueError(f"s2 (the data variance) must be a finite number > 0, got s2={s2!r}.")
    return float(s2)


def optimal_eps_coef(schedule: NoiseSchedule, s2: float) -> np.ndarray:
    """k_t with ε*(x_t, t) = k_t x_t, the MMSE ε-predictor for data x_0 ~ N(0, s²) (float64, length T + 1).

    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε is jointly Gaussian with ε, so
    E[ε | x_t] = Cov(ε, x_t)/Var(x_t) · x_t = √(1 − ᾱ_t)/(ᾱ_t s² + 1 − ᾱ_t) · x_t.
    Index 0 (clean data) is 0.
    """
    s2 = _check_s2(s2)
    a, one_minus = schedule.alpha_bars, schedule.one_minus_alpha_bars
    return np.sqrt(one_minus) / (a * s2 + one_minus)


class LinearEps(nn.Module):
    """The ε-model ε(x_t, t) = k_t x_t for a table k (length T + 1), e.g. :func:`optimal_eps_coef`."""

    def __init__(self, coef: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("coef", torch.as_tensor(np.asarray(coef, dtype=np.float64)))

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        k = self.coef.to(xt.dtype)[t.to(self.coef.device)].to(xt.device)
        return k.view(-1, *([1] * (xt.dim() - 1))) * xt


def linear_reverse_chain(diffusion: GaussianDiffusion, coef: np.ndarray) -> dict[str, np.ndarray]:
    """The reverse chain of a linear ε-model ε(x_t, t) = k_t x_t as a linear-Gaussian model.

    Each step is x_{t−1} = m_t x_t + σ_t z with m_t = (1 − β_t k_t/√(1 − ᾱ_t))/√α_t (the
    ε-form of μ_θ) and σ_t² the diffusion's ``model_variance``.  Starting from
    p(x_T) = N(0, 1), every marginal of p_θ is N(0, v_t) with
    v_{t−1} = m_t² v_t + σ_t² (x_0 includes the decoder's noise σ_1²).
    Returns float64 arrays of length T + 1 (index = timestep): ``m``, ``sigma2`` and ``v``
    (v[0] is the variance of p_θ(x_0)).
    """
    s = diffusion.schedule
    k = np.asarray(coef, dtype=np.float64)
    if k.shape != (s.T + 1,):
        raise ValueError(f"coef must have length T + 1 = {s.T + 1} (index = timestep), got shape {k.shape}.")
    denom = s.sqrt_one_minus_alpha_bars.copy()
    denom[0] = 1.0
    m = (1.0 - s.betas * k / denom) / s.sqrt_alphas
    m[0] = 1.0
    sigma2 = np.array(diffusion.model_variance, dtype=np.float64)
    v = np.empty(s.T + 1)
    v[s.T] = 1.0
    for t in range(s.T, 0, -1):
        v[t - 1] = m[t] ** 2 * v[t] + sigma2[t]
    return {"m": m, "sigma2": sigma2, "v": v}


def exact_gaussian_nll(diffusion: GaussianDiffusion, coef: np.ndarray, s2: float) -> float:
    """E_{x_0 ~ N(0, s²)}[−log p_θ(x_0)] in nats per dimension, exactly.

    p_θ(x_0) = N(0, v_0) (:func:`linear_reverse_chain`), so the expectation is
    ½ log(2π v_0) + s²/(2 v_0).  It is ≥ the data entropy ½ log(2π e s²), with equality iff v_0 = s².
    """
    s2 = _check_s2(s2)
    v0 = linear_reverse_chain(diffusion, coef)["v"][0]
    return 0.5 * (_LOG_2PI + math.log(v0)) + s2 / (2.0 * v0)


def exact_gaussian_bound(diffusion: GaussianDiffusion, coef: np.ndarray, s2: float) -> dict:
    """The bound L_T + Σ_{t≥2} L_{t−1} + L_0 for x_0 ~ N(0, s²), in nats per dimension, exactly.

    With x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, every term is an expectation of a quadratic form:

    * L_T = ½(ᾱ_T s² + (1 − ᾱ_T) − 1 − log(1 − ᾱ_T));
    * L_{t−1} (t ≥ 2) = ½[log(σ_t²/β̃_t) + β̃_t/σ_t² − 1 + E(μ̃_t − m_t x_t)²/σ_t²], with
      μ̃_t − m_t x_t = c0_t x_0 + (ct_t − m_t) x_t and E[x_0²] = s², E[x_0 x_t] = √ᾱ_t s²,
      E[x_t²] = ᾱ_t s² + 1 − ᾱ_t;
    * L_0 = ½ log(2π σ_1²) + E(x_0 − m_1 x_1)²/(2σ_1²) (continuous decoder, num_levels=None).

    Returns ``prior`` (L_T), ``terms`` (array of length T, L_{t−1} at index t − 1, so
    ``terms[0]`` is L_0) and ``total``.
    """
    s2 = _check_s2(s2)
    s = diffusion.schedule
    chain = linear_reverse_chain(diffusion, coef)
    m, sigma2 = chain["m"], chain["sigma2"]
    a, one_minus = s.alpha_bars, s.one_minus_alpha_bars
    T = s.T
    prior = 0.5 * (a[T] * s2 + one_minus[T] - 1.0 - math.log(one_minus[T]))
    t = np.arange(1, T + 1)
    ex0x0, ex0xt, extxt = s2, np.sqrt(a[t]) * s2, a[t] * s2 + one_minus[t]
    c0, d = s.posterior_mean_coef_x0[t], s.posterior_mean_coef_xt[t] - m[t]
    mean_sq = c0**2 * ex0x0 + 2.0 * c0 * d * ex0xt + d**2 * extxt
    post_var = s.posterior_variance[t]
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = 0.5 * (np.log(sigma2[t] / post_var) + post_var / sigma2[t] - 1.0 + mean_sq / sigma2[t])
    # t = 1 is the decoder: x_0 − m_1 x_1 has second moment s² − 2 m_1 √ᾱ_1 s² + m_1² E[x_1²].
    err = s2 - 2.0 * m[1] * np.sqrt(a[1]) * s2 + m[1] ** 2 * extxt[0]
    terms = kl.copy()
    terms[0] = 0.5 * (_LOG_2PI + math.log(sigma2[1])) + err / (2.0 * sigma2[1])
    return {"prior": float(prior), "terms": terms, "total": float(prior + terms.sum())}


def optimal_simple_loss(schedule: NoiseSchedule, s2: float) -> np.ndarray:
    """E‖ε − ε*(x_t, t)‖² per dimension for x_0 ~ N(0, s²): the floor of L_simple at each t.

    The residual variance of regressing ε on x_t: 1 − (1 − ᾱ_t)/(ᾱ_t s² + 1 − ᾱ_t)
    = ᾱ_t s²/(ᾱ_t s² + 1 − ᾱ_t).  Float64, length T + 1; index 0 is 1 (x_0 carries no
    information about ε).
    """
    s2 = _check_s2(s2)
    a, one_minus = schedule.alpha_bars, schedule.one_minus_alpha_bars
    return a * s2 / (a * s2 + one_minus)

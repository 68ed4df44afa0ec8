"""Importance sampling of the timestep t for the bound (Nichol & Dhariwal 2021, §3.3).

The bound's Monte-Carlo estimate T·L_{t−1} with t ~ U{1..T} is unbiased but very noisy: a few
early steps carry most of the bits.  Drawing t with probability p_t and weighting the term by
1/(T p_t) keeps the estimate unbiased for any p with p_t > 0 wherever L_t ≠ 0,

    E_{t~p}[ L_t / (T p_t) ] = Σ_t p_t · L_t / (T p_t) = (1/T) Σ_t L_t = E_{t~U}[ L_t ],

and p_t ∝ √E[L_t²] minimises its variance among such estimators.  E[L_t²] is estimated from
the last ``history`` values seen at each t; until every t has that many, p stays uniform.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import checks

__all__ = ["ImportanceSampler"]


class ImportanceSampler:
    """Draws t ∈ 1..T with p_t ∝ √(mean of the last ``history`` L_t²) and returns the weights 1/(T p_t).

    Parameters
    ----------
    T:
        Number of diffusion steps.
    history:
        Values kept per t (default 10, as in Nichol & Dhariwal's code).
    uniform_mix:
        Share of probability spread uniformly over all t once warmed up (default 0.001), so
        no t is ever starved and every weight stays finite.

    Use: ``t, w = sampler.draw(batch, generator, device)``; weight each sample's loss by w;
    then ``sampler.update(t, terms)`` with the per-sample L_{t−1} that drives p.  The state
    (``state_dict`` / ``load_state_dict``) is two arrays, so a run can carry it.
    """

    def __init__(self, T: int, history: int = 10, uniform_mix: float = 0.001) -> None:
        self.T = checks.integer("T", T, 1)
        self.history = checks.integer("history", history, 1)
        # > 0 keeps every p_t positive, which the unbiasedness argument needs.
        self.uniform_mix = checks.number("uniform_mix", uniform_mix, 0.0, 1.0, lo_open=True,
                                         hint="(e.g. 0.001; it must be > 0 for an unbiased estimate)")
        self._values = np.zeros((self.T + 1, self.history))  # row t: last values of L_t (row 0 unused)
        self._counts = np.zeros(self.T + 1, dtype=np.int64)

    @property
    def warmed_up(self) -> bool:
        """True once every t has ``history`` recorded values."""
        return bool((self._counts[1:] >= self.history).all())

    def probabilities(self) -> np.ndarray:
        """p_1..p_T (float64, length T, sums to 1): uniform until warmed up."""
        if not self.warmed_up:
            return np.full(self.T, 1.0 / self.T)
        w = np.sqrt(np.mean(self._values[1:] ** 2, axis=1))
        if not np.isfinite(w).all() or w.sum() <= 0:
            return np.full(self.T, 1.0 / self.T)
        p = w / w.sum()
        return p * (1.0 - self.uniform_mix) + self.uniform_mix / self.T

    def draw(self, batch: int, generator: torch.Generator | None, device: torch.device | str
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, weights) of one batch: t ~ p on the generator's device, weights 1/(T p_t) as float32."""
        checks.integer("batch", batch, 1)
        p = self.probabilities()
        gen_device = generator.device if generator is not None else torch.device(device)
        probs = torch.tensor(p, dtype=torch.float64, device=gen_device)
        t = torch.multinomial(probs, batch, replacement=True, generator=generator) + 1
        weights = 1.0 / (self.T * probs[t - 1])
        return t.to(device), weights.to(device, torch.float32)

    def update(self, t: torch.Tensor, terms: torch.Tensor) -> None:
        """Record each sample's term L_t at its t (oldest values drop out first)."""
        ts = t.detach().cpu().numpy().astype(np.int64)
        vals = terms.detach().double().cpu().numpy()
        if ts.shape != vals.shape or ts.ndim != 1:
            raise ValueError(f"t and terms must both have shape (batch,), got {ts.shape} and {vals.shape}.")
        if ts.size and (ts.min() < 1 or ts.max() > self.T):
            raise ValueError(f"t must lie in 1..{self.T}, got values from {ts.min()} to {ts.max()}.")
        for ti, val in zip(ts, vals):
            if self._counts[ti] >= self.history:
                self._values[ti, :-1] = self._values[ti, 1:]
                self._values[ti, -1] = val
            else:
                self._values[ti, self._counts[ti]] = val
            self._counts[ti] += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        """The history and counts, for checkpoints."""
        return {"values": self._values.copy(), "counts": self._counts.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""
        values, counts = np.asarray(state["values"], dtype=np.float64), np.asarray(state["counts"], dtype=np.int64)
        if values.shape != self._values.shape or counts.shape != self._counts.shape:
            raise ValueError(f"sampler state is for a different T or history: values {values.shape}, "
                             f"expected {self._values.shape}.")
        self._values, self._counts = values.copy(), counts.copy()

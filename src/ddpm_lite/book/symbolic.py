"""The derivation as sympy objects: each step the book displays, with a machine verdict.

This module is the one place the chapters and the tests import the steps from.  The code
lives beside it, split by idea: the verdict engine and the symbols in :mod:`.verdict`,
chapters 2–3 in :mod:`.elbo`, chapter 4 in :mod:`.posterior`, chapter 5 in
:mod:`.noise_weight` (chapters 11 and 13 in :mod:`.bound` and :mod:`.grid`).  See
:mod:`.verdict` for what a verdict means.
"""

from __future__ import annotations

from .verdict import (
    alpha_t, alpha_prev, abar_prev, beta_t, abar_t, sigma2, x_0, x_t, x_prev, eps, eps_theta, mu_theta,
    RELATIONS, to_free, unit_interval_symbol, Step, check_identity, find_counterexample, provably_positive,
    log_expansion_is_sound, log_normal,
    gaussian_kl, evaluate_on_schedule, format_number,
)
from .elbo import (
    elbo_log_of_product, log_concavity, telescoping_product, telescoping_sum_reference,
    gaussian_kl_by_integration, kl_reference_first_line, kl_corrected_first_line, joint_both_ways,
)
from .posterior import (
    beta_tilde, mu_tilde, mu_tilde_eps, x_t_of_eps, x_0_of_eps, forward_step_in_x_prev, complete_the_square,
    posterior_steps, precision_P, linear_B, P_sym, B_sym, completing_the_square_lines,
    completing_the_square_steps, true_identity, reference_appendix_a, reference_mu_tilde_sqrt,
)
from .noise_weight import (
    mu_theta_eps, loss_weight, loss_weight_reference, kl_constant, reverse_steps, reference_loss_weight,
    mean_difference, noise_prediction_lines, noise_prediction_steps, decoder_gaussian_at_t1,
)

__all__ = [
    "alpha_t", "alpha_prev", "abar_prev", "beta_t", "abar_t", "sigma2", "x_0", "x_t", "x_prev", "eps",
    "eps_theta", "mu_theta", "RELATIONS", "to_free", "unit_interval_symbol", "Step", "check_identity",
    "find_counterexample", "provably_positive", "log_expansion_is_sound", "log_normal", "gaussian_kl",
    "evaluate_on_schedule", "format_number",  # verdict
    "elbo_log_of_product", "log_concavity", "telescoping_product", "telescoping_sum_reference",
    "gaussian_kl_by_integration", "kl_reference_first_line", "kl_corrected_first_line", "joint_both_ways",  # elbo
    "beta_tilde", "mu_tilde", "mu_tilde_eps", "x_t_of_eps", "x_0_of_eps", "forward_step_in_x_prev",
    "complete_the_square", "posterior_steps", "precision_P", "linear_B", "P_sym", "B_sym",
    "completing_the_square_lines", "completing_the_square_steps", "true_identity", "reference_appendix_a",
    "reference_mu_tilde_sqrt",  # posterior
    "mu_theta_eps", "loss_weight", "loss_weight_reference", "kl_constant", "reverse_steps",
    "reference_loss_weight", "mean_difference", "noise_prediction_lines", "noise_prediction_steps",
    "decoder_gaussian_at_t1",  # noise_weight
    "all_steps",
]


def all_steps() -> list[Step]:
    """Every Step this module defines, for the tests that hold all of them to the same rules."""
    steps = [elbo_log_of_product(), log_concavity(), telescoping_product(), telescoping_sum_reference(),
             joint_both_ways(), gaussian_kl_by_integration(), kl_reference_first_line(),
             kl_corrected_first_line(), forward_step_in_x_prev(), true_identity(), reference_mu_tilde_sqrt(),
             reference_loss_weight(), decoder_gaussian_at_t1()]
    steps += completing_the_square_steps() + posterior_steps() + noise_prediction_steps() + reverse_steps()
    return steps + list(reference_appendix_a().values())

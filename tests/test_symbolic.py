"""The derivation's verdicts: correct steps hold, the reference's wrong steps fail at the
counterexamples the pitfalls page prints, and the derived formulas match the arrays the
model trains with."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from ddpm_lite import NoiseSchedule
from ddpm_lite.book import symbolic as S
from ddpm_lite.gaussian import normal_kl

PITFALLS = Path(__file__).resolve().parents[1] / "book" / "pitfalls.md"


# ----------------------------------------------------------------------------- machinery
def test_check_identity_accepts_a_true_identity_and_rejects_a_false_one():
    assert S.check_identity("square", (S.x_t + S.x_0) ** 2, S.x_t**2 + 2 * S.x_t * S.x_0 + S.x_0**2).holds
    step = S.check_identity("wrong square", (S.x_t + S.x_0) ** 2, S.x_t**2 + S.x_0**2)
    assert not step.holds
    point = step.counterexample
    lhs, rhs = step.values
    # The reported values are really the two sides at the reported point.
    assert lhs == ((point[S.x_t] + point[S.x_0]) ** 2) and rhs == point[S.x_t] ** 2 + point[S.x_0] ** 2
    assert lhs != rhs


def test_relations_are_used_before_deciding():
    # 1 − ᾱ_t = 1 − ᾱ_{t−1}(1 − β_t) only holds through RELATIONS.
    assert S.check_identity("abar", S.abar_t, S.abar_prev * (1 - S.beta_t)).holds


def test_counterexample_respects_the_unit_interval():
    found = S.find_counterexample(S.alpha_t, S.alpha_t + S.abar_prev)
    assert found is not None
    point, _ = found
    assert 0 < point[S.alpha_t] < 1 and 0 < point[S.abar_prev] < 1


def test_undecidable_is_an_error_not_a_verdict():
    f = sp.Function("f")(S.x_t)
    with pytest.raises(RuntimeError, match="could not decide"):
        S.check_identity("opaque", f, 2 * f)


def test_forced_log_expansion_cannot_prove_false_identities_for_real_symbols():
    """expand_log(force=True) treats every log argument as positive; for real x these are false."""
    square = S.check_identity("log of a square", sp.log(S.x_t**2), 2 * sp.log(S.x_t))
    assert not square.holds and square.counterexample[S.x_t] < 0
    product = S.check_identity("log of a product", sp.log(S.x_0 * S.x_t), sp.log(S.x_0) + sp.log(S.x_t))
    assert not product.holds
    assert product.counterexample[S.x_0] < 0 and product.counterexample[S.x_t] < 0
    # The same identities for positive symbols are true, and still proved.
    w, v = sp.symbols("w v", positive=True)
    assert S.check_identity("log of a square, w > 0", sp.log(w**2), 2 * sp.log(w)).holds
    assert S.check_identity("log of a product, w, v > 0", sp.log(w * v), sp.log(w) + sp.log(v)).holds


def test_a_step_that_compares_an_expression_with_itself_is_refused():
    with pytest.raises(ValueError, match="with itself"):
        S.check_identity("tautology", S.mu_theta_eps.subs(S.eps_theta, S.eps), S.mu_tilde_eps)


def _step_functions():
    """Every public function of the module whose return annotation mentions Step."""
    import inspect

    for name in S.__all__:
        obj = getattr(S, name)
        if inspect.isfunction(obj) and "Step" in str(inspect.signature(obj).return_annotation):
            if name not in ("check_identity", "all_steps"):
                yield name, obj


def test_all_steps_covers_every_step_function():
    names = {s.name for s in S.all_steps()}
    for fname, fn in _step_functions():
        out = fn()
        steps = out.values() if isinstance(out, dict) else out if isinstance(out, list) else [out]
        missing = [s.name for s in steps if s.name not in names]
        assert not missing, f"{fname} defines steps that all_steps() leaves out: {missing}"


@pytest.mark.parametrize("step", S.all_steps(), ids=lambda s: s.name)
def test_no_step_compares_an_expression_with_itself(step):
    """Structurally identical sides would make the verdict a foregone conclusion."""
    assert sp.srepr(sp.sympify(step.lhs)) != sp.srepr(sp.sympify(step.rhs)), step.name


# Hand mutations: the slip a student (or the reference) could make in each written-out line.
_P, _B = S.precision_P, S.linear_B
SQUARE_MUTATIONS = {
    # the reference's precision 1/β_t + 1/(1 − ᾱ_{t−1}) in place of P
    "the exponent is a quadratic in xₜ₋₁":
        lambda lhs, rhs: rhs + (_P - 1 / S.beta_t - 1 / (1 - S.abar_prev)) / 2 * S.x_prev**2,
    # the leftover constant B²/(2P) forgotten
    "completing the square": lambda lhs, rhs: rhs - S.B_sym**2 / (2 * S.P_sym),
    "P over a common denominator": lambda lhs, rhs: ((1 - S.abar_prev) + S.beta_t) / (S.beta_t * (1 - S.abar_prev)),
    "P by the identity for 1 − ᾱₜ": lambda lhs, rhs: (1 - S.abar_prev) / (S.beta_t * (1 - S.abar_t)),
    "β̃ = 1/P": lambda lhs, rhs: S.beta_t * (1 - S.abar_prev) / ((1 - S.abar_prev) + S.beta_t),
    "μ̃ = B/P = B β̃": lambda lhs, rhs: _B * S.beta_t,
    "multiply B through by βₜ(1 − ᾱₜ₋₁)": lambda lhs, rhs: rhs.subs(S.x_t, S.x_prev),
    "split into the coefficients of x₀ and xₜ": lambda lhs, rhs: rhs.subs(sp.sqrt(S.abar_prev), sp.sqrt(S.alpha_prev)),
}
NOISE_MUTATIONS = {
    "μ̃ₜ − μ_θ is a multiple of ε_θ − ε": lambda lhs, rhs: rhs.subs(S.abar_t, S.abar_prev),
    # x_0 recovered without dividing by √ᾱ_t
    "it vanishes when ε_θ = ε": lambda lhs, rhs: (
        (S.mu_tilde.subs(S.x_0, S.x_t - sp.sqrt(1 - S.abar_t) * S.eps) - S.mu_theta_eps).subs(S.eps_theta, S.eps), rhs),
    "squared and divided by 2σₜ²": lambda lhs, rhs: S.loss_weight_reference * (S.eps - S.eps_theta) ** 2,
}


@pytest.mark.parametrize("lines, mutations", [(S.completing_the_square_lines, SQUARE_MUTATIONS),
                                               (S.noise_prediction_lines, NOISE_MUTATIONS)],
                         ids=["completing-the-square", "noise-prediction"])
def test_each_written_out_line_holds_and_its_mutation_fails(lines, mutations):
    written = lines()
    assert [name for name, _, _ in written] == list(mutations), "every line has its mutation"
    for name, lhs, rhs in written:
        assert S.check_identity(name, lhs, rhs).holds, name
        mutated = mutations[name](lhs, rhs)
        m_lhs, m_rhs = mutated if isinstance(mutated, tuple) else (lhs, mutated)
        assert (m_lhs, m_rhs) != (lhs, rhs), f"{name}: the mutation changed nothing"
        assert not S.check_identity(f"mutated: {name}", m_lhs, m_rhs).holds, name


def test_the_written_out_lines_chain_from_the_exponent_to_the_posterior():
    """Each line starts where the last ended (or from a definition), and they end at β̃ and μ̃."""
    lines = {name: (lhs, rhs) for name, lhs, rhs in S.completing_the_square_lines()}
    assert lines["P by the identity for 1 − ᾱₜ"][0] == lines["P over a common denominator"][1]
    assert lines["multiply B through by βₜ(1 − ᾱₜ₋₁)"][0] == lines["μ̃ = B/P = B β̃"][1]
    assert lines["split into the coefficients of x₀ and xₜ"][0] == lines["multiply B through by βₜ(1 − ᾱₜ₋₁)"][1]
    assert lines["β̃ = 1/P"][1] == S.beta_tilde and lines["split into the coefficients of x₀ and xₜ"][1] == S.mu_tilde
    # The quadratic's coefficients really are P and B: read them off the log-densities.
    exponent = sp.expand(S.to_free(lines["the exponent is a quadratic in xₜ₋₁"][0]))
    poly = sp.Poly(exponent, S.x_prev)
    assert sp.simplify(-2 * poly.coeff_monomial(S.x_prev**2) - S.to_free(S.precision_P)) == 0
    assert sp.simplify(poly.coeff_monomial(S.x_prev) - S.to_free(S.linear_B)) == 0


def test_evaluate_on_schedule_requires_sigma2_values():
    sched = NoiseSchedule.linear(T=10)
    with pytest.raises(ValueError, match="sigma2_values"):
        S.evaluate_on_schedule(S.loss_weight, sched, np.arange(2, 11))


# ----------------------------------------------------------------------------- chapters 02, 03
def test_bound_steps():
    assert S.elbo_log_of_product(T=4).holds
    assert S.log_concavity().holds


def test_telescoping_product_holds_and_sum_fails():
    assert S.telescoping_product(T=5).holds
    step = S.telescoping_sum_reference(T=4)
    assert not step.holds and step.values == (12, 16)


def test_gaussian_kl_by_integration_matches_closed_form_and_torch():
    assert S.gaussian_kl_by_integration().holds
    m1, v1, m2, v2 = 0.3, 0.7, -1.1, 2.5
    closed = float(S.gaussian_kl(m1, v1, m2, v2))
    torch_kl = normal_kl(torch.tensor(m1, dtype=torch.float64), np.log(v1), m2, np.log(v2)).item()
    assert closed == pytest.approx(torch_kl, rel=1e-12)


def test_kl_sign_error():
    wrong = S.kl_reference_first_line()
    assert not wrong.holds
    # At p = q the KL is 0 but the reference's line gives −log(2πe).
    assert float(wrong.values[0]) == pytest.approx(-np.log(2 * np.pi * np.e), rel=1e-12)
    assert wrong.values[1] == 0
    assert S.kl_corrected_first_line().holds


# ----------------------------------------------------------------------------- chapter 04
def test_forward_step_in_x_prev():
    assert S.forward_step_in_x_prev().holds


def test_the_joint_factors_both_ways():
    assert S.joint_both_ways().holds


def test_posterior_steps_all_hold():
    steps = S.posterior_steps()
    assert [s.name for s in steps if not s.holds] == []


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_posterior_formulas_match_schedule_arrays(kind):
    sched = NoiseSchedule.from_name(kind, T=1000)
    t = np.array([2, 3, 10, 100, 500, 999, 1000])
    np.testing.assert_allclose(S.evaluate_on_schedule(S.beta_tilde, sched, t), sched.posterior_variance[t], rtol=1e-9)
    coef_x0 = S.evaluate_on_schedule(sp.diff(S.mu_tilde, S.x_0), sched, t)
    coef_xt = S.evaluate_on_schedule(sp.diff(S.mu_tilde, S.x_t), sched, t)
    np.testing.assert_allclose(coef_x0, sched.posterior_mean_coef_x0[t], rtol=1e-9)
    np.testing.assert_allclose(coef_xt, sched.posterior_mean_coef_xt[t], rtol=1e-9)


def test_appendix_a_errors_cancel():
    ref = S.reference_appendix_a()
    assert not ref["precision"].holds and ref["precision"].values == (12, 11)
    assert not ref["identity"].holds and ref["identity"].values == (sp.Rational(11, 20), sp.Rational(3, 5))
    assert not ref["variance_before"].holds and ref["variance_before"].values == (sp.Rational(1, 12), sp.Rational(1, 11))
    assert ref["variance_after"].holds and ref["excess"].holds and ref["identity_excess"].holds
    assert not ref["mean_before"].holds and ref["mean_after"].holds
    assert not ref["mean_sqrt_alpha_prev"].holds
    assert S.true_identity().holds


def test_mu_tilde_sqrt_slip():
    assert not S.reference_mu_tilde_sqrt().holds


# ----------------------------------------------------------------------------- chapter 05
def test_reverse_steps_all_hold():
    assert [s.name for s in S.reverse_steps() if not s.holds] == []


def test_reference_weight_is_wrong():
    step = S.reference_loss_weight()
    assert not step.holds and step.values == (sp.Rational(10, 9), sp.Rational(10, 99))


@pytest.mark.parametrize("sigma_choice", ["beta", "beta_tilde"])
def test_loss_weight_against_normal_kl(sigma_choice):
    """λ_t ‖ε − ε_θ‖² + C must equal the KL between the posterior and p_θ, per sample."""
    sched = NoiseSchedule.linear(T=200)
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(2, sched.T + 1, (64,), generator=gen)
    x0, eps, eps_theta = (torch.randn(64, generator=gen, dtype=torch.float64) for _ in range(3))
    tt = t.numpy()
    c = {k: torch.from_numpy(np.ascontiguousarray(getattr(sched, k)[tt])) for k in
         ("sqrt_alpha_bars", "sqrt_one_minus_alpha_bars", "posterior_mean_coef_x0", "posterior_mean_coef_xt",
          "posterior_variance", "betas", "sqrt_alphas")}
    xt = c["sqrt_alpha_bars"] * x0 + c["sqrt_one_minus_alpha_bars"] * eps
    mu_post = c["posterior_mean_coef_x0"] * x0 + c["posterior_mean_coef_xt"] * xt
    mu_model = (xt - c["betas"] / c["sqrt_one_minus_alpha_bars"] * eps_theta) / c["sqrt_alphas"]
    var = c["betas"] if sigma_choice == "beta" else c["posterior_variance"]
    kl = normal_kl(mu_post, torch.log(c["posterior_variance"]), mu_model, torch.log(var))
    weight = torch.from_numpy(S.evaluate_on_schedule(S.loss_weight, sched, tt, var.numpy()))
    const = torch.from_numpy(S.evaluate_on_schedule(S.kl_constant, sched, tt, var.numpy()))
    torch.testing.assert_close(kl, weight * (eps - eps_theta) ** 2 + const, rtol=1e-9, atol=1e-12)
    ref = torch.from_numpy(S.evaluate_on_schedule(S.loss_weight_reference, sched, tt, var.numpy()))
    assert not torch.allclose(kl, ref * (eps - eps_theta) ** 2 + const, rtol=1e-3)


# ----------------------------------------------------------------------------- the pitfalls page
def _section(label: str) -> str:
    text = PITFALLS.read_text(encoding="utf-8")
    start = text.index(f"({label})=")
    nxt = re.search(r"^\(pitfall-[a-z0-9-]+\)=", text[start + 1:], flags=re.M)
    return text[start: start + 1 + nxt.start()] if nxt else text[start:]


def _fmt(value: sp.Expr) -> str:
    return f"{float(value):.4g}"


PAGE_CASES = {
    "pitfall-telescoping-sum": lambda: S.telescoping_sum_reference(T=4),
    "pitfall-kl-sign": S.kl_reference_first_line,
    "pitfall-posterior-precision": lambda: S.reference_appendix_a()["precision"],
    "pitfall-abar-identity": lambda: S.reference_appendix_a()["identity"],
    "pitfall-appendix-cancel": lambda: S.reference_appendix_a()["variance_before"],
    "pitfall-mean-x-prev": lambda: S.reference_appendix_a()["mean_before"],
    "pitfall-sqrt-alpha-prev": lambda: S.reference_appendix_a()["mean_sqrt_alpha_prev"],
    "pitfall-mu-tilde-sqrt": S.reference_mu_tilde_sqrt,
    "pitfall-eps-weight": S.reference_loss_weight,
}


@pytest.mark.parametrize("label", sorted(PAGE_CASES))
def test_pitfalls_page_prints_the_computed_counterexample(label):
    """Each pitfall prints both sides at its counterexample to 4 significant digits; a wrong page fails here."""
    step = PAGE_CASES[label]()
    assert not step.holds
    section = _section(label)
    for value in step.values:
        assert _fmt(value) in section, f"{label}: page should show {_fmt(value)}"


def test_step_html_shows_verdict_and_counterexample():
    html = S.reference_loss_weight()._repr_html_()
    assert "FALSE" in html and "1.11111" in html and "0.10101" in html
    assert r"\[" in html and "<em>" not in html
    assert "holds" in S.true_identity()._repr_html_()


def test_pitfalls_page_short_chain_numbers():
    """ᾱ_T and L_T per coordinate for T = 50 (β from 1e-4 to 0.02), as the caveat states them."""
    sched = NoiseSchedule.linear(T=50)
    a = sched.alpha_bars[sched.T]
    per_coord = [float(sched.prior_kl_per_dim(x * x)) for x in (0.0, 1.0)]
    section = _section("pitfall-short-chain")
    assert f"{a:.2f}" == "0.60" and "0.60" in section
    for value in per_coord:
        assert f"{value:.2f}" in section

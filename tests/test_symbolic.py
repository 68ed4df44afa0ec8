"""The derivation's verdicts: correct steps hold, the reference's wrong steps fail at the
counterexamples the pitfalls page prints, and the derived formulas match the arrays the
model trains with."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from ddpm_lite import NoiseSchedule
from ddpm_lite.book import symbolic as S
from ddpm_lite.gaussian import discretized_gaussian_log_likelihood, normal_kl
from scipy import stats

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


_R = sp.Rational


def _product_of_roots(sym: sp.Symbol, a: sp.Rational, b: sp.Rational) -> sp.Expr:
    """A = (s − a)(s − b): negative only on (a, b), which none of the fixed sample points visits."""
    return (sym - a) * (sym - b)


@pytest.mark.parametrize("sym, a, b", [
    (S.x_t, _R(7, 10), _R(8, 10)),          # a real variable
    (S.alpha_t, _R(7, 10), _R(8, 10)),      # a schedule symbol in (0, 1)
    (S.abar_prev, _R(3, 10), _R(4, 10)),    # ᾱ_{t−1}
    (S.alpha_prev, _R(11, 20), _R(3, 5)),   # a variant: another unit symbol, a narrower interval
    (S.sigma2, _R(5, 4), _R(6, 4)),         # a variant: a positive symbol off the grid's 1/2, 2, 3
], ids=["x_t", "alpha_t", "abar_prev", "alpha_prev", "sigma2"])
def test_log_of_a_square_is_refused_where_the_base_can_be_negative(sym, a, b):
    """log(A²) = 2 log A is false where A < 0; the forced expansion must not call it true."""
    A = _product_of_roots(sym, a, b)
    assert not S.log_expansion_is_sound(2 * sp.log(A))
    step = S.check_identity("log of a square", sp.log(A**2), 2 * sp.log(A))
    assert not step.holds
    point = step.counterexample[sym]
    assert a < point < b, "the counterexample sits where A < 0"
    lhs, rhs = (complex(sp.N(v)) for v in step.values)
    assert lhs.imag == 0 and abs(rhs.imag - 2 * math.pi) < 1e-12  # 2 log A = 2 log|A| + 2πi there
    # The same step for a base the assumptions make positive is proved, through the forced path.
    positive = (1 - S.alpha_t) * (S.alpha_t + _R(1, 10))
    assert S.log_expansion_is_sound(sp.log(positive**2)) and not S.provably_positive(A)
    assert S.check_identity("log of a square, positive base", sp.log(positive**2), 2 * sp.log(positive)).holds


def test_many_symbols_still_move_the_first_one():
    """With 7 more symbols the grid has 3⁸ points; the first 300 in product order never change the
    first symbol, so an identity false only off its first value went unseen."""
    a = sp.Symbol("a", real=True)  # sorts first
    others = sp.symbols("y1:8", real=True)
    # Forced expansion would prove this for positive a; for real a it is false at a < 0.
    step = S.check_identity("six or more symbols", sp.log(a**2) + sum(others), 2 * sp.log(a) + sum(others))
    assert not step.holds and step.counterexample[a] < 0
    # No log at all: false everywhere except a ∈ {1, −2}, and a = 1 is a's first sample value.
    found = S.find_counterexample((a - 1) * (a + 2) + sum(others), sum(others))
    assert found is not None and found[0][a] not in (1, -2)


def test_a_true_identity_that_only_forcing_proves_is_undecided_not_holds():
    """log(x⁴) = 2 log(x²) holds for real x ≠ 0, but forcing it needs x² > 0, which x = 0 breaks:
    unproved, and no counterexample exists, so the verdict is "undecided", never "holds"."""
    with pytest.raises(RuntimeError, match="undecided"):
        S.check_identity("log of a fourth power", sp.log(S.x_t**4), 2 * sp.log(S.x_t**2))


def test_every_step_that_needs_the_forced_expansion_proves_its_log_bases_positive(monkeypatch):
    """The chapter steps that only the forced expansion proves still hold, each with its bases proved."""
    from ddpm_lite.book import bound, verdict

    seen = []
    original = verdict.log_expansion_is_sound
    monkeypatch.setattr(verdict, "log_expansion_is_sound", lambda e: seen.append(original(e)) or seen[-1])
    steps = [S.gaussian_kl_by_integration(), *S.reverse_steps(), *bound.optimal_variance_steps()]
    abar_T = S.unit_interval_symbol(r"\bar{\alpha}_T")  # chapter 3's L_T needs 1 − ᾱ_T > 0
    steps.append(S.check_identity("L_T, one coordinate", S.gaussian_kl(sp.sqrt(abar_T) * S.x_0, 1 - abar_T, 0, 1),
                                  (abar_T * S.x_0**2 - abar_T - sp.log(1 - abar_T)) / 2))
    assert all(step.holds for step in steps)
    assert seen and all(seen), "the forced path was used, and only with every log base proved positive"


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


def _no_sqrt_inverse():
    with sp.evaluate(False):  # x_0 = x_t − √(1 − ᾱ_t) ε, forgetting to divide by √ᾱ_t
        return S.x_t_of_eps.subs(S.x_0, S.x_t - sp.sqrt(1 - S.abar_t) * S.eps)


# The other steps rewritten so that they derive both sides, each with a slip that must fail.
REWRITTEN_MUTATIONS = {
    "the joint, posterior mean with the wrong sign of x_0": (S.joint_both_ways, lambda l, r: (l, r.subs(S.x_0, -S.x_0))),
    "telescoping product missing 1/q_1": (S.telescoping_product, lambda l, r: (sp.Mul(*l.args[:-1], evaluate=False), r)),
    "log'' = -1/w": (S.log_concavity, lambda l, r: (l, -1 / l.variables[0])),
    "x_0 inverted without the sqrt": (lambda: S.posterior_steps()[3], lambda l, r: (_no_sqrt_inverse(), r)),
    "Appendix A: final variance vs the derived one": (
        lambda: S.reference_appendix_a()["variance_after"], lambda l, r: (l.subs(S.abar_t, S.abar_prev), r)),
    "Appendix A: final mean vs the derived one": (
        lambda: S.reference_appendix_a()["mean_after"], lambda l, r: (l.subs(S.x_t, S.x_prev), r)),
    "Appendix A: the excess": (lambda: S.reference_appendix_a()["excess"], lambda l, r: (l, S.beta_t)),
    "t = 1 decoder with beta for beta^2": (S.decoder_gaussian_at_t1, lambda l, r: (l, r.subs(S.beta_t**2, S.beta_t))),
    "C at sigma^2 = beta": (lambda: S.reverse_steps()[1], lambda l, r: (S.kl_constant.subs(S.sigma2, S.beta_t), r)),
}


@pytest.mark.parametrize("name", sorted(REWRITTEN_MUTATIONS))
def test_each_rewritten_step_holds_and_a_mutation_fails(name):
    make, mutate = REWRITTEN_MUTATIONS[name]
    step = make()
    assert step.holds, step.name
    lhs, rhs = mutate(step.lhs, step.rhs)
    assert (lhs, rhs) != (step.lhs, step.rhs), "the mutation changed nothing"
    assert not S.check_identity(f"mutated: {step.name}", lhs, rhs).holds


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
# Every number on book/pitfalls.md is read off the page, section by section, and must be
# exactly the list of numbers computed here: a token "16" does not match "1/16", a number
# the page adds without a computation behind it fails, and so does one it drops.
def _sections() -> dict[str, str]:
    text = PITFALLS.read_text(encoding="utf-8")
    marks = list(re.finditer(r"^\((pitfall-[a-z0-9-]+)\)=", text, flags=re.M))
    out = {"intro": text[:marks[0].start()]}
    for m, nxt in zip(marks, marks[1:] + [None]):
        out[m.group(1)] = text[m.start(): nxt.start() if nxt else len(text)]
    return out


def _numeric_tokens(part: str) -> list[str]:
    """Numbers in one side of a math relation, if that side is only numbers (not a formula)."""
    part = part.replace("−", "-")
    part = re.sub(r"\\[td]?frac12", "1/2", part)
    part = re.sub(r"(\d+(?:\.\d+)?)\s*\\times\s*10\^\{(-?\d+)\}", r"\1e\2", part)
    part = re.sub(r"(?<![\d.])10\^\{(-?\d+)\}", r"1e\1", part)
    part = re.sub(r"\\pm|\\,|\\;|\\!|\\quad", "", part)
    part = re.sub(r"\\[lc]?dots", ",", part).replace(r"\cdot", "*")
    if not re.fullmatch(r"[\d\s.,+\-*/()\[\]e]*", part.strip()):
        return []  # a formula: its constants (the 2 of 2π, the 1 of 1 − ᾱ) are not results
    return re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?(?:/\d+)?", part)


def page_numbers(text: str) -> list[str]:
    """The numbers a reader sees in a section, as tokens: 0.08333, 1/11, 18 000, 3e-7 (for 3×10⁻⁷)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"^\(pitfall-[a-z0-9-]+\)=$", "", text, flags=re.M)
    text = re.sub(r"\{(?:eq|doc|ref|numref)\}`[^`]*`", "", text)
    text = re.sub(r"`[^`]*`", "", text)  # the reference's markup, quoted
    tokens: list[str] = []

    def math(m):
        for part in re.split(r"=|\\approx|\\le|\\ge|<|>", m.group(1)):
            tokens.extend(_numeric_tokens(part))
        return " "

    text = re.sub(r"\$(.+?)\$", math, re.sub(r"\$\$(.*?)\$\$", math, text, flags=re.S))
    text = text.replace("−", "-")
    tokens += [m.group(1) for m in re.finditer(r"(?<![\w./])(\d{1,3}(?: \d{3})+|\d+/\d+|\d+(?:\.\d+)?)(?![\w/])", text)]
    return sorted(tokens)


def test_page_numbers_are_tokens_not_substrings():
    assert page_numbers(r"$q = 1/2, 1/16$ and $\beta_t = 1/10$") == ["1/10", "1/16", "1/2"]
    assert "16" not in page_numbers("the values 1/16 and 0.16")
    assert page_numbers(r"about 18 000, $3\times10^{-7}$, $10^{6}$, $x_{t-1} = 0.5$") == ["0.5", "18 000", "1e6", "3e-7"]
    assert page_numbers(r"$-\log(2\pi e) \approx -2.838$ and `\sqrt{2}`") == ["-2.838"]


def _frac(v) -> str:
    v = sp.nsimplify(v)
    return str(v.p) if v.q == 1 else f"{v.p}/{v.q}"


def _g4(v) -> str:
    return f"{float(v):.4g}"


def _sci1(v: float, up: bool = False) -> str:
    """One significant digit, as 4e-5 (rounded up when the page states a bound)."""
    e = math.floor(math.log10(abs(v)))
    digit = math.ceil(v / 10**e) if up else round(v / 10**e)
    return f"{digit}e{e}"


def _thousands(v: float) -> str:
    """Two significant digits with a space between thousands, as the page writes 18 000."""
    e = math.floor(math.log10(v)) - 1
    return f"{int(round(v / 10**e) * 10**e):,}".replace(",", " ")


def _intro():
    point = S.reference_appendix_a()["identity"].counterexample
    x = S.reference_mu_tilde_sqrt().counterexample
    assert x[S.x_0] == x[S.x_t]  # the page writes x_0 = x_t = 1 once
    return [_frac(point[k]) for k in (S.beta_t, S.abar_prev, S.alpha_t, S.abar_t)] + [_frac(x[S.x_0])]


def _telescoping():
    T = 4
    step = S.telescoping_sum_reference(T=T)
    q = [step.counterexample[k] for k in sorted(step.counterexample, key=str)]
    ratios = [q[t - 2] / q[t - 1] for t in range(2, T + 1)] + [1 / q[0]]  # (2 + 2 + 2) · 2
    return [str(T), "1", str(T)] + [_frac(v) for v in q + ratios + list(step.values)]


def _kl_sign():
    return [_g4(v) for v in S.kl_reference_first_line().values]


def _values_g4(step):
    return [_g4(v) for v in step.values]


def _eps_weight():
    step = S.reference_loss_weight()
    sched = NoiseSchedule.linear(T=1000)
    t = np.array([sched.T, 2])
    ratio = (S.evaluate_on_schedule(S.loss_weight_reference, sched, t, sched.betas[t])
             / S.evaluate_on_schedule(S.loss_weight, sched, t, sched.betas[t]))
    return ([_frac(step.counterexample[S.sigma2])] + [_frac(v) for v in step.values] + _values_g4(step)
            + [str(round(ratio[0])), str(sched.T), _thousands(ratio[1]), "2"])


def _mu_tilde_sqrt():
    sched = NoiseSchedule.linear(T=1000)
    t = np.arange(1, sched.T + 1)
    printed = S.evaluate_on_schedule(sp.diff(S.reference_mu_tilde_sqrt().lhs, S.x_0), sched, t)
    ratio = printed / sched.posterior_mean_coef_x0[t]
    np.testing.assert_allclose(ratio, 1 / np.sqrt(sched.betas[t]), rtol=1e-9)
    return _values_g4(S.reference_mu_tilde_sqrt()) + [str(round(ratio.min())), str(round(ratio.max()))]


def _sqrt_alpha_prev():
    step = S.reference_appendix_a()["mean_sqrt_alpha_prev"]
    return [_frac(step.counterexample[S.alpha_prev])] + _values_g4(step)


def _appendix_cancel():
    step = S.reference_appendix_a()["variance_before"]
    sched = NoiseSchedule.linear(T=1000)
    t = np.arange(1, sched.T + 1)
    one_minus_prev, beta = 1 - sched.alpha_bars_prev[t], sched.betas[t]
    off = beta * one_minus_prev / (one_minus_prev + beta)  # relative error of its intermediate variance
    assert off.argmax() == len(t) - 1  # "at t = T"
    return [_g4(step.values[0]), _frac(step.values[1]), _g4(step.values[1]), str(round(100 * off.max()))]


def _decoder_integrand():
    K, sched = 256, NoiseSchedule.linear(T=1000)
    sigma = math.sqrt(sched.betas[1])
    x = 1 / 255  # an interior level
    true = discretized_gaussian_log_likelihood(torch.tensor([x], dtype=torch.float64), x, math.log(sigma)).exp().item()
    literal = 1 / (math.sqrt(2 * math.pi) * sigma) * 2 / (K - 1)  # density at the centre × bin width
    return [_g4(sigma), str(int(math.log2(K))), _g4(literal), _g4(true)]


def _decoder_limits():
    means, scales = torch.linspace(-50, 50, 41), torch.logspace(-6, 6, 25)
    worst = {}
    for K in (256, 17):
        for dtype in (torch.float32, torch.float64):
            x = torch.linspace(-1.0, 1.0, K, dtype=torch.float64).to(dtype)[:, None, None]
            log_p = discretized_gaussian_log_likelihood(
                x, means.to(dtype)[None, :, None], scales.log().to(dtype)[None, None, :], K)
            err = (log_p.double().exp().sum(0) - 1).abs().max().item()
            worst[dtype] = max(worst.get(dtype, 0.0), err)
    # The upper limit read as x_0 itself: only the left half of each bin, at μ = 0.
    x = np.linspace(-1, 1, 256)
    lower = np.where(x <= -1 + 1 / 510, -np.inf, x - 1 / 255)
    left_halves = float((stats.norm.cdf(x / 0.5) - stats.norm.cdf(lower / 0.5)).sum())
    K = 256
    return (["0", str(K - 1), "-1", "1", _frac(sp.Rational(1, K - 1)), _frac(sp.Rational(2, K - 1)), "1",
             _sci1(worst[torch.float32], up=True), _sci1(worst[torch.float64], up=True),
             str(len(means)), "-50", "50", str(len(scales)), "1e-6", "1e6", str(K), "17", "0", str(K),
             _frac(round(left_halves, 12)), "1"])


def _set_braces():
    return ["0", "1", "255"] * 2


def _short_chain():
    long_, short = NoiseSchedule.linear(T=1000), NoiseSchedule.linear(T=50)
    at_long = [float(long_.prior_kl_per_dim(x * x)) for x in (0.0, 1.0)]
    at_short = [float(short.prior_kl_per_dim(x * x)) for x in (0.0, 1.0)]
    return ([_sci1(long_.betas[1]), _g4(long_.betas[long_.T]), str(long_.T), _sci1(long_.alpha_bars[long_.T]),
             "0", _sci1(max(at_long)), "-1", "1", str(short.T), f"{short.alpha_bars[short.T]:.2f}"]
            + [f"{v:.2f}" for v in at_short])


PAGE_NUMBERS = {
    "intro": _intro,
    "pitfall-telescoping-sum": _telescoping,
    "pitfall-kl-sign": _kl_sign,
    "pitfall-posterior-precision": lambda: [_frac(v) for v in S.reference_appendix_a()["precision"].values],
    "pitfall-abar-identity": lambda: _values_g4(S.reference_appendix_a()["identity"]),
    "pitfall-mean-x-prev": lambda: _values_g4(S.reference_appendix_a()["mean_before"]),
    "pitfall-eps-weight": _eps_weight,
    "pitfall-mu-tilde-sqrt": _mu_tilde_sqrt,
    "pitfall-sqrt-alpha-prev": _sqrt_alpha_prev,
    # one display, one entry: its false integrand and the slips in its limits
    "pitfall-decoder-integrand": lambda: _decoder_integrand() + _decoder_limits(),
    "pitfall-appendix-cancel": _appendix_cancel,
    "pitfall-set-braces": _set_braces,
    "pitfall-short-chain": _short_chain,
}


@pytest.mark.parametrize("label", sorted(_sections()))
def test_every_number_on_the_pitfalls_page_is_computed(label):
    """The section's numbers, read off the page, are exactly the computed ones (a section
    without numbers must stay without)."""
    on_page = page_numbers(_sections()[label])
    computed = sorted(PAGE_NUMBERS[label]()) if label in PAGE_NUMBERS else []
    assert on_page == computed, f"{label}: page shows {on_page}, computed {computed}"


def test_every_section_with_numbers_has_a_computation():
    assert set(PAGE_NUMBERS) <= set(_sections())


def test_page_groups_entries_by_its_own_definitions():
    """A false displayed relation is a mathematical error wherever it came from."""
    text = PITFALLS.read_text(encoding="utf-8")
    errors = text[text.index("## Mathematical errors"): text.index("## Wrong reasoning, right result")]
    for label in ("pitfall-telescoping-sum", "pitfall-kl-sign", "pitfall-posterior-precision",
                  "pitfall-abar-identity", "pitfall-mean-x-prev", "pitfall-eps-weight",
                  "pitfall-mu-tilde-sqrt", "pitfall-sqrt-alpha-prev"):
        assert f"({label})=" in errors, f"{label} is a false relation: file it under mathematical errors"
    refuted = {"pitfall-telescoping-sum": S.telescoping_sum_reference(T=4), "pitfall-kl-sign": S.kl_reference_first_line(),
               "pitfall-posterior-precision": S.reference_appendix_a()["precision"],
               "pitfall-abar-identity": S.reference_appendix_a()["identity"],
               "pitfall-mean-x-prev": S.reference_appendix_a()["mean_before"],
               "pitfall-eps-weight": S.reference_loss_weight(), "pitfall-mu-tilde-sqrt": S.reference_mu_tilde_sqrt(),
               "pitfall-sqrt-alpha-prev": S.reference_appendix_a()["mean_sqrt_alpha_prev"]}
    assert not any(step.holds for step in refuted.values())


def test_step_html_shows_verdict_and_counterexample():
    html = S.reference_loss_weight()._repr_html_()
    assert "FALSE" in html and "1.11111" in html and "0.10101" in html
    assert r"\[" in html and "<em>" not in html
    assert "holds" in S.true_identity()._repr_html_()


def test_prior_symbol_renders_with_its_subscript_closed():
    """Chapter 2 shows this step: p(x_T) must not typeset as p(x_{T)} (issue 22)."""
    tex = sp.latex(S.elbo_log_of_product(T=4).lhs)
    assert "p(x_{T})" in tex and "x_{T)}" not in tex

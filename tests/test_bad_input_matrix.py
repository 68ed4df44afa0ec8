"""The bad-input matrix: every public entry point fed nonsense (see tests/BAD_INPUTS.md).

Each row of :data:`API_CASES` names an entry point, a bad input, the exception type and
words the message must contain (the argument's name, the offending value or what is
allowed).  Beyond type and message, every case checks *where* the error was raised: the
innermost traceback frame must lie inside ``src/ddpm_lite``, so a reader sees our
message and never a traceback from deep inside torch or numpy.  Command-line cases check
for exit code 2 and a single ``error: ...`` line.  Every case runs under an alarm so a
hang fails instead of stalling the suite.

Rows that are not errors (documented behaviour: clamping, capping) are separate tests
at the end of the file.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ddpm_lite
from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite import data as D
from ddpm_lite.runs.checkpoint import CheckpointError, load_checkpoint
from ddpm_lite.cli import main as cli_main
from ddpm_lite.gaussian import discretized_gaussian_log_likelihood, normal_kl
from ddpm_lite.nets import MLPDenoiser, UNet, timestep_embedding
from ddpm_lite.nets.levels import LevelPosteriorDenoiser
from ddpm_lite.nets import build_model
from ddpm_lite.plumbing import resolve_device
from ddpm_lite.training import train

PKG = Path(ddpm_lite.__file__).resolve().parent
SRC = str(PKG.parent)
CASE_SECONDS = 60  # an entry point that takes longer than this on bad input counts as hanging


@pytest.fixture(autouse=True)
def _alarm():
    """Fail (instead of hang) when a case runs past CASE_SECONDS."""
    def on_alarm(signum, frame):  # noqa: ANN001
        raise TimeoutError(f"case ran longer than {CASE_SECONDS} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(CASE_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def assert_clean_error(fn, types, words):
    """``fn()`` raises one of ``types`` from ddpm_lite code, with every word of ``words`` in the message."""
    with pytest.raises(types) as info:
        fn()
    frames = []
    tb = info.tb
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    innermost = Path(frames[-1]).resolve()
    assert PKG in innermost.parents, f"raised from {innermost}, not from ddpm_lite: {info.value!r}"
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in message {msg!r}"
    return msg


# ---------------------------------------------------------------------------- fixtures for the table
S10 = NoiseSchedule.linear(10)
DIFF = GaussianDiffusion(S10, num_levels=None)
DIFF_IMG = GaussianDiffusion(S10, num_levels=17)
X = torch.zeros(4, 2)
T_OK = torch.full((4,), 3)


def zero_eps(xt, t):
    return torch.zeros_like(xt)


def wrong_shape_eps(xt, t):
    return torch.zeros(xt.shape[0], 3)


def numpy_eps(xt, t):
    return np.zeros(tuple(xt.shape))


MLP = MLPDenoiser(dim=2, hidden=8, depth=1, T=10)
UNET = UNet(in_channels=1, image_size=8, base_channels=8, T=10)


def _f(fn, *args, **kwargs):
    return lambda: fn(*args, **kwargs)


# (id, callable, exception types, words the message must contain)
API_CASES = [
    # --- schedules
    ("schedule/T=0", _f(NoiseSchedule.linear, 0), ValueError, ["T", "0", "at least 1"]),
    ("schedule/T negative", _f(NoiseSchedule.cosine, -5), ValueError, ["T", "-5"]),
    ("schedule/T float", _f(NoiseSchedule.linear, 10.5), ValueError, ["T", "10.5", "integer"]),
    ("schedule/T str", _f(NoiseSchedule.quadratic, "100"), ValueError, ["T", "'100'"]),
    ("schedule/T bool", _f(NoiseSchedule.sigmoid, True), ValueError, ["T", "True"]),
    ("schedule/T huge", _f(NoiseSchedule.linear, 10**7), ValueError, ["T=10000000", "maximum"]),
    ("schedule/beta_1 = 0", _f(NoiseSchedule.linear, 10, beta_1=0.0), ValueError, ["beta_1", "0"]),
    ("schedule/beta_T = 1", _f(NoiseSchedule.linear, 10, beta_T=1.0), ValueError, ["beta_T", "1"]),
    ("schedule/beta NaN", _f(NoiseSchedule.quadratic, 10, beta_1=float("nan")), ValueError, ["beta_1", "nan"]),
    ("schedule/beta str", _f(NoiseSchedule.linear, 10, beta_T="0.02"), ValueError, ["beta_T", "'0.02'"]),
    ("schedule/betas empty", _f(NoiseSchedule, []), ValueError, ["T", "0"]),
    ("schedule/betas 2-D", _f(NoiseSchedule, [[0.1, 0.2]]), ValueError, ["betas", "1-D", "(1, 2)"]),
    ("schedule/betas inf", _f(NoiseSchedule, [0.1, math.inf]), ValueError, ["finite", "β_2", "inf"]),
    ("schedule/betas has 0", _f(NoiseSchedule, [0.1, 0.0]), ValueError, ["β_2", "between 0 and 1"]),
    ("schedule/betas has 1", _f(NoiseSchedule, [1.0]), ValueError, ["β_1", "between 0 and 1"]),
    ("schedule/betas strings", _f(NoiseSchedule, ["a", "b"]), ValueError, ["betas", "convert"]),
    ("schedule/betas None", _f(NoiseSchedule, None), ValueError, ["betas"]),
    ("schedule/unknown name", _f(NoiseSchedule.from_name, "cosin", 10), ValueError, ["'cosin'", "linear"]),
    ("schedule/cosine s<0", _f(NoiseSchedule.cosine, 10, s=-0.1), ValueError, ["s=-0.1", "≥ 0"]),
    ("schedule/cosine s=inf", _f(NoiseSchedule.cosine, 10, s=math.inf), ValueError, ["s=inf"]),
    ("schedule/cosine max_beta=1", _f(NoiseSchedule.cosine, 10, max_beta=1.0), ValueError, ["max_beta", "1.0"]),
    ("schedule/cosine max_beta nan", _f(NoiseSchedule.cosine, 10, max_beta=float("nan")), ValueError, ["max_beta", "nan"]),
    ("schedule/check_t 0", _f(S10.check_t, [0]), ValueError, ["t=0", "1..T"]),
    ("schedule/check_t float", _f(S10.check_t, [1.5]), ValueError, ["timesteps", "integers", "float"]),
    ("schedule/prior_kl nan", _f(S10.prior_kl_per_dim, float("nan")), ValueError, ["mean_square", "nan"]),
    ("schedule/prior_kl negative", _f(S10.prior_kl_per_dim, -1.0), ValueError, ["mean_square", "-1.0"]),
    # --- GaussianDiffusion constructor
    ("diffusion/schedule not a schedule", _f(GaussianDiffusion, [0.1, 0.2]), ValueError, ["schedule", "list"]),
    ("diffusion/variance unknown", _f(GaussianDiffusion, S10, variance="learnt"), ValueError, ["variance", "'learnt'"]),
    ("diffusion/num_levels 1", _f(GaussianDiffusion, S10, num_levels=1), ValueError, ["num_levels", "1"]),
    ("diffusion/num_levels float", _f(GaussianDiffusion, S10, num_levels=2.5), ValueError, ["num_levels", "2.5"]),
    # --- q_sample and the posterior
    ("q_sample/t=0", _f(DIFF.q_sample, X, torch.zeros(4, dtype=torch.long)), ValueError, ["t=0", "1..T"]),
    ("q_sample/t=T+1", _f(DIFF.q_sample, X, torch.full((4,), 11)), ValueError, ["t=11", "T=10"]),
    ("q_sample/t float", _f(DIFF.q_sample, X, torch.full((4,), 2.0)), ValueError, ["integers", "float"]),
    ("q_sample/t wrong length", _f(DIFF.q_sample, X, torch.ones(3, dtype=torch.long)), ValueError, ["t", "(4,)", "(3,)"]),
    ("q_sample/t 2-D", _f(DIFF.q_sample, X, torch.ones(4, 1, dtype=torch.long)), ValueError, ["t", "(4, 1)"]),
    ("q_sample/x0 numpy", _f(DIFF.q_sample, np.zeros((4, 2)), T_OK), ValueError, ["x0", "torch.Tensor", "ndarray"]),
    ("q_sample/x0 int", _f(DIFF.q_sample, torch.zeros(4, 2, dtype=torch.long), T_OK), ValueError, ["x0", "floating", "int64"]),
    ("q_sample/x0 1-D", _f(DIFF.q_sample, torch.zeros(4), T_OK), ValueError, ["x0", "batch", "(4,)"]),
    ("q_sample/noise wrong shape", _f(DIFF.q_sample, X, T_OK, torch.zeros(4, 3)), ValueError, ["noise", "(4, 2)", "(4, 3)"]),
    ("q_sample/t str", _f(DIFF.q_sample, X, "3"), ValueError, ["t", "'3'"]),
    ("q_sample/t None", _f(DIFF.q_sample, X, None), ValueError, ["t", "None"]),
    ("q_posterior/xt shape", _f(DIFF.q_posterior_mean_variance, X, torch.zeros(4, 3), T_OK), ValueError, ["xt", "(4, 3)"]),
    ("q_posterior/t=0", _f(DIFF.q_posterior_mean_variance, X, X, torch.zeros(4, dtype=torch.long)), ValueError, ["t=0"]),
    ("q_posterior/x0 list", _f(DIFF.q_posterior_mean_variance, [[0.0, 0.0]], X, T_OK), ValueError, ["x0", "list"]),
    ("q_sample_iterative/t_max 0", _f(DIFF.q_sample_iterative, X, 0), ValueError, ["t_max", "1..T", "0"]),
    ("q_sample_iterative/t_max str", _f(DIFF.q_sample_iterative, X, "x"), ValueError, ["t_max", "'x'"]),
    ("q_sample_iterative/keep > t_max", _f(DIFF.q_sample_iterative, X, 3, keep=[5]), ValueError, ["kept", "t_max=3"]),
    ("predict_x0/eps shape", _f(DIFF.predict_x0_from_eps, X, T_OK, torch.zeros(4, 3)), ValueError, ["eps", "(4, 3)"]),
    # --- reverse process, losses and the bound
    ("p_mean_variance/eps wrong shape", _f(DIFF.p_mean_variance, wrong_shape_eps, X, T_OK), ValueError,
     ["eps_model", "(4, 2)", "(4, 3)"]),
    ("p_mean_variance/eps numpy", _f(DIFF.p_mean_variance, numpy_eps, X, T_OK), ValueError, ["eps_model", "ndarray"]),
    ("p_mean_variance/model not callable", _f(DIFF.p_mean_variance, "model", X, T_OK), ValueError, ["eps_model", "str"]),
    ("p_mean_variance/t=T+1", _f(DIFF.p_mean_variance, zero_eps, X, torch.full((4,), 11)), ValueError, ["t=11"]),
    ("training_losses/kind", _f(DIFF.training_losses, zero_eps, X, kind="l1"), ValueError, ["kind", "'l1'", "simple"]),
    ("training_losses/lambda_vb nan", _f(DIFF.training_losses, zero_eps, X, lambda_vb=float("nan")), ValueError,
     ["lambda_vb", "nan"]),
    ("training_losses/x0 NaN", _f(DIFF.training_losses, zero_eps, torch.full((4, 2), float("nan"))), ValueError,
     ["x0", "NaN"]),
    ("training_losses/x0 inf", _f(DIFF.training_losses, zero_eps, torch.full((4, 2), float("inf"))), ValueError,
     ["x0", "inf"]),
    ("training_losses/x0 empty batch", _f(DIFF.training_losses, zero_eps, torch.zeros(0, 2)), ValueError,
     ["x0", "empty", "(0, 2)"]),
    ("training_losses/noise shape", _f(DIFF.training_losses, zero_eps, X, noise=torch.zeros(2, 2)), ValueError,
     ["noise", "(2, 2)"]),
    ("training_losses/generator wrong type", _f(DIFF.training_losses, zero_eps, X, generator=0), ValueError,
     ["generator", "int"]),
    ("training_losses/vb off grid", _f(DIFF_IMG.training_losses, zero_eps, torch.full((2, 1, 2, 2), 0.01), kind="vb"),
     ValueError, ["x0", "17-level grid"]),
    ("vb_terms_bpd/t=0", _f(DIFF.vb_terms_bpd, zero_eps, X, X, torch.zeros(4, dtype=torch.long)), ValueError, ["t=0"]),
    ("vb_terms_bpd/x0 NaN", _f(DIFF.vb_terms_bpd, zero_eps, torch.full((4, 2), float("nan")), X, T_OK), ValueError,
     ["x0", "NaN"]),
    ("vb_terms_bpd/xt shape", _f(DIFF.vb_terms_bpd, zero_eps, X, torch.zeros(4, 1), T_OK), ValueError, ["xt", "(4, 1)"]),
    ("bits_per_dim/batch_size 0", _f(DIFF.bits_per_dim, zero_eps, X, batch_size=0), ValueError, ["batch_size", "0"]),
    ("bits_per_dim/x0 empty", _f(DIFF.bits_per_dim, zero_eps, torch.zeros(0, 2)), ValueError, ["x0", "empty"]),
    ("bits_per_dim/x0 inf", _f(DIFF.bits_per_dim, zero_eps, torch.full((2, 2), float("inf"))), ValueError, ["x0", "inf"]),
    ("bits_per_dim/eps wrong shape", _f(DIFF.bits_per_dim, wrong_shape_eps, X), ValueError, ["eps_model"]),
    ("sample/shape int", _f(DIFF.sample, zero_eps, 5), ValueError, ["shape", "5"]),
    ("sample/shape 1-D", _f(DIFF.sample, zero_eps, (5,)), ValueError, ["shape", "(5,)"]),
    ("sample/shape zero batch", _f(DIFF.sample, zero_eps, (0, 2)), ValueError, ["shape", "(0, 2)"]),
    ("sample/eps wrong shape", _f(DIFF.sample, wrong_shape_eps, (4, 2)), ValueError, ["eps_model", "(4, 3)"]),
    ("sample/trajectory_every 0", _f(DIFF.sample, zero_eps, (4, 2), trajectory_every=0), ValueError, ["trajectory_every", "0"]),
    ("sample/bad device", _f(DIFF.sample, zero_eps, (4, 2), device="gpu"), ValueError, ["device", "'gpu'"]),
    ("sample/dtype int", _f(DIFF.sample, zero_eps, (4, 2), dtype=torch.int64), ValueError, ["dtype", "int64"]),
    ("sample/generator wrong type", _f(DIFF.sample, zero_eps, (4, 2), generator=42), ValueError, ["generator", "int"]),
    ("ddim/steps 0", _f(DIFF.ddim_sample, zero_eps, (4, 2), steps=0), ValueError, ["steps", "1..T", "0"]),
    ("ddim/steps > T", _f(DIFF.ddim_sample, zero_eps, (4, 2), steps=11), ValueError, ["steps", "T=10", "11"]),
    ("ddim/eta negative", _f(DIFF.ddim_sample, zero_eps, (4, 2), steps=5, eta=-1.0), ValueError, ["eta", "-1.0"]),
    ("ddim/eta nan", _f(DIFF.ddim_sample, zero_eps, (4, 2), steps=5, eta=float("nan")), ValueError, ["eta", "nan"]),
    # --- Gaussian helpers
    ("normal_kl/no tensor", _f(normal_kl, 0.0, 0.0, 0.0, 0.0), TypeError, ["torch.Tensor"]),
    ("decoder/x int", _f(discretized_gaussian_log_likelihood, torch.zeros(3, dtype=torch.long), 0.0, 0.0), TypeError, ["x", "int64"]),
    ("decoder/x outside [-1, 1]", _f(discretized_gaussian_log_likelihood, torch.full((3,), 2.0), 0.0, 0.0), ValueError, ["x", "[-1, 1]"]),
    ("decoder/num_levels 1", _f(discretized_gaussian_log_likelihood, torch.zeros(3), 0.0, 0.0, 1), ValueError, ["num_levels", "1"]),
    # --- models
    ("mlp/dim 0", _f(MLPDenoiser, dim=0), ValueError, ["dim", "0"]),
    ("mlp/T float", _f(MLPDenoiser, T=10.0), ValueError, ["T", "10.0"]),
    ("mlp/data_shape mismatch", _f(MLPDenoiser, dim=4, data_shape=(1, 3)), ValueError, ["data_shape", "dim=4"]),
    ("mlp/xt wrong width", _f(MLP, torch.zeros(4, 3), T_OK), ValueError, ["xt", "(4, 3)", "(batch, 2)"]),
    ("mlp/t out of range", _f(MLP, X, torch.full((4,), 11)), ValueError, ["t", "11", "T=10"]),
    ("mlp/t negative", _f(MLP, X, torch.full((4,), -1)), ValueError, ["t", "-1"]),
    ("mlp/t float", _f(MLP, X, torch.full((4,), 2.5)), ValueError, ["t", "float"]),
    ("mlp/t wrong length", _f(MLP, X, torch.ones(3, dtype=torch.long)), ValueError, ["t", "(3,)"]),
    ("unet/in_channels 2", _f(UNet, in_channels=2), ValueError, ["in_channels", "2"]),
    ("unet/size not divisible", _f(UNet, image_size=7), ValueError, ["image_size", "divisible"]),
    ("unet/T 0", _f(UNet, T=0), ValueError, ["T", "0"]),
    ("unet/base_channels 0", _f(UNet, base_channels=0), ValueError, ["base_channels", "0"]),
    ("unet/wrong channels", _f(UNET, torch.zeros(2, 3, 8, 8), torch.ones(2, dtype=torch.long)), ValueError,
     ["xt", "(batch, 1, 8, 8)", "(2, 3, 8, 8)"]),
    ("unet/wrong size", _f(UNET, torch.zeros(2, 1, 16, 16), torch.ones(2, dtype=torch.long)), ValueError, ["xt", "(2, 1, 16, 16)"]),
    ("unet/t=T+1", _f(UNET, torch.zeros(2, 1, 8, 8), torch.full((2,), 11)), ValueError, ["t", "11", "T=10"]),
    ("build_model/unknown kind", _f(build_model, {"kind": "transformer"}), ValueError, ["kind", "'transformer'"]),
    ("build_model/bad key", _f(build_model, {"kind": "mlp", "width": 3}), ValueError, ["width"]),
    ("build_model/level model without betas", _f(build_model, {"kind": "level_posterior", "num_levels": 17}), ValueError,
     ["betas"]),
    ("unet/dropout 1", _f(UNet, T=10, dropout=1.0), ValueError, ["dropout", "1.0"]),
    ("level model/schedule a list", _f(LevelPosteriorDenoiser, [0.1, 0.2], 17), ValueError, ["schedule", "NoiseSchedule"]),
    ("level model/one level", _f(LevelPosteriorDenoiser, NoiseSchedule.linear(10), 1), ValueError, ["num_levels", "1"]),
    ("timestep_embedding/dim 1", _f(timestep_embedding, torch.ones(2), 1), ValueError, ["dim", "1"]),
    # --- data
    ("image_folder/missing", lambda: D.image_folder("/nonexistent/folder"), ValueError, ["/nonexistent/folder", "does not exist"]),
    ("image_folder/bad mode", lambda: D.image_folder(".", mode="CMYK"), ValueError, ["mode", "'CMYK'"]),
    ("image_folder/bad size", lambda: D.image_folder(".", size=0), ValueError, ["size", "0"]),
    ("image_folder/size str", lambda: D.image_folder(".", size="big"), ValueError, ["size", "'big'"]),
    ("digits/split", _f(D.digits, "validation"), ValueError, ["split", "'validation'"]),
    ("swiss_roll/n 0", _f(D.swiss_roll, 0), ValueError, ["n", "0"]),
    ("swiss_roll/n float", _f(D.swiss_roll, 10.5), ValueError, ["n", "10.5"]),
    ("swiss_roll/n str", _f(D.swiss_roll, "100"), ValueError, ["n", "'100'"]),
    ("swiss_roll/noise nan", _f(D.swiss_roll, 10, noise=float("nan")), ValueError, ["noise", "nan"]),
    ("two_moons/n negative", _f(D.two_moons, -3), ValueError, ["n", "-3"]),
    ("mixture/modes 0", _f(D.gaussian_mixture, 10, modes=0), ValueError, ["modes", "0"]),
    ("mixture/radius nan", _f(D.gaussian_mixture, 10, radius=float("nan")), ValueError, ["radius", "nan"]),
    ("to_model_range/out of levels", _f(D.to_model_range, np.array([300]), 256), ValueError, ["0..255", "300"]),
    ("to_model_range/num_levels 1", _f(D.to_model_range, np.array([0]), 1), ValueError, ["num_levels", "1"]),
    ("to_uint8_images/3-D", _f(D.to_uint8_images, torch.zeros(2, 8, 8)), ValueError, ["x", "(N, C, H, W)"]),
    # --- training (argument checks happen before any step)
    ("train/no budget", _f(train, MLP, DIFF, X), ValueError, ["budget"]),
    ("train/steps 0", _f(train, MLP, DIFF, X, steps=0), ValueError, ["steps", "0"]),
    ("train/seconds negative", _f(train, MLP, DIFF, X, seconds=-1.0), ValueError, ["seconds", "-1.0"]),
    ("train/seconds inf", _f(train, MLP, DIFF, X, seconds=math.inf), ValueError, ["seconds", "inf"]),
    ("train/batch_size 0", _f(train, MLP, DIFF, X, steps=1, batch_size=0), ValueError, ["batch_size", "0"]),
    ("train/lr nan", _f(train, MLP, DIFF, X, steps=1, lr=float("nan")), ValueError, ["lr", "nan"]),
    ("train/bad device", _f(train, MLP, DIFF, X, steps=1, device="tpu"), ValueError, ["device", "'tpu'"]),
    ("train/empty data", _f(train, MLP, DIFF, torch.zeros(0, 2), steps=1), ValueError, ["data", "(0, 2)"]),
    ("train/int data", _f(train, MLP, DIFF, torch.zeros(4, 2, dtype=torch.long), steps=1), ValueError, ["data", "int64"]),
    ("train/NaN data", _f(train, MLP, DIFF, torch.full((4, 2), float("nan")), steps=1, progress=False), ValueError,
     ["data", "NaN"]),
    ("train/loss_kind", _f(train, MLP, DIFF, X, steps=1, loss_kind="l2"), ValueError, ["loss_kind", "'l2'"]),
    ("train/amp", _f(train, MLP, DIFF, X, steps=1, amp="fp8"), ValueError, ["amp", "'fp8'"]),
    ("resolve_device/nonsense", _f(resolve_device, "quantum"), ValueError, ["device", "'quantum'"]),
    # --- issue 10: the "Also" list
    ("schedule/beta_T makes alpha_bar_T underflow", _f(GaussianDiffusion, NoiseSchedule.linear(1000, beta_T=0.999)),
     ValueError, ["ᾱ_T", "beta_T", "T=1000"]),
    ("schedule/beta 1e-300", _f(NoiseSchedule, [1e-300] * 5), ValueError, ["β_1", "1e-20", "NaN"]),
    ("train/batch_size 10**12", _f(train, MLP, DIFF, X, steps=1, batch_size=10**12), ValueError,
     ["batch_size", "1000000000000", "1048576"]),
    ("train/seed 10**23", _f(train, MLP, DIFF, X, steps=1, seed=10**23), ValueError, ["seed", str(10**23)]),
    ("train/images in 0..255", _f(train, UNET, DIFF_IMG, torch.full((4, 1, 8, 8), 255.0), steps=1, progress=False),
     ValueError, ["[-1, 1]", "255", "to_model_range"]),
    ("resolve_device/meta", _f(resolve_device, "meta"), ValueError, ["'meta'", "not supported"]),
    ("resolve_device/xpu", _f(resolve_device, "xpu"), ValueError, ["'xpu'"]),
    ("resolve_device/ipu", _f(resolve_device, "ipu"), ValueError, ["'ipu'"]),
    # --- checkpoint: a folder that does not exist
    ("load_checkpoint/missing dir", _f(load_checkpoint, "/nonexistent/run"), CheckpointError, ["/nonexistent/run", "does not exist"]),
]


@pytest.mark.parametrize("fn,types,words", [pytest.param(f, ty, w, id=i) for i, f, ty, w in API_CASES])
def test_api_bad_input(fn, types, words):
    assert_clean_error(fn, types, words)


# ---------------------------------------------------------------------------- file-system cases
def _png(path: Path, size=(8, 8)) -> None:
    from PIL import Image

    Image.fromarray(np.zeros(size[::-1], dtype=np.uint8)).save(path)


def test_image_folder_file_instead_of_folder(tmp_path):
    f = tmp_path / "a.png"
    _png(f)
    assert_clean_error(lambda: D.image_folder(f), ValueError, [str(f), "is a file", "folder"])


def test_image_folder_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    assert_clean_error(lambda: D.image_folder(tmp_path), ValueError, [str(tmp_path), "no images", ".png"])


def test_image_folder_corrupt_image(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    assert_clean_error(lambda: D.image_folder(tmp_path), ValueError, ["b.png", "cannot read"])


def test_image_folder_truncated_image(tmp_path):
    _png(tmp_path / "a.png", (32, 32))
    blob = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(blob[: len(blob) // 2])
    assert_clean_error(lambda: D.image_folder(tmp_path), ValueError, ["b.png"])


def test_image_folder_mixed_sizes(tmp_path):
    _png(tmp_path / "a.png", (8, 8))
    _png(tmp_path / "b.png", (10, 6))
    assert_clean_error(lambda: D.image_folder(tmp_path), ValueError, ["a.png", "b.png", "size=(H, W)"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_image_folder_unreadable_file(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "a.png").chmod(0)
    try:
        assert_clean_error(lambda: D.image_folder(tmp_path), ValueError, ["a.png", "cannot read"])
    finally:
        (tmp_path / "a.png").chmod(0o644)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real two-step checkpoint of a tiny model on points, T = 10."""
    out = tmp_path_factory.mktemp("run")
    model = MLPDenoiser(dim=2, hidden=8, depth=1, T=10)
    train(model, DIFF, D.swiss_roll(64), steps=2, batch_size=16, device="cpu", checkpoint_dir=out,
          progress=False, metadata={"data": "swiss_roll", "num_levels": None})
    return out


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


def _weights(run: Path) -> Path:
    return next(run.glob("weights-*.safetensors"))


def test_checkpoint_truncated_weights(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    w = _weights(run)
    w.write_bytes(w.read_bytes()[:100])
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, [w.name, "truncated or corrupted"])


def test_checkpoint_flipped_byte(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    w = _weights(run)
    blob = bytearray(w.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    w.write_bytes(bytes(blob))
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, [w.name, "corrupted"])


def test_checkpoint_state_not_json(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "state.json").write_text('{"format_version": 1, "step": ')
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, ["state.json", "not valid JSON"])


def test_checkpoint_state_binary(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "state.json").write_bytes(b"\xff\xfe\x00garbage")
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, ["state.json", "corrupted"])


def test_checkpoint_state_json_list(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "state.json").write_text("[1, 2, 3]")
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, ["state.json", "not a ddpm_lite checkpoint"])


def test_checkpoint_missing_weights(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    w = _weights(run)
    w.unlink()
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, [w.name, "cannot be read"])


def test_checkpoint_missing_state(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "state.json").unlink()
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, ["state.json", "missing"])


def test_checkpoint_file_instead_of_folder(run_dir):
    f = run_dir / "state.json"
    assert_clean_error(lambda: load_checkpoint(f), CheckpointError, [str(f), "not a directory"])


def test_checkpoint_wrong_config_on_resume(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    other = MLPDenoiser(dim=2, hidden=16, depth=1, T=10)  # hidden differs from the saved run
    assert_clean_error(lambda: train(other, DIFF, D.swiss_roll(64), steps=4, batch_size=16, device="cpu",
                                     checkpoint_dir=run, progress=False),
                       CheckpointError, ["different configuration", "hidden"])


def _edit_state(run: Path, edit, fmt: int | None = None) -> None:
    """Change state.json with ``edit(state)``; ``fmt=1`` first turns the run into one written before
    format 2 (no checksum, no format record in the weights or the manifest)."""
    import json

    state = json.loads((run / "state.json").read_text())
    if fmt == 1:
        _as_format_1(run, state)
    edit(state)
    (run / "state.json").write_text(json.dumps(state))


def _as_format_1(run: Path, state: dict) -> None:
    """What a format-1 writer left: weights without metadata, a manifest without ``state_format``."""
    import hashlib
    import json

    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    weights = run / state["weights_file"]
    blob = st_save(st_load(weights.read_bytes()))
    weights.write_bytes(blob)
    manifest = json.loads((run / "ddpm_lite.manifest.json").read_text())
    manifest.pop("state_format", None)
    (run / "ddpm_lite.manifest.json").write_text(json.dumps(manifest))
    state.update(format_version=1, weights_sha256=hashlib.sha256(blob).hexdigest())
    state.pop("state_sha256", None)


@pytest.mark.parametrize("weights_file", ["../victim.txt", "/dev/zero", "sub/weights-00000002.safetensors", 7])
def test_checkpoint_weights_file_outside_the_run(run_dir, tmp_path, weights_file):
    run = _copy_run(run_dir, tmp_path)
    _edit_state(run, lambda s: s.update(weights_file=weights_file), fmt=1)
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, ["weights_file", str(weights_file)])


def test_checkpoint_weights_symlink_to_a_device(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    w = _weights(run)
    w.unlink()
    w.symlink_to("/dev/zero")
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, [w.name, "cannot be read"])


def test_checkpoint_state_edited(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    _edit_state(run, lambda s: s["config"]["model"].update(hidden=64))  # format 2: the checksum catches it
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, ["state.json", "edited or corrupted"])


@pytest.mark.parametrize("edit,words", [
    (lambda s: s.pop("optimizer"), ["'optimizer'", "damaged"]),
    (lambda s: s.update(step="2"), ["'step'", "'2'"]),
    (lambda s: s["config"].pop("model"), ["config.model", "missing"]),
], ids=["removed key", "string step", "no model config"])
def test_checkpoint_state_damaged_format_1(run_dir, tmp_path, edit, words):
    run = _copy_run(run_dir, tmp_path)
    _edit_state(run, edit, fmt=1)
    assert_clean_error(lambda: load_checkpoint(run), CheckpointError, words)


def test_checkpoint_format_1_model_size_edited(run_dir, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path)
    _edit_state(run, lambda s: s["config"]["model"].update(hidden=16), fmt=1)
    rc, err = _cli(["sample", "--run", run, "--n", "4", "--out", tmp_path / "s.png", "--device", "cpu"], capsys)
    _assert_one_error_line(rc, err, ["do not fit", "hidden"])
    model = MLPDenoiser(dim=2, hidden=16, depth=1, T=10)
    assert_clean_error(lambda: train(model, DIFF, D.swiss_roll(64), steps=4, batch_size=16, device="cpu",
                                     checkpoint_dir=run, progress=False), CheckpointError, ["does not fit"])


def test_checkpoint_format_1_still_loads(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    _edit_state(run, lambda s: None, fmt=1)
    assert load_checkpoint(run)["step"] == 2


def test_train_checkpoint_dir_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_clean_error(lambda: train(MLP, DIFF, X, steps=1, device="cpu", checkpoint_dir=f, progress=False),
                       ValueError, ["checkpoint_dir", str(f), "is a file"])


# ---------------------------------------------------------------------------- command line
def _cli(argv, capsys):
    """Run the CLI in-process; returns (exit code, stderr)."""
    try:
        rc = cli_main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors exit through SystemExit
        rc = exc.code
    return rc, capsys.readouterr().err


def _assert_one_error_line(rc, err, words):
    assert rc == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    for w in words:
        assert w.lower() in last.lower(), f"{w!r} not in {last!r}"


CLI_CASES = [
    ("train/negative seconds", ["train", "--data", "digits", "--seconds", "-3", "--out", "{tmp}/r"], ["seconds", "'-3'"]),
    ("train/nan seconds", ["train", "--data", "digits", "--seconds", "nan", "--out", "{tmp}/r"], ["seconds", "'nan'"]),
    ("train/no budget", ["train", "--data", "digits", "--out", "{tmp}/r"], ["budget"]),
    ("train/unknown data", ["train", "--data", "mnist", "--steps", "1", "--out", "{tmp}/r"], ["--data", "'mnist'"]),
    ("train/data is a file", ["train", "--data", "{tmp}/file.txt", "--steps", "1", "--out", "{tmp}/r"], ["file.txt", "is a file"]),
    ("train/empty data folder", ["train", "--data", "{tmp}/empty", "--steps", "1", "--out", "{tmp}/r"], ["no images"]),
    ("train/bad device", ["train", "--data", "swiss_roll", "--steps", "1", "--device", "tpu", "--out", "{tmp}/r"], ["device", "'tpu'"]),
    ("train/T=0", ["train", "--data", "swiss_roll", "--steps", "1", "--T", "0", "--out", "{tmp}/r"], ["--T", "'0'"]),
    ("train/huge T", ["train", "--data", "swiss_roll", "--steps", "1", "--T", "10000000", "--out", "{tmp}/r"],
     ["T=10000000", "maximum"]),
    ("train/levels on points", ["train", "--data", "moons", "--steps", "1", "--denoiser", "levels", "--out", "{tmp}/r"],
     ["level-posterior", "for images"]),
    ("train/unknown schedule", ["train", "--data", "swiss_roll", "--steps", "1", "--schedule", "exp", "--out", "{tmp}/r"],
     ["--schedule", "'exp'"]),
    ("train/out is a file", ["train", "--data", "swiss_roll", "--steps", "1", "--out", "{tmp}/file.txt"], ["--out", "is a file"]),
    ("train/image-size 0", ["train", "--data", "digits", "--steps", "1", "--image-size", "0", "--out", "{tmp}/r"], ["image-size"]),
    ("sample/missing --run", ["sample", "--out", "{tmp}/s.png"], ["--run"]),
    ("sample/run does not exist", ["sample", "--run", "{tmp}/nope", "--out", "{tmp}/s.png"], ["nope", "does not exist"]),
    ("sample/run is a file", ["sample", "--run", "{tmp}/file.txt", "--out", "{tmp}/s.png"], ["file.txt", "not a directory"]),
    ("sample/run empty folder", ["sample", "--run", "{tmp}/empty", "--out", "{tmp}/s.png"], ["empty", "state.json"]),
    ("sample/n 0", ["sample", "--run", "{tmp}/nope", "--n", "0", "--out", "{tmp}/s.png"], ["--n", "'0'"]),
    ("sample/out not png", ["sample", "--run", "{tmp}/nope", "--out", "{tmp}/s.jpg"], ["--out", ".png"]),
    ("sample/unknown sampler", ["sample", "--run", "{tmp}/nope", "--sampler", "euler", "--out", "{tmp}/s.png"], ["--sampler"]),
    ("sample/bad device", ["sample", "--run", "{tmp}/nope", "--device", "gpu0", "--out", "{tmp}/s.png"], ["device", "'gpu0'"]),
    ("bpd/missing --run", ["bpd"], ["--run"]),
    ("bpd/run does not exist", ["bpd", "--run", "{tmp}/nope"], ["nope", "does not exist"]),
    ("bpd/n negative", ["bpd", "--run", "{tmp}/nope", "--n", "-5"], ["--n", "'-5'"]),
    ("no command", [], ["required"]),
    ("unknown command", ["fit"], ["'fit'"]),
]


def _fill(argv, tmp_path):
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "empty").mkdir(exist_ok=True)
    return [a.replace("{tmp}", str(tmp_path)) for a in argv]


def _cli_param(case):
    if not hasattr(case, "marks"):  # a plain row (a pytest.param is a tuple too)
        return pytest.param(case[1], case[2], id=case[0])
    name, argv, words = case.values
    return pytest.param(argv, words, id=name, marks=case.marks)


def _cli_row(case):
    return case.values if hasattr(case, "marks") else case


@pytest.mark.parametrize("argv,words", [_cli_param(c) for c in CLI_CASES])
def test_cli_bad_input(argv, words, tmp_path, capsys):
    rc, err = _cli(_fill(argv, tmp_path), capsys)
    _assert_one_error_line(rc, err, words)
    assert not (tmp_path / "r").exists() and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("which", ["sample", "bpd"])
def test_cli_corrupted_run(which, run_dir, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path)
    w = _weights(run)
    w.write_bytes(w.read_bytes()[:-10])
    argv = [which, "--run", run] + (["--out", tmp_path / "s.png"] if which == "sample" else [])
    rc, err = _cli(argv, capsys)
    _assert_one_error_line(rc, err, [w.name, "truncated or corrupted"])


# A few of the cases above once more as real processes: what a shell user sees.
# Two: a usage error (argparse) and a ValueError from the package; each process costs seconds of torch import.
SUBPROCESS_CASES = ["train/negative seconds", "sample/run empty folder"]


def test_cli_bad_input_as_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    table = {i: (a, w) for i, a, w in map(_cli_row, CLI_CASES)}
    procs = {}
    for name in SUBPROCESS_CASES:  # start them together: most of each run is importing torch
        argv = _fill(table[name][0], tmp_path)
        procs[name] = subprocess.Popen([sys.executable, "-m", "ddpm_lite", *argv], env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, p in procs.items():
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail(f"{name}: the command hung")
        _assert_one_error_line(p.returncode, err, table[name][1])


# ---------------------------------------------------------------------------- widgets
from ddpm_lite.book.widgets import posterior as PW  # noqa: E402
from ddpm_lite.book.widgets import reverse_chain as RW  # noqa: E402
from ddpm_lite.book.widgets import forward as WG  # noqa: E402

WIDGET_CASES = [
    ("schedule_explorer/T huge", _f(WG.schedule_explorer, T=10**6), ValueError, ["T=1000000", "1..4000"]),
    ("schedule_explorer/T=0", _f(WG.schedule_explorer, T=0), ValueError, ["T=0", "1..4000"]),
    ("schedule_explorer/kind", _f(WG.schedule_explorer, kind="exp"), ValueError, ["kind", "'exp'"]),
    ("schedule_explorer/beta_1 0", _f(WG.schedule_explorer, beta_1=0.0), ValueError, ["beta_1", "0.0"]),
    ("schedule_explorer/t > T", _f(WG.schedule_explorer, T=10, t=11), ValueError, ["t=11", "T=10"]),
    ("forward_chain_viewer/x0 numpy", _f(WG.forward_chain_viewer, np.zeros((4, 2))), ValueError, ["x0", "ndarray"]),
    ("forward_chain_viewer/x0 empty", _f(WG.forward_chain_viewer, torch.zeros(0, 2)), ValueError, ["x0", "(0, 2)"]),
    ("forward_chain_viewer/every 0", _f(WG.forward_chain_viewer, X, DIFF, every=0), ValueError, ["every", "0"]),
    ("forward_chain_viewer/too many states", _f(WG.forward_chain_viewer, X, GaussianDiffusion(NoiseSchedule.linear(10**6, 1e-8, 1e-7)), every=1),
     ValueError, ["every=1", "T=1000000", "every ≥"]),
    ("forward_chain_viewer/diffusion str", _f(WG.forward_chain_viewer, X, "linear"), ValueError, ["diffusion", "str"]),
    ("posterior_explorer/t=0", _f(PW.posterior_explorer, T=10, t=0), ValueError, ["t=0", "1..T"]),
    ("posterior_explorer/T=1", _f(PW.posterior_explorer, T=1), ValueError, ["T ≥ 2", "T=1"]),
    ("posterior_explorer/T huge", _f(PW.posterior_explorer, T=10**6), ValueError, ["T=1000000", "1..4000"]),
    ("posterior_explorer/schedule str", _f(PW.posterior_explorer, "cosine"), ValueError, ["schedule", "str"]),
    ("posterior_histogram/x0 2", _f(PW.posterior_histogram, T=10, x0=2.0), ValueError, ["x0", "2.0", "[-1, 1]"]),
    ("posterior_histogram/x0 nan", _f(PW.posterior_histogram, T=10, x0=float("nan")), ValueError, ["x0", "nan"]),
    ("posterior_histogram/n small", _f(PW.posterior_histogram, T=10, n=10), ValueError, ["n=10", "100"]),
    ("posterior_histogram/n str", _f(PW.posterior_histogram, T=10, n="many"), ValueError, ["n=", "'many'"]),
    ("posterior_histogram/t=T+1", _f(PW.posterior_histogram, T=10, t=11), ValueError, ["t=11"]),
    ("posterior_histogram/offset 5", _f(PW.posterior_histogram, T=10, xt_offset=5.0), ValueError, ["xt_offset", "5.0"]),
    ("record_reverse_chain/every 0", _f(RW.record_reverse_chain, DIFF, zero_eps, (4, 2), every=0), ValueError, ["every", "0"]),
    ("record_reverse_chain/model str", _f(RW.record_reverse_chain, DIFF, "net", (4, 2)), ValueError, ["eps_model", "str"]),
    ("record_reverse_chain/shape int", _f(RW.record_reverse_chain, DIFF, zero_eps, 4), ValueError, ["shape", "4"]),
    ("reverse_chain_viewer/no chain", _f(RW.ReverseChainViewer), ValueError, ["at least one"]),
    ("reverse_chain_viewer/T differ", _f(RW.reverse_chain_viewer, DIFF, zero_eps, zero_eps,
                                         image_diffusion=GaussianDiffusion(NoiseSchedule.linear(20))), ValueError, ["T=10", "T=20"]),
]


@pytest.mark.parametrize("fn,types,words", [pytest.param(f, ty, w, id=i) for i, f, ty, w in WIDGET_CASES])
def test_widget_bad_input(fn, types, words):
    assert_clean_error(fn, types, words)


def test_posterior_widget_update_refuses_out_of_range():
    box = PW.posterior_explorer(T=20, t=2)
    assert_clean_error(lambda: box.update(t=10**6), ValueError, ["t", "1..T (T=20)", "1000000"])
    assert_clean_error(lambda: box.update(t="x"), ValueError, ["t", "'x'"])


@pytest.fixture(scope="module")
def explorer():
    return WG.schedule_explorer(T=50, t=10)


def test_schedule_explorer_sliders_at_extremes(explorer):
    """Documented behaviour: the ends of every slider draw finite readouts; values past them are
    refused (as every explorer's ``update`` refuses them), naming the range, and change nothing.

    At T = 4000 with β from 0.1 to 0.5, ᾱ_T underflows to 0 in float64: the readouts stay finite
    (L_T is then the KL of N(0, 1) to itself plus nothing) and log-SNR is −inf at the end.
    """
    explorer.update(kind="linear", T=WG.MAX_EXPLORER_T, beta_1=0.1, beta_T=0.5, t=WG.MAX_EXPLORER_T)
    assert explorer.T.value == WG.MAX_EXPLORER_T and explorer.t.value == WG.MAX_EXPLORER_T
    v = explorer.values
    assert v["alpha_bar_T"] == 0.0 and math.isfinite(v["L_T_bits_per_dim"]) and v["L_T_bits_per_dim"] >= 0
    for bad, words in ((dict(T=10**6), ["T=1000000", "1..4000"]), (dict(t=10**6), ["t=1000000", "T=4000"]),
                       (dict(beta_1=1.0), ["beta_1=1.0", "[1e-06, 0.1]"]), (dict(T=0), ["T=0", "1..4000"]),
                       (dict(T=10, t=11), ["t=11", "T=10"]), (dict(beta_T=0.0), ["beta_T=0.0", "[0.0001, 0.5]"])):
        assert_clean_error(lambda: explorer.update(**bad), ValueError, words)
        assert explorer.T.value == WG.MAX_EXPLORER_T and explorer.beta_1.value == 0.1  # nothing was set
    explorer.update(T=1, t=1, beta_1=1e-6, beta_T=1e-4)  # the lower ends
    assert explorer.T.value == 1 and explorer.t.value == 1 and math.isfinite(explorer.values["L_T_bits_per_dim"])
    explorer.update(kind="cosine", T=WG.MAX_EXPLORER_T, t=WG.MAX_EXPLORER_T)  # the cosine clip β_T = 0.999
    assert explorer._schedule.betas[-1] == pytest.approx(0.999) and math.isfinite(explorer.values["L_T_bits_per_dim"])
    assert_clean_error(lambda: explorer.update(kind="exp"), ValueError, ["kind", "'exp'"])
    assert_clean_error(lambda: explorer.update(t=float("nan")), ValueError, ["t", "nan"])


def test_posterior_histogram_at_cosine_clip_and_t_extremes():
    """Documented behaviour: t = 1 (β̃_1 = 0, a spike) and t = T of a clipped cosine schedule both draw."""
    s = NoiseSchedule.cosine(50)
    box = PW.posterior_histogram(s, x0=1.0, t=1, n=200, xt_offset=2.0)
    box.update(t=50, x0=-1.0, xt_offset=-2.0)
    assert "nan" not in box.readout.value.lower()


# ---------------------------------------------------------------------------- issue 10: right results, not errors
@pytest.mark.parametrize("t_dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_models_read_any_integer_t_as_timesteps(t_dtype):
    """uint8 t with batch T + 1 once indexed the table as a boolean mask (output off by 3.9)."""
    torch.manual_seed(0)
    model = MLPDenoiser(dim=2, hidden=8, depth=1, T=10).eval()
    torch.nn.init.normal_(model.out.weight)
    x = torch.randn(11, 2)
    t = torch.arange(11)
    with torch.no_grad():
        assert torch.equal(model(x, t.to(t_dtype)), model(x, t))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("which", ["mlp", "unet"])
def test_models_take_other_float_dtypes(dtype, which):
    model = (MLPDenoiser(dim=2, hidden=8, depth=1, T=10) if which == "mlp"
             else UNet(in_channels=1, image_size=8, base_channels=8, T=10)).eval()
    x = torch.randn(3, 2) if which == "mlp" else torch.randn(3, 1, 8, 8)
    t = torch.tensor([1, 5, 10])
    with torch.no_grad():
        out, ref = model(x.to(dtype), t), model(x.to(dtype).float(), t)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.allclose(out.float(), ref, atol=0.05, rtol=0.05)


def test_tiny_beta_is_finite_at_the_minimum():
    d = GaussianDiffusion(NoiseSchedule([1e-20] * 5), num_levels=None)
    res = d.bits_per_dim(zero_eps, torch.randn(8, 2), generator=torch.Generator().manual_seed(0))
    assert math.isfinite(res["total"])


CLI_CASES_10 = [
    ("train/batch-size 10**12", ["train", "--data", "swiss_roll", "--steps", "1", "--batch-size", str(10**12),
                                 "--device", "cpu", "--out", "{tmp}/r"], ["batch_size", "1048576"]),
    ("train/seed 10**23", ["train", "--data", "swiss_roll", "--steps", "1", "--seed", str(10**23), "--out", "{tmp}/r"],
     ["--seed", "2**63-1"]),
    ("train/device meta", ["train", "--data", "swiss_roll", "--steps", "1", "--device", "meta", "--out", "{tmp}/r"],
     ["'meta'"]),
    ("sample/device xpu", ["sample", "--run", "{tmp}/nope", "--device", "xpu", "--out", "{tmp}/s.png"], ["'xpu'"]),
    ("bpd/device ipu", ["bpd", "--run", "{tmp}/nope", "--device", "ipu"], ["'ipu'"]),
    ("sample/n 10**12", ["sample", "--run", "{tmp}/nope", "--n", str(10**12), "--out", "{tmp}/s.png"],
     ["--n", "100000", "--seed"]),
    ("sample/out is a folder", ["sample", "--run", "{tmp}/nope", "--out", "{tmp}/dir.png"], ["dir.png", "folder"]),
    ("train/bundled name shadows a folder", ["train", "--data", "moons", "--steps", "1", "--out", "{tmp}/r"],
     ["./moons", "bundled:moons"]),
]


@pytest.mark.parametrize("argv,words", [pytest.param(a, w, id=i) for i, a, w in CLI_CASES_10])
def test_cli_bad_input_issue10(argv, words, tmp_path, capsys, monkeypatch):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "moons").mkdir()
    monkeypatch.chdir(tmp_path)  # "moons" is then also a folder here
    rc, err = _cli(_fill(argv, tmp_path), capsys)
    _assert_one_error_line(rc, err, words)
    assert not (tmp_path / "r" / "state.json").exists() and not (tmp_path / "s.npy").exists()


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """A run trained through the Python API with a custom β array and no metadata."""
    out = tmp_path_factory.mktemp("api_run")
    betas = np.linspace(1e-3, 0.3, 10) ** 1.5
    d = GaussianDiffusion(NoiseSchedule(betas), num_levels=None)
    train(MLPDenoiser(dim=2, hidden=8, depth=1, T=10), d, D.swiss_roll(64), steps=2, batch_size=16, device="cpu",
          checkpoint_dir=out, progress=False)
    return out


def test_cli_reloads_an_api_run_with_custom_betas(api_run, tmp_path, capsys):
    rc, err = _cli(["sample", "--run", api_run, "--n", "8", "--out", tmp_path / "s.png", "--device", "cpu"], capsys)
    assert rc == 0, err
    assert np.isfinite(np.load(tmp_path / "s.npy")).all()


def test_cli_bpd_on_an_api_run_asks_for_data(api_run, capsys):
    rc, err = _cli(["bpd", "--run", api_run, "--device", "cpu"], capsys)
    _assert_one_error_line(rc, err, ["does not record its data", "--data"])
    rc, err = _cli(["bpd", "--run", api_run, "--n", "8", "--device", "cpu", "--data", "swiss_roll"], capsys)
    assert rc == 0, err


def test_cli_ddim_with_small_T_names_ddim_steps(api_run, tmp_path, capsys):
    rc, err = _cli(["sample", "--run", api_run, "--sampler", "ddim", "--ddim-steps", "50", "--out",
                    tmp_path / "s.png", "--device", "cpu"], capsys)
    _assert_one_error_line(rc, err, ["--ddim-steps 50", "T=10", "--ddim-steps 10"])
    rc, err = _cli(["sample", "--run", api_run, "--sampler", "ddim", "--n", "4", "--out", tmp_path / "s.png",
                    "--device", "cpu"], capsys)
    assert rc == 0, err  # the default becomes min(50, T)
    for extra, words in ((["--sampler", "ancestral", "--ddim-steps", "5"], ["--ddim-steps", "ancestral", "T=10"]),
                         (["--sampler", "dpm++", "--eta", "0.5"], ["eta", "dpm++"]),
                         (["--sampler", "ddim", "--spacing", "karras"], ["spacing", "ddim"])):
        rc, err = _cli(["sample", "--run", api_run, *extra, "--out", tmp_path / "s.png", "--device", "cpu"], capsys)
        _assert_one_error_line(rc, err, words)


def test_cli_tiny_images_suggest_a_size(tmp_path, capsys):
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((7, 7), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    rc, err = _cli(["train", "--data", tmp_path, "--steps", "1", "--device", "cpu", "--out", tmp_path / "r"], capsys)
    _assert_one_error_line(rc, err, ["7x7", "--image-size 8"])


def test_gpu_checkpoint_resumes_on_cpu(run_dir, tmp_path):
    """A run saved with a CUDA generator (state faked: this machine may have no GPU) resumes on a CPU."""
    import json

    from ddpm_lite.runs.checkpoint import state_digest

    run = _copy_run(run_dir, tmp_path)
    state = json.loads((run / "state.json").read_text())
    state["generator_device"] = "cuda:0"
    state["state_sha256"] = state_digest(state)
    (run / "state.json").write_text(json.dumps(state))
    with pytest.warns(RuntimeWarning, match="reseeded"):
        res = train(MLPDenoiser(dim=2, hidden=8, depth=1, T=10), DIFF, D.swiss_roll(64), steps=4, batch_size=16,
                    device="cpu", checkpoint_dir=run, progress=False)
    assert res.steps == 4 and load_checkpoint(run)["generator_device"] == "cpu"


# ---------------------------------------------------------------------------- issue 10: images at their true depth
RAMP = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4  # 0..252


def _save(path, array, mode=None, **kw):
    from PIL import Image

    Image.fromarray(array, mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)


def test_image_folder_16_bit_and_float_load_like_the_8_bit_copy(tmp_path):
    """A 16-bit PNG is scaled (not clipped to 255) and a float TIFF is read as [0, 1], also in one mixed folder."""
    ref_dir, mixed = tmp_path / "ref", tmp_path / "mixed"
    ref_dir.mkdir(), mixed.mkdir()
    _save(ref_dir / "a.png", RAMP)
    _save(mixed / "a.png", RAMP)
    _save(mixed / "b.png", RAMP.astype(np.uint16) * 257)  # the same levels in 16 bits
    _save(mixed / "c.tif", RAMP.astype(np.float32) / 255.0, "F")
    ref = D.image_folder(ref_dir)
    x = D.image_folder(mixed)
    assert x.shape == (3, 1, 8, 8)
    for i in range(3):
        assert torch.equal(x[i], ref[0]), i


def test_image_folder_float_outside_0_1_is_refused(tmp_path):
    _save(tmp_path / "c.tif", np.full((8, 8), 3.0, np.float32), "F")
    assert_clean_error(lambda: D.image_folder(tmp_path), ValueError, ["c.tif", "[0, 1]"])


def test_image_folder_transparency_is_white(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)  # black, fully transparent ...
    rgba[:4, :, 3] = 255  # ... except the top half, opaque black
    _save(tmp_path / "a.png", rgba)
    x = D.image_folder(tmp_path, mode="RGB")
    assert torch.all(x[0, :, :4] == -1.0) and torch.all(x[0, :, 4:] == 1.0)


def test_image_folder_palette_image(tmp_path):
    from PIL import Image

    Image.fromarray(RAMP).convert("P").save(tmp_path / "a.png")
    _save(tmp_path / "b.png", RAMP)
    x = D.image_folder(tmp_path)
    assert torch.equal(x[0], x[1])


def test_image_folder_applies_exif_orientation(tmp_path):
    from PIL import Image

    wide = np.zeros((4, 8), dtype=np.uint8)
    wide[:, 0] = 255  # a white left column
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(wide).save(tmp_path / "a.png", exif=exif)
    x = D.image_folder(tmp_path)
    assert x.shape == (1, 1, 8, 4)  # shown upright: 4 wide, 8 tall
    assert torch.all(x[0, 0, 0] == 1.0) and torch.all(x[0, 0, 1:] == -1.0)  # the left column became the top row


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` (the pixel data is never reached)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [5000, 20000])
def test_image_folder_refuses_oversized_images_before_decoding(tmp_path, side):
    (tmp_path / "huge.png").write_bytes(_png_header(side, side))
    assert_clean_error(lambda: D.image_folder(tmp_path), ValueError, ["huge.png", "shrink it"])

"""The forward-process widgets, driven without a browser: artists must show the schedule."""

import numpy as np
import pytest
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.gaussian import LN2
from ddpm_lite.book.widgets import (
    forward_chain_viewer,
    schedule_explorer,
    schedule_explorer_html,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explorer():
    return schedule_explorer()


@pytest.mark.parametrize(
    "values",
    [
        dict(kind="linear", T=1000, beta_1=1e-4, beta_T=0.02, t=1),
        dict(t=1000),
        dict(T=2, t=2),
        dict(T=4000, t=4000),  # the slider's extreme
        dict(kind="cosine", T=1000, t=1000),  # β clipped at 0.999 at the last step
        dict(kind="quadratic", T=50, beta_1=1e-6, beta_T=0.5, t=25),
        dict(kind="sigmoid", T=3000, beta_1=0.1, beta_T=0.5, t=3000),  # ᾱ_T underflows towards 0
        dict(kind="linear", T=300, beta_1=0.02, beta_T=1e-4, t=7),  # a decreasing ramp is allowed
    ],
)
def test_explorer_artists_show_the_schedule(explorer, values):
    explorer.update(**values)
    kind, T = explorer.kind.value, explorer.T.value
    s = NoiseSchedule.cosine(T) if kind == "cosine" else NoiseSchedule.from_name(
        kind, T, beta_1=explorer.beta_1.value, beta_T=explorer.beta_T.value)
    t = explorer.t.value
    assert t == min(values.get("t", t), T)
    x, y = explorer.line_abar.get_data()
    np.testing.assert_allclose(x, np.arange(1, T + 1) / T)
    np.testing.assert_allclose(y, s.alpha_bars[1:], rtol=1e-12)
    np.testing.assert_allclose(explorer.line_beta.get_ydata(), s.betas[1:], rtol=1e-12)
    np.testing.assert_allclose(explorer.line_snr.get_ydata(), s.log_snr[1:], rtol=1e-12)
    assert np.isfinite(explorer.line_snr.get_ydata()).all()
    assert explorer.markers[0].get_xdata()[0] == pytest.approx(t / T)
    pts = explorer.scatter.get_offsets()
    expected = np.sqrt(s.alpha_bars[t]) * explorer.points.numpy() + np.sqrt(1 - s.alpha_bars[t]) * explorer.points_noise.numpy()
    np.testing.assert_allclose(pts, expected, rtol=1e-9, atol=1e-12)
    assert explorer.values["alpha_bar_T"] == s.alpha_bars[T]
    assert explorer.values["L_T_bits_per_dim"] == pytest.approx(float(s.prior_kl_per_dim(explorer.mean_square)) / LN2, rel=1e-12)
    assert np.isfinite(explorer.values["L_T_bits_per_dim"])
    assert explorer.image.value[:8] == PNG_MAGIC


def test_explorer_follows_slider_events(explorer):
    """A drag arrives as trait changes, not update() calls; the observer must redraw."""
    explorer.update(kind="linear", T=1000, beta_1=1e-4, beta_T=0.02, t=10)
    before = explorer.image.value
    explorer.t.value = 900
    assert explorer.values["t"] == 900 and explorer.image.value != before
    explorer.T.value = 100  # shrinking T clamps t into range
    assert explorer.t.value <= 100 and explorer.values["T"] == 100


def test_explorer_rejects_unknown_controls(explorer):
    with pytest.raises(ValueError, match="unknown control"):
        explorer.update(gamma=3)


def test_forward_chain_viewer_bounded_and_consistent():
    d = GaussianDiffusion(NoiseSchedule.linear(100))
    x0 = torch.randn(50, 2, dtype=torch.float64)
    v = forward_chain_viewer(x0, d, every=25, seed=1)
    assert sorted(v.states) == [0, 25, 50, 75, 100]  # bounded memory: only kept steps
    torch.testing.assert_close(v.states[0], x0)
    v.update(t=60)
    assert v.slider.value == 50
    np.testing.assert_allclose(v.artist.get_offsets(), v.states[50].numpy())
    assert v.image.value[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="every"):
        forward_chain_viewer(x0, d, every=0)


def test_forward_chain_viewer_images():
    d = GaussianDiffusion(NoiseSchedule.linear(20))
    v = forward_chain_viewer(torch.zeros(4, 1, 8, 8), d, every=5)
    v.update(t=20)
    assert v.artist.get_array().shape == (8, 35)  # 4 images tiled 4 across with 1-px gaps


def test_js_placeholder_carries_the_data_moment():
    html = schedule_explorer_html(0.25).data
    assert 'class="ddpm-schedule-explorer"' in html and 'data-mean-square="0.25"' in html


# ---------------------------------------------------------------------- the one base class
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import base64  # noqa: E402

from PIL import Image  # noqa: E402

from ddpm_lite.book.widgets import (  # noqa: E402
    MAX_EXPLORER_T,
    Explorer,
    ForwardChainViewer,
    PosteriorExplorer,
    PosteriorHistogram,
    ScheduleExplorer,
    posterior_explorer,
    posterior_histogram,
)
from ddpm_lite.book.widgets.base import MAX_STATIC_FRAMES, kept_steps, thin  # noqa: E402


def _static(html: str) -> dict:
    """The JSON a static explorer carries, with ``pictures``: every frame composed as the page's
    script composes it (the base picture, then the frame's patches laid over it)."""
    data = json.loads(re.search(r'<script type="application/json" class="ddpm-frames-data">(.*?)</script>',
                                html, re.S).group(1).replace("<\\/", "</"))
    base = _pixels(base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)))
    assert base.shape == (data["height"], data["width"], 3)
    data["pictures"] = []
    for frame in data["frames"]:
        picture = base.copy()
        patches = [[0, 0, data["width"], data["height"], frame]] if isinstance(frame, str) and frame else frame or []
        for x, y, w, h, png in patches:
            picture[y:y + h, x:x + w] = _pixels(base64.b64decode(png))
        data["pictures"].append(picture)
    return data


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)


def _count_draws(explorer) -> list:
    calls = []
    draw = explorer.draw

    def counting(**values):
        calls.append(values)
        return draw(**values)

    explorer.draw = counting
    return calls


def test_every_explorer_is_one_kind():
    for cls in (ScheduleExplorer, ForwardChainViewer, PosteriorExplorer, PosteriorHistogram):
        assert issubclass(cls, Explorer)
    from ddpm_lite.book.widgets import ReverseChainViewer

    assert issubclass(ReverseChainViewer, Explorer)


def test_update_sets_several_controls_and_draws_once(explorer):
    explorer.update(kind="linear", T=1000, beta_1=1e-4, beta_T=0.02, t=10)
    calls = _count_draws(explorer)
    try:
        explorer.update(T=50, t=40, beta_T=0.05)
        assert len(calls) == 1 and calls[0]["T"] == 50 and calls[0]["t"] == 40 and calls[0]["beta_T"] == 0.05
        explorer.T.value = 30  # a drag that also clamps t: one redraw, not two
        assert len(calls) == 2 and calls[1]["T"] == 30 and calls[1]["t"] == 30
    finally:
        del explorer.draw


def test_a_bad_value_sets_nothing(explorer):
    explorer.update(kind="linear", T=1000, beta_1=1e-4, beta_T=0.02, t=10)
    before = explorer.image.value
    with pytest.raises(ValueError, match=r"t must be an integer in 1\.\.T \(T=100\), got t=500"):
        explorer.update(T=100, t=500)  # t is checked against the new T
    with pytest.raises(ValueError, match=r"beta_T must be a number in \[0\.0001, 0\.5\], got beta_T=0\.9"):
        explorer.update(kind="cosine", beta_T=0.9)
    assert explorer.T.value == 1000 and explorer.kind.value == "linear" and explorer.image.value == before


def test_static_frames_are_the_live_pictures():
    """Each precomputed frame is the picture (and readout) the live widget shows at that setting."""
    widget = posterior_explorer(NoiseSchedule.linear(50), t=7)
    data = _static(widget.static_html({"t": [1, 2, 50]}))
    assert [c["name"] for c in data["controls"]] == ["t"]
    assert data["controls"][0]["values"] == ["1", "2", "7", "50"]  # the current t is always included
    assert data["controls"][0]["index"] == 2
    pictures = []
    for t, static, readout in zip((1, 2, 7, 50), data["pictures"], data["readouts"]):
        widget.update(t=t)
        assert readout == widget.readout.value
        live = _pixels(widget.image.value)
        assert static.shape == live.shape
        assert np.abs(static - live).mean() < 1.0  # only the 32-colour palettes differ
        pictures.append(static)
    for a, b in zip(pictures, pictures[1:]):
        assert np.abs(a - b).max() > 100  # every slider position shows a different picture
    # Moving markers are stored as patches over the base picture, not as whole figures.
    assert all(isinstance(f, list) and f for i, f in enumerate(data["frames"]) if i != 2) and data["frames"][2] == ""
    size = sum(len(p[4]) for f in data["frames"] if f for p in f)
    assert size < len(re.search(r'base64,([^"]+)"', widget.static_html({"t": [7]})).group(1))  # < one picture


def test_static_page_offers_only_controls_that_move_the_picture():
    """Controls outside the grid are not offered; every offered one changes the frame."""
    h = posterior_histogram(NoiseSchedule.linear(50), x0=0.5, t=10, n=400)
    data = _static(h.static_html({"t": [1, 50], "xt_offset": [-2.0, 2.0]}))
    names = [c["name"] for c in data["controls"]]
    assert names == ["t", "xt_offset"] and len(data["frames"]) == 3 * 3
    pictures = [[data["pictures"][3 * i + j] for j in range(3)] for i in range(3)]
    readouts = np.array(data["readouts"]).reshape(3, 3)

    def distinct(images) -> int:
        return len({im.tobytes() for im in images})

    assert distinct(row[0] for row in pictures) == 3 and distinct(pictures[1]) == 3  # t, and x_t at t = 10
    # At t = 1 the posterior is the point mass at x_0 whatever x_t is: the picture stays, the readout moves.
    assert distinct(pictures[0]) == 1 and len(set(readouts[0, :])) == 3
    assert h.sliders["x0"].value == 0.5 and h.state["t"] == 10  # the live widget is left as it was


def test_default_static_grids_fit_the_page():
    d = GaussianDiffusion(NoiseSchedule.linear(1000))
    chain = forward_chain_viewer(torch.zeros(4, 1, 8, 8), d, every=10)
    assert _static(chain.static_html())["controls"][0]["values"][::25] == ["0", "500", "1000"]  # 51 of 101
    p = posterior_explorer(NoiseSchedule.linear(1000), t=2)
    ts = [int(v) for v in _static(p.static_html())["controls"][0]["values"]]
    assert ts[:10] == list(range(1, 11)) and ts[-1] == 1000 and len(ts) < 60
    with pytest.raises(ValueError, match="unknown control 'beta'"):
        p.static_html({"beta": [1]})
    h = posterior_histogram(n=400)
    with pytest.raises(ValueError, match=f"at most {MAX_STATIC_FRAMES}"):
        h.static_html({"t": range(1, 1001)})
    with pytest.raises(ValueError, match="t must be an integer in 1..T"):
        h.static_html({"t": [0]})


def test_mimebundle_is_live_widget_and_static_html():
    p = posterior_explorer(NoiseSchedule.linear(20), t=3)
    bundle = p._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"].startswith('<div class="ddpm-frames">')


def test_schedule_explorer_static_form_carries_its_state_and_samples():
    e = ScheduleExplorer(kind="quadratic", T=300, beta_1=2e-4, beta_T=0.05, t=30)
    html = e.static_html()
    for attr in ('data-kind="quadratic"', 'data-T="300"', 'data-beta-1="0.0002"', 'data-beta-T="0.05"',
                 'data-timestep="30"', f'data-max-T="{MAX_EXPLORER_T}"', 'data-beta-T-range="0.0001 0.5"'):
        assert attr in html
    samples = json.loads(re.search(r'class="dse-samples">(.*?)</script>', html).group(1))
    points = np.frombuffer(base64.b64decode(samples["points"]), dtype=np.float32).reshape(-1, 2)
    np.testing.assert_allclose(points, e.points.numpy(), rtol=1e-6, atol=1e-7)
    assert samples["digit_shape"] == [8, 1, 8, 8]


def test_kept_steps_and_thin():
    assert kept_steps(100, 30) == [0, 30, 60, 90, 100]
    with pytest.raises(ValueError, match="every=1 would keep 2002 states"):
        kept_steps(2000, 1)
    picked = thin(list(range(101)), 51)
    assert len(picked) == 51 and picked[0] == 0 and picked[-1] == 100 and picked == sorted(set(picked))
    assert thin([3, 1], 5) == [3, 1]

"""The model store of the book layer: same configuration → same weights, trained once."""

from __future__ import annotations

import pytest
import torch

from ddpm_lite import GaussianDiffusion, MLPDenoiser, NoiseSchedule
from ddpm_lite.book import store

T = 20


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    net = MLPDenoiser(dim=2, T=T)
    data = torch.randn(256, 2, generator=torch.Generator().manual_seed(1))
    return net, GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None), data


def _fetch(steps: int, seed: int = 0, **kw) -> store.StoredRun:
    net, diffusion, data = _setup(seed)
    kw = {"batch_size": 32, "lr": 1e-3, "seed": 0, "device": "cpu", "log_every": 5, **kw}
    return store.trained("a test MLP", net, diffusion, data, steps=steps, **kw)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_trained_once_then_loaded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path))
    first = _fetch(10)
    assert not first.from_store and "training a test MLP: 10 steps" in capsys.readouterr().out
    again = _fetch(10)
    assert again.from_store and "loaded" in capsys.readouterr().out
    assert _same(first.ema_model, again.ema_model) and _same(first.model, again.model)
    assert again.losses == first.losses and again.steps == 10
    assert not again.ema_model.training  # sample-ready, like train()'s ema_model


def test_deterministic_across_stores(tmp_path, monkeypatch):
    """Two empty stores train the same configuration to bit-identical weights."""
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "a"))
    a = _fetch(10)
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "b"))
    b = _fetch(10)
    assert not a.from_store and not b.from_store
    assert _same(a.ema_model, b.ema_model)


def test_key_follows_the_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path))
    base = _fetch(10)
    other_lr = _fetch(10, lr=3e-3)
    other_init = _fetch(10, seed=1)  # another seed: other initial weights
    assert not other_lr.from_store and not other_init.from_store
    assert len({base.key, other_lr.key, other_init.key}) == 3
    assert not _same(base.ema_model, other_lr.ema_model)


def test_longer_budget_resumes_bit_for_bit(tmp_path, monkeypatch, capsys):
    """Asking for 10 then 20 steps gives the weights of 20 steps straight through."""
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "a"))
    _fetch(10)
    resumed = _fetch(20)
    assert "resuming at step 10" in capsys.readouterr().out
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "b"))
    straight = _fetch(20)
    assert _same(resumed.ema_model, straight.ema_model)
    assert [s for s, _ in resumed.losses] == [s for s, _ in straight.losses]


def test_damaged_entry_is_trained_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path))
    first = _fetch(10)
    (tmp_path / first.key / "ema.safetensors").write_bytes(b"not a tensor file")
    again = _fetch(10)
    assert not again.from_store and "unreadable" in capsys.readouterr().out
    assert _same(first.ema_model, again.ema_model)
    assert _fetch(10).from_store


def test_store_defaults_under_build_of_the_repository(monkeypatch):
    monkeypatch.delenv(store.STORE_ENV, raising=False)
    here = store.store_dir()
    assert here.parts[-2:] == ("_build", "models")
    assert (here.parent.parent / "_toc.yml").is_file()


def test_managed_arguments_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="managed by the model store"):
        _fetch(10, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="positive int"):
        _fetch(0)

"""The model store: each network the chapters need is trained once, then loaded.

Several chapters train a small network before they can show anything (the digits U-Nets of
chapters 8, 11 and 13, the experiments of chapter 9, the swiss-roll MLP of chapter 12).
Training is seeded, so a given configuration always ends in the same weights; this module
keeps those weights after the first run and hands them back to every later run with the same
configuration — the next build of the book, the test run that validates it, a reader who
re-runs a chapter in Jupyter.

An entry is keyed by everything that decides the weights:

* the network's class and its *initial* weights (which capture its configuration and seed),
* the diffusion (schedule tables, variance kind, number of levels),
* the training data (its bytes) and every argument of :func:`ddpm_lite.train`,
* the library's source (``ddpm_lite`` without this teaching layer): a change to the code that
  trains invalidates every entry.

Where it lives: ``$DDPM_LITE_STORE`` if set; else ``_build/models`` of the repository this
package sits in (so ``make clean`` empties it, wherever a notebook runs from); else, for an
installed package, ``~/.cache/ddpm_lite/models``.  Entries are written to a temporary folder
and renamed into place, so a crash never leaves half an entry; a lock per configuration makes
two processes that need the same model train it once.

Runs that differ only in their step budget share one checkpoint: asking for 500 steps after
250 resumes from step 250 (bit for bit the same as training straight through, see
:func:`ddpm_lite.train`), so a chapter that scores a model at several budgets pays for the
longest one only.  Runs with an importance sampler for t are not resumed (its history is not
checkpointed) and always train from step 0.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ddpm_lite import GaussianDiffusion, train

__all__ = ["StoredRun", "library_fingerprint", "store_dir", "trained"]

#: Environment variable that moves the store (a path); ``make clean`` does not empty it then.
STORE_ENV = "DDPM_LITE_STORE"
_FORMAT = 1  # bump when the layout of an entry changes


@dataclass
class StoredRun:
    """A trained network, from the store or freshly trained (then stored).

    ``model`` and ``ema_model`` are as in :func:`ddpm_lite.train`'s result (sample from
    ``ema_model``); ``losses`` are its (step, mean loss) pairs; ``seconds`` is how long the
    training took when it ran; ``from_store`` says whether this call loaded it.
    """

    what: str
    model: torch.nn.Module
    ema_model: torch.nn.Module
    steps: int
    seconds: float
    from_store: bool
    key: str
    losses: list[tuple[int, float]] = field(default_factory=list)


def store_dir() -> Path:
    """Folder of the store: ``$DDPM_LITE_STORE``, else ``<repository>/_build/models``."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    # src/ddpm_lite/book/store.py → the repository root, when this is a checkout.  Resolved
    # from this file, not the working directory: Jupyter, nbval and the book build each run
    # a chapter from a different folder.
    root = Path(__file__).resolve().parents[3]
    if (root / "_config.yml").is_file() and (root / "_toc.yml").is_file():
        return root / "_build" / "models"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ddpm_lite" / "models"


def library_fingerprint() -> str:
    """Hash of the library's Python source (``ddpm_lite`` without ``ddpm_lite.book``)."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] == "book":
            continue
        h.update(str(rel.as_posix()).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _digest(obj: object, h: hashlib._Hash, depth: int = 0) -> None:
    """Feed a canonical form of ``obj`` into ``h`` (tensors and arrays by their bytes)."""
    if depth > 8:
        raise ValueError("training configuration nested too deeply to key the model store")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(repr((type(obj).__name__, obj)).encode())
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(repr(("tensor", str(t.dtype), tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(repr(("array", str(a.dtype), a.shape)).encode() + a.tobytes())
    elif isinstance(obj, (np.integer, np.floating)):
        h.update(repr(("scalar", obj.item())).encode())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            _digest(str(k), h, depth + 1)
            _digest(obj[k], h, depth + 1)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _digest(item, h, depth + 1)
        h.update(b"]")
    elif isinstance(obj, torch.nn.Module):
        h.update(type(obj).__qualname__.encode())
        _digest(dict(obj.state_dict()), h, depth + 1)
    elif hasattr(obj, "__dict__"):  # a schedule, a diffusion, a t-sampler: its settings
        # Public attributes only: private ones are caches filled on use (the diffusion's
        # tables per device) or running state, which would change the key, not the weights.
        h.update(type(obj).__qualname__.encode())
        public = {k: v for k, v in vars(obj).items() if not k.startswith("_") and not callable(v)}
        _digest(public, h, depth + 1)
    else:
        raise ValueError(f"cannot key the model store on a {type(obj).__name__}; "
                         "pass plain values, tensors or arrays")


def _key(*parts: object) -> str:
    h = hashlib.sha256()
    _digest(list(parts), h)
    return h.hexdigest()[:24]


def _say(line: str) -> None:
    print(f"[model store] {line}", flush=True)


def _load(entry: Path, model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """The model, its EMA and the metadata of a complete entry; raises if anything is off."""
    for name in ("meta.json", "model.safetensors", "ema.safetensors"):
        if not (entry / name).is_file():  # a FIFO or a device in the store is not an entry
            raise ValueError(f"{entry / name} is missing or not a regular file")
    meta = json.loads((entry / "meta.json").read_text()[:1_000_000])
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{entry / 'meta.json'} is not an entry of this store format")
    # Into copies: a half-loaded network must not become the start of a fresh training.
    model, ema = copy.deepcopy(model), copy.deepcopy(model)
    model.load_state_dict(load_file(entry / "model.safetensors"))
    ema.load_state_dict(load_file(entry / "ema.safetensors"))
    model.train()
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return model, ema, meta


def _write_entry(root: Path, entry: Path, run, what: str, steps: int, losses: list,
                 seconds: float) -> None:
    """Write an entry into a temporary folder and rename it into place (all or nothing)."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; an entry is as readable as _build
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()},
                  tmp / "model.safetensors")
        save_file({k: v.detach().cpu().contiguous() for k, v in run.ema_model.state_dict().items()},
                  tmp / "ema.safetensors")
        meta = {"format": _FORMAT, "what": what, "steps": steps, "seconds": seconds,
                "losses": [[int(s), float(v)] for s, v in losses], "created": time.time()}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if entry.exists():
            shutil.rmtree(entry)  # a damaged entry we are replacing (under the lock)
        os.replace(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def trained(what: str, model: torch.nn.Module, diffusion: GaussianDiffusion,
            data: torch.Tensor, *, steps: int, **train_kwargs) -> StoredRun:
    """``train(model, diffusion, data, steps=steps, **train_kwargs)``, done once per configuration.

    ``what`` names the network for the progress line (e.g. ``"chapter 8's digits U-Net"``).
    ``model`` must be freshly built (seeded): its initial weights are part of the key.  On a
    hit the stored weights are loaded into it; on a miss it is trained (a line says what and
    for how many steps, and how long it took) and the result is stored.  The arguments are
    those of :func:`ddpm_lite.train` except ``checkpoint_dir`` and ``resume``, which the store
    manages; ``progress`` defaults to False.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int (a step budget), got {steps!r}.")
    for managed in ("checkpoint_dir", "resume", "seconds"):
        if managed in train_kwargs:
            raise ValueError(f"{managed}= is managed by the model store (entries are keyed by a "
                             "step budget); call ddpm_lite.train directly to set it.")
    train_kwargs.setdefault("progress", False)
    # What decides the weights; the device and the progress display do not.
    settings = {k: v for k, v in train_kwargs.items() if k not in ("progress", "device", "callback")}
    family = _key("family", _FORMAT, library_fingerprint(), model, diffusion, data, settings)
    key = f"{family}-{steps}"
    root = store_dir()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    with open(root / f"{family}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then loads
        if entry.is_dir():
            try:
                net, ema, meta = _load(entry, model)
                _say(f"{what}: {steps} steps, loaded (trained once, in {meta['seconds']:.0f} s)")
                return StoredRun(what, net, ema, steps, float(meta["seconds"]), True, key,
                                 [tuple(x) for x in meta["losses"]])
            except Exception as err:  # noqa: BLE001 - any damage: say so and train again
                _say(f"{what}: the stored entry {entry} is unreadable ({err}); training again")
        return _train_and_store(what, model, diffusion, data, steps, train_kwargs, root,
                                family, entry, key)


def _train_and_store(what, model, diffusion, data, steps, train_kwargs, root, family, entry,
                     key) -> StoredRun:
    """Train (resuming the family's checkpoint when it is behind ``steps``) and store."""
    run_dir, state = root / f"{family}.run", root / f"{family}.run-step"
    earlier, losses, before = 0, [], 0.0
    if "t_sampler" in train_kwargs and train_kwargs["t_sampler"] is not None:
        run_dir = Path(tempfile.mkdtemp(prefix=".run-", dir=root))  # not resumable: from 0
    else:
        stored = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in root.glob(f"{family}-*")
                        if p.name.rsplit("-", 1)[1].isdigit())
        try:  # the step the shared checkpoint stands at, as the store last left it
            at = json.loads(state.read_text()[:1000]).get("step") if state.is_file() else None
        except (OSError, ValueError, AttributeError):
            at = None
        prior = [(s, p) for s, p in stored if s == at and s < steps]
        if prior:  # the checkpoint stands at a stored budget below ours: continue from it
            earlier = prior[-1][0]
            try:
                meta = json.loads((prior[-1][1] / "meta.json").read_text()[:1_000_000])
                losses, before = [tuple(x) for x in meta["losses"]], float(meta["seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                earlier = 0  # cannot account for the earlier part: start over
        if not earlier and run_dir.exists():
            shutil.rmtree(run_dir)  # ahead of us, or of unknown state: start over
            state.unlink(missing_ok=True)
    more = steps - earlier
    _say(f"training {what}: {more} steps" + (f" (resuming at step {earlier})" if earlier else "")
         + " — first use of this configuration; later runs load it")
    start = time.perf_counter()
    try:
        run = train(model, diffusion, data, steps=steps, checkpoint_dir=run_dir, resume=True,
                    **train_kwargs)
        took = time.perf_counter() - start
        seconds = before + took
        if run.steps != steps or run.interrupted:
            raise RuntimeError(f"training {what} stopped at step {run.steps} of {steps}")
        losses = [*losses, *[(s, v) for s, v in run.losses if s > earlier]]
        _write_entry(root, entry, run, what, steps, losses, seconds)
        if run_dir.name.endswith(".run"):
            tmp = state.with_name(state.name + ".tmp")
            tmp.write_text(json.dumps({"step": steps}))
            os.replace(tmp, state)
    finally:
        if not run_dir.name.endswith(".run"):
            shutil.rmtree(run_dir, ignore_errors=True)
    _say(f"{what}: trained in {took:.0f} s ({more / took:.0f} steps/s), stored")
    return StoredRun(what, run.model, run.ema_model, steps, seconds, False, key, losses)


if __name__ == "__main__":  # pragma: no cover - `python -m ddpm_lite.book.store`: where it is
    print(store_dir(), file=sys.stdout)

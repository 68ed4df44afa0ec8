"""Joining a multi-process job, and saying in one line what went wrong when it breaks.

Three faults used to look alike (a hang, or a gloo traceback):

* **A stray environment.**  ``WORLD_SIZE=2 RANK=0`` left over in a shell makes a plain
  ``python -m ddpm_lite train`` wait for a peer that will never come.  :func:`join` counts
  the processes that reach the rendezvous store and gives up after
  ``DDPM_LITE_JOIN_TIMEOUT`` seconds (default 30 under torchrun, 10 otherwise), naming the
  variables to unset.
* **A dead rank.**  Every rank writes a heartbeat into the store twice a second.  When a
  collective fails, :func:`explain_failure` watches the heartbeats for 2.5 s and names the
  ranks that neither beat nor reported a failure of their own.
* **A frozen rank** (stopped, deadlocked, swapped out): collectives time out after
  ``DDPM_LITE_RANK_TIMEOUT`` seconds (default 120), then the same heartbeat check names it.
"""

from __future__ import annotations

import datetime
import os
import threading
import time

import torch.distributed as dist

__all__ = ["JOIN_ENV", "RANK_ENV", "join_timeout", "rank_timeout", "join", "explain_failure"]

JOIN_ENV, RANK_ENV = "DDPM_LITE_JOIN_TIMEOUT", "DDPM_LITE_RANK_TIMEOUT"
_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_BEAT_S, _WATCH_S = 0.5, 2.5
_state: dict = {}


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e7:
        raise ValueError(f"environment variable {name} must be a number of seconds > 0, got {name}={text!r}.")
    return value


def join_timeout() -> float:
    """Seconds to wait for every process to join (``DDPM_LITE_JOIN_TIMEOUT``)."""
    return _seconds(JOIN_ENV, 30.0 if os.environ.get("TORCHELASTIC_RUN_ID") else 10.0)


def rank_timeout() -> float:
    """Seconds a collective waits for a silent rank (``DDPM_LITE_RANK_TIMEOUT``, default 120)."""
    return _seconds(RANK_ENV, 120.0)


def _env() -> str:
    return ", ".join(f"{v}={os.environ[v]}" for v in _VARS if v in os.environ)


def _stray(detail: str) -> ValueError:
    return ValueError(f"{detail}; the environment says this is one process of a multi-process job ({_env()}). "
                      f"If it is not, unset {' '.join(_VARS)}; start such jobs with torchrun (set {JOIN_ENV} "
                      "to wait longer for slow nodes).")


def _client(timeout_s: float, master: bool = False) -> dist.Store:
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port or not port.isdigit():
        raise _stray("MASTER_ADDR and MASTER_PORT (an integer) must be set to join the other processes")
    world = int(os.environ["WORLD_SIZE"])
    return dist.TCPStore(addr, int(port), world, master, timeout=datetime.timedelta(seconds=timeout_s),
                         wait_for_workers=False)


def _prefix() -> str:
    run, restart = os.environ.get("TORCHELASTIC_RUN_ID", "env"), os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return f"ddpm_lite/{run}/{restart}/"


def join(rank: int, world: int, backend: str) -> None:
    """Meet the other ``world - 1`` processes within :func:`join_timeout`, then start the process
    group (collective timeout :func:`rank_timeout`) and this rank's heartbeat."""
    wait = join_timeout()
    # torchrun's agent may already serve the store on MASTER_PORT; otherwise rank 0 serves it.
    master = rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
    try:
        store = dist.PrefixStore(_prefix(), _client(wait, master))
    except (RuntimeError, OSError) as exc:  # DistStoreError / DistNetworkError: nobody serves the store
        raise _stray(f"rank {rank} could not reach the rendezvous at {os.environ.get('MASTER_ADDR')}:"
                     f"{os.environ.get('MASTER_PORT')} within {wait:g} s ({str(exc).splitlines()[0][:120]})") from None
    store.add("joined", 1)
    deadline = time.monotonic() + wait
    while (joined := store.add("joined", 0)) < world:
        if time.monotonic() > deadline:
            raise _stray(f"only {joined} of WORLD_SIZE={world} processes joined within {wait:g} s")
        time.sleep(0.05)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=rank_timeout()))
    _state.update(rank=rank, world=world, stop=threading.Event())
    threading.Thread(target=_beat, args=(rank, _state["stop"]), daemon=True, name="ddpm_lite-heartbeat").start()


def _beat(rank: int, stop: threading.Event) -> None:
    try:
        store = dist.PrefixStore(_prefix(), _client(5.0))
        while not stop.is_set():
            store.set(f"alive/{rank}", str(time.time()))
            stop.wait(_BEAT_S)
    except Exception:  # noqa: BLE001 - the store went away with rank 0: the failure path reports it
        return


def stop_heartbeat() -> None:
    """End this rank's heartbeat (on a clean shutdown)."""
    if "stop" in _state:
        _state["stop"].set()


def explain_failure(exc: BaseException) -> str:
    """One line for a failed collective: which rank stopped, and the timeout that applied."""
    rank, world = _state.get("rank", 0), _state.get("world", 1)
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    timed_out = "timed out" in str(exc).lower() or "timeout" in str(exc).lower()
    how = f" after {rank_timeout():g} s without an answer ({RANK_ENV})" if timed_out else ""
    try:
        store = dist.PrefixStore(_prefix(), _client(3.0))
        store.set(f"failed/{rank}", "1")
        first = {r: store.get(f"alive/{r}") if store.check([f"alive/{r}"]) else b"" for r in range(world)}
        time.sleep(_WATCH_S)
        silent = [r for r in range(world) if r != rank and store.get(f"alive/{r}") == first[r]
                  and not store.check([f"failed/{r}"])]
    except Exception:  # noqa: BLE001 - the store lives in rank 0's process
        if rank != 0:
            return (f"rank {rank}: rank 0 stopped{how} (the rendezvous it served at {os.environ.get('MASTER_ADDR')}:"
                    f"{os.environ.get('MASTER_PORT')} is gone); every rank stops. ({reason})")
        silent = []
    who = (f"rank {', '.join(map(str, silent))} stopped{how}" if silent
           else f"another rank stopped{how} (see the first error line of the other ranks)")
    return f"rank {rank}: {who}; every rank stops. ({reason})"

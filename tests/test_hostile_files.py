"""Run-directory files that are not what they claim, read by sample/bpd/train (issue 23, item 2),
and --fresh next to a file the run did not write (item 1). Each case: one clean error line
(exit 2) naming the file, never a hang (a 60 s alarm) or a traceback."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
from pathlib import Path

import pytest

from ddpm_lite.cli import main
from ddpm_lite.runs.checkpoint import CheckpointError, load_checkpoint

TRAIN = ["train", "--data", "swiss_roll", "--steps", "2", "--batch-size", "16", "--T", "10", "--no-progress",
         "--device", "cpu", "--checkpoint-every", "2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    return run


def _cli(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    def alarm(*_: object) -> None:
        raise TimeoutError("hang")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    try:
        rc = main([str(a) for a in argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, capsys.readouterr().err


def _one_error(rc: int, err: str, words: list[str]) -> None:
    lines = err.strip().splitlines()
    assert rc == 2 and lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[-1], (w, lines[-1])


def _replace(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "urandom":
        path.symlink_to("/dev/urandom")
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("kind,words", [("fifo", ["FIFO"]), ("zero", ["symbolic link"]),
                                        ("urandom", ["symbolic link"]), ("deep", ["nested 100000 levels"])])
@pytest.mark.parametrize("command", ["sample", "bpd", "train"])
def test_state_json_that_is_not_a_file(run_dir, tmp_path, capsys, kind, words, command) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    _replace(run / "state.json", kind)
    argv = {"sample": ["sample", "--run", run, "--n", "2", "--out", tmp_path / "s.png", "--device", "cpu"],
            "bpd": ["bpd", "--run", run, "--n", "2", "--device", "cpu"],
            "train": [*TRAIN, "--steps", "4", "--out", run]}[command]
    rc, err = _cli(argv, capsys)
    _one_error(rc, err, ["state.json", *words])


@pytest.mark.parametrize("kind,words", [("fifo", ["FIFO"]), ("zero", ["symbolic link"]),
                                        ("deep", ["nested 100000 levels"])])
def test_manifest_that_is_not_a_file(run_dir, tmp_path, capsys, kind, words) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    _replace(run / "ddpm_lite.manifest.json", kind)
    rc, err = _cli(["sample", "--run", run, "--n", "2", "--out", tmp_path / "s.png", "--device", "cpu"], capsys)
    assert rc == 0, err  # sample does not need the manifest: it is not read past its check
    rc, err = _cli([*TRAIN, "--steps", "4", "--out", run], capsys)
    _one_error(rc, err, ["ddpm_lite.manifest.json", *words])


@pytest.mark.parametrize("kind,words", [("fifo", ["FIFO"]), ("zero", ["symbolic link"])])
def test_lock_that_is_not_a_file(run_dir, tmp_path, capsys, kind, words) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    (run / "ddpm_lite.lock").write_text("")
    _replace(run / "ddpm_lite.lock", kind)
    rc, err = _cli([*TRAIN, "--steps", "4", "--out", run], capsys)
    _one_error(rc, err, ["ddpm_lite.lock", *words])


def test_lock_with_a_huge_pid_is_information_only(run_dir, tmp_path, capsys) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    (run / "ddpm_lite.lock").write_text(json.dumps({"pid": 2**40, "host": "h", "started": "s"}))
    with pytest.warns(RuntimeWarning, match="pid 1099511627776"):
        rc, err = _cli([*TRAIN, "--steps", "4", "--out", run], capsys)
    assert rc == 0, err


def _format_1(run: Path, edit) -> None:  # noqa: ANN001
    """A genuine format-1 run (see test_bad_input_matrix._as_format_1), then ``edit(state)``."""
    from test_bad_input_matrix import _as_format_1

    state = json.loads((run / "state.json").read_text())
    _as_format_1(run, state)
    edit(state)
    (run / "state.json").write_text(json.dumps(state))


def test_format_1_without_config_data(run_dir, tmp_path, capsys) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    _format_1(run, lambda s: s["config"].pop("data"))
    rc, err = _cli(["sample", "--run", run, "--n", "2", "--out", tmp_path / "s.png", "--device", "cpu"], capsys)
    _one_error(rc, err, ["config.data"])


@pytest.mark.parametrize("size", [10**6, 10**7])
def test_format_1_sizes_edited_are_refused_before_allocation(run_dir, tmp_path, capsys, size) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    _format_1(run, lambda s: s["config"]["model"].update(hidden=size))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rc, err = _cli(["sample", "--run", run, "--n", "2", "--out", tmp_path / "s.png", "--device", "cpu"], capsys)
    _one_error(rc, err, ["do not fit", str(size)])
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1_000_000  # KiB: under 1 GB grown


def test_format_1_data_shape_edited_is_refused(run_dir, tmp_path, capsys) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    _format_1(run, lambda s: s["config"]["data"].update(shape=[10, 10**6]))
    rc, err = _cli(["sample", "--run", run, "--n", "2", "--out", tmp_path / "s.png", "--device", "cpu"], capsys)
    _one_error(rc, err, ["config.data.shape", "does not fit"])


@pytest.mark.parametrize("keep_manifest", [True, False], ids=["manifest records format 2", "manifest deleted"])
def test_format_2_relabelled_as_format_1_is_refused(run_dir, tmp_path, keep_manifest) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    state = json.loads((run / "state.json").read_text())
    state.update(format_version=1, step=999)
    state.pop("state_sha256")
    (run / "state.json").write_text(json.dumps(state))
    if not keep_manifest:
        (run / "ddpm_lite.manifest.json").unlink()  # then the weights' own record catches it
    with pytest.raises(CheckpointError, match="says format 1, but format 2 was written"):
        load_checkpoint(run)


def test_step_edited_in_a_format_1_file_that_came_from_format_2_weights(run_dir, tmp_path) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    state = json.loads((run / "state.json").read_text())
    state.update(format_version=2, step=999)
    state["state_sha256"] = __import__("ddpm_lite.runs.checkpoint", fromlist=["x"]).state_digest(state)
    (run / "state.json").write_text(json.dumps(state))  # re-checksummed: only the weights can tell
    with pytest.raises(CheckpointError, match="says step 999, but its weights .* were saved at step 2"):
        load_checkpoint(run)


@pytest.mark.parametrize("how", ["cli --fresh", "api resume=False"])
def test_fresh_never_replaces_a_state_json_the_run_did_not_write(tmp_path, capsys, how) -> None:  # noqa: ANN001
    out = tmp_path / "mine"
    out.mkdir()
    (out / "state.json").write_text('{"my": "own notes"}')
    if how.startswith("cli"):
        rc, err = _cli([*TRAIN, "--fresh", "--out", out], capsys)
        _one_error(rc, err, ["state.json", "not written by"])
    else:
        from ddpm_lite import MLPDenoiser, train
        from ddpm_lite.data import swiss_roll
        from test_bad_input_matrix import DIFF

        with pytest.raises(CheckpointError, match="state.json.*not written by"):
            train(MLPDenoiser(dim=2, hidden=16, depth=1, T=10), DIFF, swiss_roll(64), steps=2, batch_size=16,
                  device="cpu", checkpoint_dir=out, resume=False, progress=False, checkpoint_every=2)
    assert (out / "state.json").read_text() == '{"my": "own notes"}'


def test_fresh_still_replaces_our_own_run(run_dir, tmp_path, capsys) -> None:  # noqa: ANN001
    run = _copy(run_dir, tmp_path)
    rc, err = _cli([*TRAIN, "--fresh", "--steps", "2", "--out", run], capsys)
    assert rc == 0, err
    assert load_checkpoint(run)["step"] == 2


@pytest.mark.parametrize("argv", [["train", "--data", "", "--steps", "1", "--out", "r"],
                                  ["train", "--data", "digits", "--steps", "1", "--out", ""],
                                  ["sample", "--run", "", "--out", "s.png"], ["bpd", "--run", ""]],
                         ids=["--data ''", "--out ''", "sample --run ''", "bpd --run ''"])
def test_empty_paths_are_refused(argv, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "got '' (write . for the current folder)" in err, err


def _big_pngs(folder: Path, n: int = 4, side: int = 1024) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((side, side, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_image_size_beyond_the_loader_is_refused_at_once(tmp_path, capsys) -> None:  # noqa: ANN001
    folder = _big_pngs(tmp_path / "imgs", n=2, side=16)
    rc, err = _cli(["train", "--data", folder, "--image-size", "20000", "--steps", "1", "--out", tmp_path / "r"],
                   capsys)
    _one_error(rc, err, ["--image-size 20000", "4096x4096", "smaller --image-size"])


def test_large_images_without_image_size_are_refused_with_the_numbers(tmp_path, capsys) -> None:  # noqa: ANN001
    folder = _big_pngs(tmp_path / "imgs")
    rc, err = _cli(["train", "--data", folder, "--mode", "RGB", "--steps", "1", "--device", "cpu",
                    "--out", tmp_path / "r"], capsys)
    _one_error(rc, err, ["1024x1024 px images at --batch-size 128", "needs about", "GB free",
                         "lower --image-size (e.g. 64) or --batch-size"])
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_sample_n_beyond_memory_is_refused_before_sampling(run_dir, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    from ddpm_lite.nets import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 10_000)  # a tiny machine
    rc, err = _cli(["sample", "--run", run_dir, "--n", "5000", "--out", tmp_path / "s.png", "--device", "cpu"],
                   capsys)
    _one_error(rc, err, ["sampling --n 5000", "needs about", "lower --n"])
    assert not (tmp_path / "s.png").exists()

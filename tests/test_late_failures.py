"""Arguments that decide whether a run can happen are checked before anything is loaded or
trained; a finished run's missing outputs can be written again; memory is budgeted."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from numpy_unet.app import cli
from numpy_unet.app.cli import main
from numpy_unet.data.saving import write_png

SMALL = ["--size", "32", "--filters", "2", "--depth", "1", "--workers", "0"]


def seed_folder(root: Path, n: int, size: int = 32) -> Path:
    """A folder in the seed's layout: image/ and label/ with ``n`` pairs of PNGs."""
    rng = np.random.default_rng(0)
    for sub in ("image", "label"):
        (root / sub).mkdir(parents=True)
    for k in range(n):
        write_png(root / "image" / f"{k}.png", rng.random((size, size)))
        write_png(root / "label" / f"{k}.png", (rng.random((size, size)) > 0.5) * 1.0)
    return root


def test_save_result_is_where_the_readme_says():
    from numpy_unet.data import save_result

    assert callable(save_result)


def test_recipe_seed_refuses_another_optimizer(tmp_path, capsys):
    argv = ["train", "--recipe", "seed", "--optimizer", "sgd", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--recipe seed trains with the seed's Adam" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_batch_larger_than_the_images_is_refused_before_loading(tmp_path, capsys):
    data = seed_folder(tmp_path / "one", 1)
    started = time.monotonic()
    argv = ["train", "--data", str(data), "--batch-size", "2", "--val-split", "0"]
    assert main([*argv, "--out", str(tmp_path / "o"), *SMALL]) == 2
    assert "--batch-size 2 is larger than the 1 image(s) left to train on" in (
        capsys.readouterr().err
    )
    assert time.monotonic() - started < 2 and not (tmp_path / "o").exists()
    argv = ["train", "--images", "3", "--val-split", "0.5", "--batch-size", "2"]
    assert main([*argv, "--out", str(tmp_path / "o"), *SMALL]) == 2  # 3 - 2 held out = 1
    assert "larger than the 1 image(s)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--images", "100000000"], "more than half this machine's memory"),
        (["--images", "600000", "--size", "128"], "more than half this machine's memory"),
        (["--recipe", "paper", "--tile", "100000"], "more than --max-pixels"),
    ],
)
def test_runs_that_cannot_fit_in_memory_are_refused_at_once(tmp_path, capsys, argv, message):
    started = time.monotonic()
    assert main(["train", *argv, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert time.monotonic() - started < 2


def test_memory_error_is_a_one_line_error(monkeypatch, capsys):
    def too_big(args):
        raise MemoryError("Unable to allocate 37.0 GiB for an array")

    monkeypatch.setattr(cli, "_summary", too_big)
    parser_default = cli.build_parser().parse_args(["summary"]).func
    monkeypatch.setattr(cli, "build_parser", _parser_with(parser_default, too_big))
    assert main(["summary"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory (Unable to allocate 37.0 GiB") and "--tile" in err


def _parser_with(old, new):
    real = cli.build_parser

    def build():
        parser = real()
        for action in parser._subparsers._group_actions[0].choices.values():
            if action.get_default("func") is old:
                action.set_defaults(func=new)
        return parser

    return build


def test_test_images_are_read_before_training(tmp_path, capsys):
    data = seed_folder(tmp_path / "train", 4)
    test = tmp_path / "test"
    test.mkdir()
    write_png(test / "0.png", np.zeros((32, 32)))
    good = (test / "0.png").read_bytes()
    (test / "1.png").write_bytes(good[: len(good) // 2])  # truncated
    argv = ["train", "--recipe", "seed", "--data", str(data), "--test", str(test)]
    started = time.monotonic()
    assert main([*argv, "--steps-per-epoch", "1", "--out", str(tmp_path / "o"), *SMALL]) == 2
    assert "1.png" in capsys.readouterr().err
    assert time.monotonic() - started < 3 and not (tmp_path / "o").exists()  # nothing trained
    (test / "1.png").unlink()
    write_png(test / "y.png", np.zeros((32, 32)))
    (test / "y.tif").write_bytes(b"")
    assert main([*argv, "--test-names", "stem", "--out", str(tmp_path / "o"), *SMALL]) == 2
    assert "would both write y_predict.png" in capsys.readouterr().err


def test_a_finished_run_writes_what_it_lacks_on_resume(tmp_path, capsys):
    data = seed_folder(tmp_path / "train", 4)
    test = tmp_path / "test"
    test.mkdir()
    for k in range(3):
        write_png(test / f"{k}.png", np.full((40, 40), k / 3))
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--test", str(test), "--epochs", "1", "--out", str(out)]
    argv += ["--val-split", "0.25", *SMALL]
    assert main(argv) == 0
    best = hashlib.sha256((out / "best_weights.npz").read_bytes()).hexdigest()
    kept = (out / "test" / "0_predict.png").read_bytes()
    for lost in ("metrics.json", "predictions.png", "test/1_predict.png", "test/2_predict.png"):
        (out / lost).unlink()  # a kill or a full disk during the final evaluation
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert "holds a complete run (1 epochs): writing the outputs it lacks" in (
        capsys.readouterr().out
    )
    for made in ("metrics.json", "predictions.png", "test/1_predict.png", "test/2_predict.png"):
        assert (out / made).is_file()
    assert hashlib.sha256((out / "best_weights.npz").read_bytes()).hexdigest() == best
    assert (out / "test" / "0_predict.png").read_bytes() == kept  # what was there stays


def test_predict_tiles_an_image_too_big_for_its_budget(tmp_path, capsys, monkeypatch):
    from numpy_unet import UNet

    model = UNet((32, 32, 1), filters=2, depth=1, seed=0)
    weights = model.save_weights(tmp_path / "w.npz")
    write_png(tmp_path / "big.png", np.random.default_rng(0).random((128, 96)))
    assert cli.auto_tile(model, 128, 96) is None  # the real budget: one pass
    monkeypatch.setattr(cli, "PREDICT_BUDGET", cli.forward_bytes(model, 40, 40))
    assert cli.auto_tile(model, 128, 96, cli.PREDICT_BUDGET) == 40
    argv = ["predict", "--weights", str(weights), str(tmp_path / "big.png")]
    assert main([*argv, "--out", str(tmp_path / "o"), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "predicting it in tiles of 40 (--tile N to choose)" in out
    assert (tmp_path / "o" / "big_prob.png").is_file()


def test_messages_name_the_option_or_the_file(tmp_path, capsys):
    from numpy_unet import UNet

    model = UNet((16, 16, 1), filters=2, depth=1, seed=0)
    with pytest.raises(TypeError, match="set_weights: weights must be a list of arrays"):
        model.set_weights(None)
    model.compile("adam", "binary_crossentropy")
    y = np.zeros((2, 16, 16, 1))
    with pytest.raises(ValueError, match="fit: x must be an array of real numbers"):
        model.fit("hello", y, verbose=0)
    with pytest.raises(ValueError, match="x must be an array of real numbers, got complex"):
        model.fit(np.zeros((2, 16, 16, 1)) + 1j, y, verbose=0)
    with pytest.raises(FileNotFoundError, match=r"save_weights: the folder .*nodir does not"):
        model.save_weights(tmp_path / "nodir" / "w.npz")
    assert main(["summary", "--paper", "--size", "5"]) == 2
    assert "Nearest valid heights: 188." in capsys.readouterr().err
    for command in (["summary"], ["train", "--out", str(tmp_path / "o")]):
        assert main([*command, "--seed", "-1"]) == 2
        assert "--seed must be 0 or more, got -1" in capsys.readouterr().err
    weights = model.save_weights(tmp_path / "w.npz")
    write_png(tmp_path / "a.png", np.zeros((16, 16)))
    write_png(tmp_path / "b.png", np.zeros((16, 16)))
    (tmp_path / "out" / "b_prob.png").mkdir(parents=True)  # a folder where a file goes
    argv = ["predict", "--weights", str(weights), str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert main([*argv, "--out", str(tmp_path / "out"), "--overwrite"]) == 2
    assert "b_prob.png is a folder" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a_prob.png").exists()  # refused before writing any


def test_weights_that_are_not_files_or_not_keras_get_clear_errors(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    np.savez(tmp_path / "bad.npz", config=np.array("{not json"), a=np.zeros(2))
    write_png(tmp_path / "a.png", np.zeros((16, 16)))
    cases = {
        tmp_path / "other.h5": "is an HDF5 file but not Keras's",
        tmp_path / "bad.npz": "its stored configuration is not valid JSON",
        tmp_path: "is a folder, not a weights file",
        Path("/dev/zero"): "is not a regular file",
    }
    for weights, message in cases.items():
        argv = ["predict", "--weights", str(weights), str(tmp_path / "a.png")]
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_an_image_of_another_kind_or_too_big_to_decode_is_refused_from_its_header(tmp_path):
    import struct
    import zlib

    from numpy_unet.data import read_image

    jpeg = tmp_path / "photo.png"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))  # a JPEG's first bytes, named .png
    with pytest.raises(
        ValueError, match=r"photo.png is named .png but it is a JPEG file; rename it"
    ):
        read_image(jpeg)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    huge = tmp_path / "huge.png"  # a header declaring 30000 x 30000, and nothing else
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.MonkeyPatch.context() as patch:  # as on a machine of 16 GiB
        import numpy_unet.data.loading as loading

        patch.setattr(loading, "_machine_memory", lambda: 16 * 2**30)
        with pytest.raises(ValueError, match=r"decoding it takes about 13.4 GiB, more than half"):
            read_image(huge, max_pixels=10**12)


def test_a_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    import errno
    import os

    from numpy_unet import UNet
    from numpy_unet.files import atomic_write_text

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # every atomic writer flushes, then syncs
    model = UNet((16, 16, 1), filters=2, depth=1, seed=0)
    target = tmp_path / "w.npz"
    with pytest.raises(OSError, match=rf"cannot write {target}: No space left on device"):
        model.save_weights(target)
    with pytest.raises(OSError, match=r"cannot write .*a\.png: No space left"):
        write_png(tmp_path / "a.png", np.zeros((4, 4)))
    with pytest.raises(OSError, match=r"cannot write .*h\.json: No space left"):
        atomic_write_text(tmp_path / "h.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no half file, no temporary

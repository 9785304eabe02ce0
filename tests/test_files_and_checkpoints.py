"""Lost or mixed files, and corrupted checkpoints (issue 32).

1. Two runs started at once into one ``--out`` get two folders, each complete.
2. A user's file named like a temporary file is never opened, overwritten or deleted.
3. A hand-edited checkpoint that cannot be continued changes nothing: it is checked whole
   before any file is written.
12. Every damaged checkpoint is refused in one line naming the file and what is wrong; a
    resume without the run's augmentation says so in words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imsave

from numpy_unet import UNet
from numpy_unet.app.cli import main
from numpy_unet.data import Augmenter
from numpy_unet.files import atomic_savez, atomic_write_text, fresh_dir, temporary
from numpy_unet.train.checkpoint import CHECKPOINT

TRAIN = ["train", "--images", "6", "--size", "32", "--filters", "2", "--depth", "2"]
TRAIN += ["--steps-per-epoch", "1"]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of ``folder``: its bytes and when it was last written."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# -- 1. output folders are claimed atomically -----------------------------------------------
CLAIM = """
import sys, time
from pathlib import Path
from numpy_unet.files import fresh_dir

base, who = Path(sys.argv[1]), sys.argv[2]
(base / f"ready-{who}").touch()
while not (base / "go").exists():  # both processes start claiming at the same moment
    time.sleep(0.0005)
folders = [fresh_dir(base / "runs" / f"run{i}") for i in range(40)]
for folder in folders:  # a run writes its first file a while after it took its folder
    (folder / f"by-{who}").write_text(who)
    print(folder)
"""


def start_together(base: Path, commands: dict[str, list[str]]) -> dict[str, str]:
    """Run the commands as processes released at once; return each one's output."""
    processes = {
        who: subprocess.Popen(
            command, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for who, command in commands.items()
    }
    deadline = time.monotonic() + 60
    while not all((base / f"ready-{who}").exists() for who in commands):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.01)
    (base / "go").touch()
    outputs = {}
    for who, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs[who] = out
    return outputs


def test_two_processes_claiming_the_same_names_get_distinct_folders(tmp_path):
    for attempt in range(3):
        base = tmp_path / f"attempt{attempt}"
        base.mkdir()
        commands = {who: [sys.executable, "-c", CLAIM, str(base), who] for who in "AB"}
        outputs = start_together(base, commands)
        claimed = {who: out.split() for who, out in outputs.items()}
        every = claimed["A"] + claimed["B"]
        assert len(every) == 80 and len(set(every)) == 80  # no folder given twice
        for who, folders in claimed.items():
            for folder in folders:  # each folder holds its own process's file, only
                assert [p.name for p in Path(folder).iterdir()] == [f"by-{who}"]
        runs = sorted(p.name for p in (base / "runs").iterdir())
        assert runs == sorted([f"run{i}" for i in range(40)] + [f"run{i}-2" for i in range(40)])


DEMO = """
import sys, time
from pathlib import Path
from numpy_unet.app.cli import main

base = Path(sys.argv[1])
(base / f"ready-{sys.argv[2]}").touch()
while not (base / "go").exists():
    time.sleep(0.0005)
sys.exit(main(["demo", "--quick", "--out", str(base / "mix")]))
"""


def test_two_demo_runs_into_one_out_write_two_complete_folders(tmp_path):
    files = ["best_weights.npz", "checkpoint.npz", "history.json", "metrics.json"]
    files += ["predictions.png", "training_curves.png"]
    for attempt in range(2):
        base = tmp_path / f"attempt{attempt}"
        base.mkdir()
        commands = {who: [sys.executable, "-c", DEMO, str(base), who] for who in "AB"}
        outputs = start_together(base, commands)
        folders = sorted(p.name for p in base.iterdir() if p.is_dir())
        assert folders == ["mix", "mix-2"]
        for name in folders:
            assert sorted(p.name for p in (base / name).iterdir()) == files
            json.loads((base / name / "metrics.json").read_text())  # whole
        said = [
            [name for name in folders if str(base / name / "metrics.json") in out]
            for out in outputs.values()
        ]
        assert sorted(said) == [["mix"], ["mix-2"]]  # each run reports its own folder


def test_an_existing_folder_is_never_written_into(tmp_path):
    (tmp_path / "empty").mkdir()
    assert fresh_dir(tmp_path / "empty") == tmp_path / "empty-2"  # another run may own it
    assert fresh_dir(tmp_path / "empty") == tmp_path / "empty-3"
    (tmp_path / "taken-2").write_text("a user's file")
    (tmp_path / "taken").mkdir()
    assert fresh_dir(tmp_path / "taken") == tmp_path / "taken-3"
    assert (tmp_path / "taken-2").read_text() == "a user's file"
    assert fresh_dir(tmp_path / "new" / "nested") == tmp_path / "new" / "nested"
    (tmp_path / "a-file").write_text("keep")
    with pytest.raises(FileExistsError, match="a-file is a file, not a folder"):
        fresh_dir(tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "keep"


# -- 2. temporary files: a name no other file has, and only ours deleted ---------------------
def test_temporary_makes_a_new_file_of_a_name_no_other_file_has(tmp_path):
    target = tmp_path / "checkpoint.npz"
    (tmp_path / ".checkpoint.npz.tmp").write_text("precious")
    made = {temporary(target) for _ in range(50)}
    assert len(made) == 50
    for tmp in made:
        assert tmp.parent == tmp_path and tmp.name.startswith(".checkpoint.npz.")
        assert tmp.name.endswith(".tmp") and tmp.read_bytes() == b""
    assert (tmp_path / ".checkpoint.npz.tmp").read_text() == "precious"


def test_saved_files_keep_the_permissions_of_an_ordinary_open(tmp_path):
    old = os.umask(0o022)
    try:
        saved = atomic_savez(tmp_path / "a.npz", {"a": np.zeros(3)})
        text = atomic_write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    for path in (saved, text):  # not mkstemp's private 0o600
        assert path.stat().st_mode & 0o777 == 0o644


def test_saves_leave_a_users_file_named_like_their_old_temporary(tmp_path):
    from numpy_unet.data.saving import write_png

    pytest.importorskip("h5py")  # for the .h5 save
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    names = [".w.npz.tmp", ".w.h5.tmp", ".p.png.tmp", ".c.npz.tmp"]
    for name in names:
        (tmp_path / name).write_text("precious")
    model.save_weights(tmp_path / "w.npz")
    model.save_weights(tmp_path / "w.h5")
    write_png(tmp_path / "p.png", np.zeros((4, 4)))
    atomic_savez(tmp_path / "c.npz", {"a": np.ones(2)})
    for name in names:
        assert (tmp_path / name).read_text() == "precious"
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted([*names, "w.npz", "w.h5", "p.png", "c.npz"])  # no temporary left


def test_predict_leaves_a_users_file_named_like_a_temporary_one(tmp_path, capsys):
    weights = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "w.npz")
    (tmp_path / "pa").mkdir()
    imsave(tmp_path / "pa" / "x.png", np.random.default_rng(0).random((16, 16)), cmap="gray")
    out = tmp_path / "po"
    out.mkdir()
    (out / ".x_prob.png.tmp").write_text("precious\n")
    assert main(["predict", "--weights", weights, str(tmp_path / "pa"), "--out", str(out)]) == 0
    assert (out / ".x_prob.png.tmp").read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir()) == [".x_prob.png.tmp", "x_mask.png", "x_prob.png"]


def test_resume_leaves_a_users_file_named_like_a_temporary_one(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    for name in (".checkpoint.npz.tmp", ".best_weights.npz.tmp"):
        (out / name).write_text("precious\n")
    assert main([*TRAIN, "--epochs", "2", "--resume", "--out", str(out)]) == 0
    for name in (".checkpoint.npz.tmp", ".best_weights.npz.tmp"):
        assert (out / name).read_text() == "precious\n"
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 2


# -- 3 and 12: a checkpoint is checked whole, before anything is written ---------------------
def small_model(seed: int = 0) -> UNet:
    model = UNet((16, 16, 1), filters=2, depth=2, seed=seed)
    model.compile("adam", "binary_crossentropy", metrics=["dice"])
    return model


def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    return x, (x > 0.5).astype(np.float32)


FIT = dict(batch_size=2, epochs=3, verbose=0)


@pytest.fixture
def run(tmp_path) -> Path:
    """A checkpoint folder after one epoch of a run with augmentation and dropout."""
    x, y = tiny_data()
    folder = tmp_path / "run"
    small_model().fit(
        x, y, **(FIT | dict(epochs=1)), augment=Augmenter(seed=0), checkpoint_dir=folder
    )
    return folder


def edit(change):
    """A damage that rewrites a checkpoint with ``change(arrays)`` applied; its "meta" is
    then a dict (re-encoded after the change if it still is one)."""

    def apply(path: Path) -> None:
        with np.load(path) as data:
            arrays = dict(data)
        arrays["meta"] = json.loads(str(arrays["meta"]))
        change(arrays)
        if isinstance(arrays.get("meta"), dict):
            arrays["meta"] = np.array(json.dumps(arrays["meta"]))
        np.savez(path, **arrays)

    return apply


def set_meta(**values):
    return edit(lambda arrays: arrays["meta"].update(values))


def drop(key):
    return edit(lambda arrays: arrays["meta"].pop(key))


def drop_array(prefix):
    return edit(lambda arrays: arrays.pop(next(k for k in arrays if k.startswith(prefix))))


def first_rng_state(state):
    return edit(lambda arrays: arrays["meta"]["rng_states"].__setitem__(0, state))


def history_of(name, values):
    return edit(lambda arrays: arrays["meta"]["history"].__setitem__(name, values))


def first_weight(function):
    def change(arrays):
        key = next(k for k in arrays if k.startswith("weight:"))
        arrays[key] = function(arrays[key])

    return edit(change)


def two_epochs_of_history(arrays):  # the optimizer, though, made the steps of one epoch
    meta = arrays["meta"]
    meta.update(epoch=2, history={k: v * 2 for k, v in meta["history"].items()})


def content(data: bytes):
    return lambda path: path.write_bytes(data)


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {  # name: (what is done to checkpoint.npz, what the one line says)
    "truncated": (truncated, "is not a .npz archive"),
    "empty": (content(b""), "is empty"),
    "garbage": (content(b"not a checkpoint at all" * 20), "is not a .npz archive"),
    "no meta": (edit(lambda arrays: arrays.pop("meta")), "has no 'meta' entry"),
    "bad json": (edit(lambda arrays: arrays.update(meta=np.array("{not json"))), "not valid JSON"),
    "meta not an object": (edit(lambda arrays: arrays.update(meta=np.array("[1]"))), "JSON object"),
    "no rng_states": (drop("rng_states"), "lacks ['rng_states']"),
    "no optimizer slot": (drop_array("optimizer:m:"), "has no optimizer state 'm'"),
    "no optimizer steps": (drop_array("optimizer:iterations"), "optimizer's step count"),
    "no weight": (drop_array("weight:"), "has no weights for"),
    "unknown entry": (edit(lambda arrays: arrays.update(extra=np.zeros(1))), "'extra'"),
    "bad rng state": (first_rng_state({"bit_generator": "PCG64", "state": "x"}), "not a valid"),
    "rng state of another kind": (first_rng_state({"bit_generator": "MT19937"}), "not a valid"),
    "string epoch": (set_meta(epoch="1"), "'epoch' must be an int >= 0, got '1'"),
    "negative epoch": (set_meta(epoch=-1), "'epoch' must be an int >= 0, got -1"),
    "boolean step": (set_meta(step=True), "'step' must be an int >= 0"),
    "step of 10**9": (set_meta(step=10**9), "step 1000000000"),
    "step beyond the epoch": (set_meta(step=3, sums={"loss": 1.0, "dice": 1.0}), "has 2 steps"),
    "short history": (history_of("loss", []), "has 0 value(s) for 1 epoch(s)"),
    "history of text": (history_of("loss", ["low"]), "list of numbers"),
    "other metrics": (history_of("iou", [0.5]), "compile with the same metrics"),
    "sums without a step": (set_meta(sums={"loss": 1.0}), "at step 0"),
    "nan seconds": (set_meta(seconds=float("nan")), "'seconds' must be a finite number"),
    "no best": (set_meta(best=None), "'best' must be a number"),
    "optimizer behind": (edit(two_epochs_of_history), "fewer than the 4"),
    "weight of another shape": (first_weight(lambda w: w[..., :1]), "this model's is"),
    "nan weight": (first_weight(lambda w: w * np.nan), "NaN or inf"),
}


def damage(folder: Path, name: str) -> None:
    DAMAGE[name][0](folder / CHECKPOINT)


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_checkpoint_is_one_line_naming_it_and_changes_nothing(run, name):
    damage(run, name)
    before = snapshot(run)
    model = small_model(seed=5)
    weights = model.get_weights()
    x, y = tiny_data()
    with pytest.raises(ValueError) as caught:
        model.fit(x, y, **FIT, augment=Augmenter(seed=0), checkpoint_dir=run, resume=True)
    message = str(caught.value)
    assert "\n" not in message and str(run / CHECKPOINT) in message
    assert DAMAGE[name][1] in message
    assert snapshot(run) == before  # not a byte, not a time stamp
    for a, b in zip(weights, model.get_weights()):  # and the model as it was
        np.testing.assert_array_equal(a, b)


def test_read_checkpoint_gives_the_checked_metadata(run):
    from numpy_unet.train.checkpoint import read_checkpoint  # what the command line can use

    meta, arrays = read_checkpoint(run / CHECKPOINT)
    assert meta["epoch"] == 1 and meta["step"] == 0 and len(meta["history"]["loss"]) == 1
    assert "meta" not in arrays and any(k.startswith("weight:") for k in arrays)


def test_a_mid_epoch_checkpoint_still_resumes(run, tmp_path):
    x, y = tiny_data()
    folder = tmp_path / "mid"
    model = small_model()
    model.fit(x, y, **FIT, augment=Augmenter(seed=0), checkpoint_dir=folder, checkpoint_every=1)
    edit(lambda arrays: None)(folder / CHECKPOINT)  # a plain rewrite: still valid
    history = small_model().fit(
        x,
        y,
        **(FIT | dict(epochs=4)),
        augment=Augmenter(seed=0),
        checkpoint_dir=folder,
        resume=True,
    )
    assert len(history.history["loss"]) == 4


def test_resume_without_the_runs_augmentation_says_so_in_words(run):
    x, y = tiny_data()
    with pytest.raises(ValueError, match="saved by a run with augmentation, and this run has none"):
        small_model().fit(x, y, **FIT, checkpoint_dir=run, resume=True)
    folder = run.parent / "plain"
    small_model().fit(x, y, **(FIT | dict(epochs=1)), checkpoint_dir=folder)
    with pytest.raises(ValueError, match="saved by a run without augmentation, and this run aug"):
        small_model().fit(
            x, y, **FIT, augment=Augmenter(seed=0), checkpoint_dir=folder, resume=True
        )


def test_train_resume_with_no_augment_is_one_line_in_words(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "2", "--resume", "--no-augment", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "with augmentation" in err and "same options" in err
    assert "--no-augment" in err and snapshot(out) == before


@pytest.mark.parametrize("sums", [{}, {"loss": 1.0, "accuracy": 1.0, "dice": 1.0, "iou": 1.0}])
def test_train_resume_of_a_hand_edited_step_touches_nothing(tmp_path, capsys, sums):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 0
    set_meta(step=10**9, sums=sums)(out / CHECKPOINT)
    before = snapshot(out)
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "6", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / CHECKPOINT) in err and "step 1000000000" in err
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "name", ["garbage", "no meta", "bad json", "string epoch", "negative epoch", "bad rng state"]
)
def test_train_resume_of_a_damaged_checkpoint_is_one_line(tmp_path, capsys, name):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    damage(out, name)
    before = snapshot(out)
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "2", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / CHECKPOINT) in err
    assert snapshot(out) == before


@pytest.mark.parametrize("name", ["truncated", "empty"])
def test_train_resume_of_a_truncated_or_empty_checkpoint_is_one_line(tmp_path, capsys, name):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    damage(out, name)
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "2", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / CHECKPOINT) in err

"""The speed engine's life: everything it starts belongs to one model's engine and ends with it,
and every way out is clean. A forked child predicts; Ctrl-C in a terminal (SIGINT to the whole
process group) during ``train`` saves the checkpoint and resumes bit for bit; SIGTERM, SIGKILL
at any moment, Ctrl-C during ``predict`` or while a worker starts, and a Jupyter kernel's
shutdown print no traceback and leave no process and no file behind."""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.fast import workers as fast_workers

pytestmark = pytest.mark.skipif(
    not (fast_workers.can_start() and Path("/proc/self/task").exists()),
    reason="needs worker processes and /proc (Linux)",
)

# a short run of the command: a thin network, so that a worker process runs half of each batch
TRAIN = ["train", "--images", "16", "--size", "64", "--filters", "8", "--depth", "2"]
TRAIN += ["--epochs", "3", "--steps-per-epoch", "12", "--batch-size", "4", "--workers", "1"]


def children(pid: int) -> set[int]:
    """The processes ``pid`` started that are still its children."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def running(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie waiting to be reaped)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def gone_within(pids: set[int], seconds: float) -> set[int]:
    """The pids still running after ``seconds`` (polled)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and any(running(p) for p in pids):
        time.sleep(0.05)
    return {p for p in pids if running(p)}


def shm_files() -> set[str]:
    folder = Path("/dev/shm")
    return (
        {p.name for p in folder.iterdir() if "numpy-unet" in p.name} if folder.is_dir() else set()
    )


def start(args: list[str], **kwargs) -> subprocess.Popen:
    """``numpy-unet ARGS`` in a process group of its own, as a terminal starts a command."""
    return subprocess.Popen(
        [sys.executable, "-m", "numpy_unet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=dict(os.environ, MPLBACKEND="Agg"),
        **kwargs,
    )


@contextlib.contextmanager
def stopped_at_the_end(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Whatever the test says, the process group it started ends with it."""
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def read_until(process: subprocess.Popen, prefix: str) -> list[str]:
    lines = []
    while True:
        line = process.stdout.readline()
        assert line, f"the run ended before printing {prefix!r}: {lines}"
        lines.append(line)
        if line.startswith(prefix):
            return lines


def test_a_forked_child_predicts_the_same_numbers():
    # the parent's engines hold helper threads (the wide network's halves) and a worker
    # process (the thin one's batch split); a child forked now starts its own
    wide = UNet((32, 32, 1), filters=40, depth=2, seed=0)
    thin = UNet((32, 32, 1), filters=4, depth=2, seed=0)
    x1 = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    x2 = np.random.default_rng(1).random((2, 32, 32, 1), dtype=np.float32)
    expected = wide.predict(x1), thin.predict(x2)
    assert thin.engine.runtime().split.workers, "the thin network's batch ran in two parts"
    context = multiprocessing.get_context("fork")
    answers = context.Queue()

    def child() -> None:
        t0 = time.monotonic()
        got = wide.predict(x1), thin.predict(x2)
        same = all(np.array_equal(a, b) for a, b in zip(got, expected))
        answers.put((same, time.monotonic() - t0, thin.engine._mode))

    process = context.Process(target=child)
    process.start()
    same, seconds, mode = answers.get(timeout=60)
    process.join(10)
    assert same and process.exitcode == 0 and mode == "split"
    assert seconds < 10, f"the child took {seconds:.1f} s"
    assert np.array_equal(thin.predict(x2), expected[1])  # the parent's engine still works
    wide.close()
    thin.close()


def checkpoint_state(folder: Path) -> tuple[dict, dict]:
    """The weights and the metadata (time stripped) of a run's last checkpoint."""
    with np.load(folder / "checkpoint.npz") as data:
        weights = {k: data[k] for k in data if k != "meta"}
        meta = json.loads(str(data["meta"]))
    meta.pop("seconds", None)
    for key in list(meta["history"]):
        if key == "time":
            del meta["history"][key]
    return weights, meta


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_saves_and_resumes_bit_for_bit(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    with stopped_at_the_end(start([*TRAIN, "--out", str(straight)])) as run:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    with stopped_at_the_end(start([*TRAIN, "--out", str(stopped)])) as run:
        lines = read_until(run, "Epoch 1/")
        assert "worker process" in "".join(lines)  # fit's first line says what it starts
        workers = children(run.pid)
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
        out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "resume from" in out
    assert not gone_within(workers, 3)
    _, meta = checkpoint_state(stopped)
    # where it stopped: in epoch 2, or at its very start when the Ctrl-C came between
    # epoch 1's line and the next step (a loaded machine makes that race likely)
    assert (meta["epoch"], meta["step"]) >= (1, 0) and meta["epoch"] < 3
    with stopped_at_the_end(start([*TRAIN, "--out", str(stopped), "--resume"])) as resumed:
        out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "Resuming from" in out and "Traceback" not in err
    (w1, m1), (w2, m2) = checkpoint_state(straight), checkpoint_state(stopped)
    assert m1 == m2
    assert w1.keys() == w2.keys() and all(np.array_equal(w1[k], w2[k]) for k in w1)


@pytest.mark.slow
def test_sigterm_and_sigkill_leave_no_process_and_no_file(tmp_path):
    before = shm_files()
    with stopped_at_the_end(start([*TRAIN, "--epochs", "50", "--out", str(tmp_path / "t")])) as run:
        read_until(run, "Epoch 1/")
        workers = children(run.pid)
        assert workers
        os.killpg(run.pid, signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    assert run.returncode == -signal.SIGTERM and "Traceback" not in err, err
    assert not gone_within(workers, 3), "a worker outlived SIGTERM"
    moments = random.Random(0)
    for k in range(10):  # SIGKILL at ten moments: starting, loading, training, saving
        with stopped_at_the_end(
            start([*TRAIN, "--epochs", "50", "--out", str(tmp_path / str(k))])
        ) as run:
            seen: set[int] = set()
            end = time.monotonic() + moments.uniform(0.2, 3.0)
            while time.monotonic() < end:
                seen |= children(run.pid)
                time.sleep(0.01)
            seen |= children(run.pid)
            run.kill()
            _, err = run.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert not gone_within(seen, 3), f"kill {k}: a worker outlived its parent"
    assert shm_files() == before


SCRIPT = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a CI job may
# start its commands with Ctrl-C ignored, which Python's own handler then respects)
import numpy as np
from numpy_unet import UNet
model = UNet(({size}, {size}, 1), filters={filters}, depth=3, seed=0)
x = np.random.default_rng(0).random((4, {size}, {size}, 1), dtype=np.float32)
print("ready", flush=True)
try:
    while True:
        model.predict(x, batch_size=4)
except KeyboardInterrupt:
    print("stopped", flush=True)
"""


@pytest.mark.parametrize(
    ("filters", "delay"),
    [(40, 0.5), (8, 0.5), (8, 0.0), (8, 0.05)],  # a wide network in halves, a thin one split
)
def test_ctrl_c_during_predict_or_while_a_worker_starts_is_clean(filters, delay):
    code = SCRIPT.format(size=64, filters=filters)
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    with stopped_at_the_end(process) as run:
        assert run.stdout.readline().strip() == "ready"
        seen = children(run.pid)
        time.sleep(delay)
        seen |= children(run.pid)
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0 and out.strip() == "stopped", err
    assert err == "", err  # no worker's traceback, no "Exception ignored", no fatal error
    assert not gone_within(seen, 3)


@pytest.mark.slow
def test_a_jupyter_kernels_shutdown_is_clean(tmp_path):
    manager = pytest.importorskip("jupyter_client").KernelManager(kernel_name="python3")
    with open(tmp_path / "kernel.err", "w+") as log:
        try:
            manager.start_kernel(stdout=log, stderr=log)
        except Exception as error:  # noqa: BLE001 - no kernel installed here
            pytest.skip(f"no Jupyter kernel: {error}")
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        code = (
            "import numpy as np\nfrom numpy_unet import UNet\n"
            "model = UNet((32, 32, 1), filters=4, depth=2, seed=0)\n"
            "model.predict(np.zeros((4, 32, 32, 1), np.float32)).shape"
        )
        reply = client.execute_interactive(code, timeout=120)
        assert reply["content"]["status"] == "ok"
        kernel = manager.provisioner.process.pid
        workers = children(kernel)
        client.stop_channels()
        manager.shutdown_kernel(now=False)
        assert workers and not gone_within(workers, 5)
        log.seek(0)
        text = log.read()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text


def test_a_worker_imports_the_package_its_parent_imported(tmp_path):
    # run from a folder that holds another numpy_unet (say, a student's course copy): the
    # worker still imports the package its parent uses, and the batch is split
    (tmp_path / "numpy_unet").mkdir()
    (tmp_path / "numpy_unet" / "__init__.py").write_text("raise ImportError('the wrong copy')\n")
    root = Path(fast_workers.PACKAGE_ROOT)
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\n"
        "import numpy as np\nfrom numpy_unet import UNet\n"
        "model = UNet((16, 16, 1), filters=2, depth=1, workers=1)\n"
        "model.predict(np.zeros((2, 16, 16, 1), np.float32))\n"
        "print(model.engine._mode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.strip() == "split"


def test_close_with_and_garbage_collection_end_the_engines_work():
    x = np.zeros((2, 16, 16, 1), np.float32)
    helpers = {t for t in threading.enumerate() if t.name.startswith("numpy-unet")}
    with UNet((16, 16, 1), filters=2, depth=1) as model:
        model.predict(x)
        (worker,) = model.engine.runtime().split.workers
        assert running(worker.process.pid)
    assert not gone_within({worker.process.pid}, 5)  # the with block closed it
    model.predict(x)  # and a closed engine starts again when needed
    (again,) = model.engine.runtime().split.workers
    pid = again.process.pid
    del model, again
    gc.collect()
    assert not gone_within({pid}, 5)  # a model that goes, takes its worker with it
    wide = UNet((16, 16, 1), filters=40, depth=1)
    blas = wide.engine.runtime().blas
    threads = blas.threads()
    wide.predict(x[:1])  # in halves: a helper thread, BLAS on one thread meanwhile
    assert blas.threads() == threads  # BLAS as it was after the call
    wide.close()
    time.sleep(0.2)
    now = {t for t in threading.enumerate() if t.name.startswith("numpy-unet")}
    assert now <= helpers  # the helper threads stopped with close()


def test_a_pickled_model_keeps_its_settings_not_its_processes():
    model = UNet((16, 16, 1), filters=2, depth=1, workers=0, seed=0)
    x = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)
    y = model.predict(x)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.fast and copy.workers == 0 and copy.engine is not model.engine
    assert all(c.engine is copy.engine for c in copy.layers if hasattr(c, "engine"))
    np.testing.assert_array_equal(copy.predict(x), y)

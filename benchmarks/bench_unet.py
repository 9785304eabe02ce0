"""Time the whole UNet: ``predict`` and one training step, beside PyTorch on the same CPU.

What it measures (float32, batch 1 by default, the seed's UNet at 256x256x1):

- numpy-unet ``predict(x)`` and one training step (forward in training mode, binary
  cross-entropy, backward); medians over ``--repeats`` runs after one warm-up;
- where PyTorch is installed (``pip install torch==2.13.0``, CPU build), the same network
  with the same weights in PyTorch, in the same process, the two alternating run by run so
  that machine noise hits both alike; then the ratio numpy / PyTorch; and, as a sanity
  check, the largest difference between the two predictions;
- the same for the demo's small UNet (``numpy-unet demo``: filters 8, 128x128, batch 4);
- peak memory of one training step: each framework runs in a fresh subprocess, takes one
  step, resets the kernel's peak-RSS counter (/proc/self/clear_refs), takes a second step and
  reports the peak RSS above the memory in use right after its imports (so weights,
  gradients and the step's activations count, the frameworks' own code does not). For the
  comparison both children return freed memory to the kernel at once (glibc's mmap and
  trim thresholds at 64-128 KB, and ``keep_freed_memory(False)`` after building the model,
  which would otherwise set numpy_unet.fast.allocator's settings in both processes): the peak
  is then the memory really in use. A third child reports numpy-unet as it runs, keeping
  freed memory for reuse (numpy_unet/fast/allocator.py).

Run from the repository root::

    python benchmarks/bench_unet.py                    # seed UNet, 256x256, 2 threads
    python benchmarks/bench_unet.py --filters 16 --size 128
    python benchmarks/bench_unet.py --quick            # 64x64, filters 8: a smoke test
    python benchmarks/bench_unet.py --layers --scaling  # plus per-layer and scaling tables
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="input height and width")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--filters", type=int, default=64, help="64 is the seed's UNet")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="BLAS / PyTorch threads")
    p.add_argument("--quick", action="store_true", help="64x64, filters 8, 2 repeats")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--layers", action="store_true", help="also time every layer of one step")
    p.add_argument(
        "--scaling",
        action="store_true",
        help="also time predict and a step over sizes 64-512 and batches 1-4",
    )
    p.add_argument(
        "--memory-child", choices=["numpy", "torch", "numpy-kept"], help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.filters, args.repeats = 64, 8, 2
    return args


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before NumPy loads its BLAS
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from numpy_unet import UNet  # noqa: E402
from numpy_unet.fast import keep_freed_memory  # noqa: E402
from numpy_unet.losses import BinaryCrossentropy  # noqa: E402


def have_torch() -> bool:
    if ARGS.no_torch:
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_inputs(rng: np.random.Generator, batch: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    shape = (batch, size, size, 1)
    x = rng.random(shape, dtype=np.float32)
    y = (rng.random(shape) < 0.78).astype(np.float32)  # ~78% cells, as in ISBI
    return x, y


def numpy_step(model: UNet, x: np.ndarray, y: np.ndarray) -> None:
    """Forward in training mode, BCE, backward: everything but the optimizer update."""
    loss = BinaryCrossentropy()
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())


def torch_runner(model: UNet, x: np.ndarray, y: np.ndarray):
    import torch
    import torch.nn.functional as F
    from torch_unet import TorchUNet, to_numpy, to_torch

    torch.set_num_threads(ARGS.threads)
    twin = TorchUNet(model)
    xt, yt = to_torch(x), to_torch(y)

    def predict() -> np.ndarray:
        with torch.no_grad():
            return to_numpy(twin.forward(xt))

    def step() -> None:
        for p in twin.parameters():
            p.grad = None
        F.binary_cross_entropy(twin.forward(xt, training=True), yt).backward()

    return predict, step


def rss_mb(field: str) -> float:
    """VmRSS (memory in use) or VmHWM (peak since the last reset), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(which: str) -> None:
    """Two steps; print the second's peak RSS above the RSS right after the imports."""
    if which == "torch":
        import torch  # noqa: F401  (imported before the baseline, like numpy)
    base = rss_mb("VmRSS")
    # numpy-unet as it runs (numpy-kept) keeps freed memory for reuse; for the comparison
    # both return it at once, so that the peak is the memory really in use
    keep_freed_memory(which == "numpy-kept")
    model = UNet((ARGS.size, ARGS.size, 1), filters=ARGS.filters, seed=0)
    x, y = make_inputs(np.random.default_rng(0), ARGS.batch, ARGS.size)
    if which != "torch":
        step = lambda: numpy_step(model, x, y)  # noqa: E731
    else:
        _, step = torch_runner(model, x, y)
        del model  # the twin has its own copy of the weights
    step()  # warm-up: gradients exist from now on, as in training
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    step()
    print(json.dumps({"peak_mb": rss_mb("VmHWM") - base}))


def measure_memory(which: str) -> float | None:
    """Peak MB of a training step (see the module docstring), from a fresh subprocess."""
    cmd = [sys.executable, __file__, "--memory-child", which]
    for option in ("size", "batch", "filters", "threads"):
        cmd += [f"--{option}", str(getattr(ARGS, option))]
    env = dict(os.environ)
    if which != "numpy-kept":
        env |= {"MALLOC_MMAP_THRESHOLD_": "65536"}  # freed blocks go back at once
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"  memory child ({which}) failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def layer_table(model: UNet, x: np.ndarray, y: np.ndarray) -> None:
    """Forward and backward time of every layer in one training step, with each conv's
    GFLOP/s beside a plain np.matmul of its im2col size (the BLAS ceiling)."""
    times: dict[str, list[float]] = {}
    originals = []
    for layer in model.layers:  # wrap each layer's forward and backward with a timer
        originals.append((layer, layer.forward, layer.backward))

        def timed(fn, key):
            def run(*args, **kwargs):
                t0 = time.perf_counter()
                out = fn(*args, **kwargs)
                times.setdefault(key, []).append(time.perf_counter() - t0)
                return out

            return run

        layer.forward = timed(layer.forward, (layer.name, "fwd"))
        layer.backward = timed(layer.backward, (layer.name, "bwd"))
    for _ in range(3):
        numpy_step(model, x, y)
    for layer, fwd, bwd in originals:
        layer.forward, layer.backward = fwd, bwd
    macs = {r.name: r.mult_adds for r in model.rows}
    print(
        f"\n{'layer':12}{'fwd ms':>9}{'bwd ms':>9}{'fwd GF/s':>10}{'bwd GF/s':>10}"
        f"{'matmul GF/s':>13}"
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        f = statistics.median(times[(layer.name, "fwd")])
        b = statistics.median(times[(layer.name, "bwd")])
        flop = 2 * macs[layer.name] * ARGS.batch
        cells = [f"{f * 1e3:9.1f}", f"{b * 1e3:9.1f}"]
        if flop:
            kernel = layer.params["kernel"]
            m = flop // (2 * kernel.size)  # output pixels (input pixels for a transposed conv)
            a = rng.standard_normal((int(m), int(np.prod(kernel.shape[:3]))), dtype=np.float32)
            w = rng.standard_normal((a.shape[1], kernel.shape[3]), dtype=np.float32)
            np.matmul(a, w)
            t0 = time.perf_counter()
            np.matmul(a, w)
            mm = time.perf_counter() - t0
            cells += [
                f"{flop / f / 1e9:10.1f}",
                f"{2 * flop / b / 1e9:10.1f}",
                f"{flop / mm / 1e9:13.1f}",
            ]
        print(f"{layer.name:12}" + "".join(cells))


def scaling_table() -> None:
    """numpy-unet's predict and step time over input sizes and batch sizes (medians of 3):
    the cost should grow linearly with the number of pixels."""
    print(f"\n{'input':>16}{'predict ms':>12}{'step ms':>10}{'step ms/Mpixel':>16}")
    for size, batch in [(64, 1), (128, 1), (256, 1), (512, 1), (128, 2), (128, 4)]:
        model = UNet((size, size, 1), filters=ARGS.filters, seed=0)
        rng = np.random.default_rng(0)
        x = rng.random((batch, size, size, 1), dtype=np.float32)
        y = (rng.random(x.shape) < 0.78).astype(np.float32)
        p = _median_time(model.predict, x, batch_size=batch)
        s = _median_time(numpy_step, model, x, y)
        mpix = batch * size * size / 1e6
        print(f"{f'{batch}x{size}x{size}':>16}{p * 1e3:12.0f}{s * 1e3:10.0f}{s * 1e3 / mpix:16.0f}")


def _median_time(fn, *args, repeats: int = 3, **kwargs) -> float:
    """Median seconds of ``fn(*args, **kwargs)`` over ``repeats`` runs after a warm-up."""
    fn(*args, **kwargs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare(label: str, size: int, filters: int, batch: int, torch_ok: bool) -> UNet:
    """predict and training-step medians, numpy-unet and PyTorch alternating run by run."""
    model = UNet((size, size, 1), filters=filters, seed=0)
    x, y = make_inputs(np.random.default_rng(0), batch, size)
    gflop = 2 * sum(r.mult_adds for r in model.rows) * batch / 1e9
    print(
        f"\n{label}: filters {filters}, {model.count_params():,} parameters; input "
        f"{batch}x{size}x{size}x1 float32; forward {gflop:.2f} GFLOP"
    )
    runs = {
        "numpy predict": lambda: model.predict(x, batch_size=batch),
        "numpy step": lambda: numpy_step(model, x, y),
    }
    if torch_ok:
        t_predict, t_step = torch_runner(model, x, y)
        runs |= {"torch predict": t_predict, "torch step": t_step}
        diff = np.abs(model.predict(x) - t_predict()).max()
        print(f"max |numpy - torch| prediction difference {diff:.2e}")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(ARGS.repeats):
        for name, fn in runs.items():  # alternate: numpy, then torch, then numpy ...
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"{'':16}{'numpy-unet':>14}{'PyTorch':>14}{'numpy/torch':>14}{'numpy GFLOP/s':>16}")
    for what, key, flop in (("predict", "predict", gflop), ("training step", "step", 3 * gflop)):
        n, t = med[f"numpy {key}"], med.get(f"torch {key}")
        cells = [
            f"{n * 1e3:>12.0f}ms",
            f"{t * 1e3:>12.0f}ms" if t else f"{'-':>14}",
            f"{n / t:>14.2f}" if t else f"{'-':>14}",
            f"{flop / n:>16.1f}",
        ]
        print(f"{what:16}" + "".join(cells))
    return model


def main() -> None:
    if ARGS.memory_child:
        memory_child(ARGS.memory_child)
        return
    keep_freed_memory()  # as the numpy-unet command does; PyTorch, in the same process, too
    torch_ok = have_torch()
    print(
        f"numpy {np.__version__}; {ARGS.threads} threads; medians of {ARGS.repeats} after 1 warm-up"
    )
    if torch_ok:
        import torch

        print(f"PyTorch {torch.__version__}, run alternately in the same process")
    else:
        print("PyTorch not installed (pip install torch==2.13.0): numpy-unet only")
    label = "the seed's UNet" if ARGS.filters == 64 else "UNet"
    model = compare(label, ARGS.size, ARGS.filters, ARGS.batch, torch_ok)
    x, y = make_inputs(np.random.default_rng(0), ARGS.batch, ARGS.size)

    mem = {w: measure_memory(w) for w in (["numpy", "torch"] if torch_ok else ["numpy"])}
    print("peak memory of a training step (weights, gradients, activations), in use:")
    for which, peak in mem.items():
        if peak is not None:
            print(f"  {which:6} {peak:8.0f} MB")
    if mem.get("numpy") and mem.get("torch"):
        print(f"  ratio numpy/torch {mem['numpy'] / mem['torch']:.2f}")
    kept = measure_memory("numpy-kept")
    if kept is not None:
        print(f"  numpy as it runs, freed memory kept for reuse: {kept:.0f} MB")
    if not ARGS.quick:
        compare("the demo's UNet (numpy-unet demo)", 128, 8, 4, torch_ok)
    if ARGS.layers:
        layer_table(model, x, y)
    if ARGS.scaling:
        scaling_table()


if __name__ == "__main__":
    main()

"""Time the whole UNet: ``predict`` and one training step, beside PyTorch on the same CPU.

What it measures (float32, 2 threads), for three networks by default: the seed's (64 filters,
256x256, batch 1), the real-data setting of ``train_isbi.py`` (16 filters, 256x256, batch 2)
and the demo's (8 filters, 128x128, batch 4); ``--filters/--size/--batch`` time one other.

- numpy-unet ``predict(x)`` and one training step (``model.forward(x, training=True)``,
  binary cross-entropy, ``model.backward``), with the model's speed switch on (the
  default): for networks of at most 32 filters the engine splits a batch over the cores,
  the second part in a worker process, and otherwise (the seed's network, or one thin
  image of 256x256 or more) cuts each layer's work in two halves, one per core
  (numpy_unet/fast/);
- where PyTorch is installed (``pip install torch==2.13.0``, CPU build), the same network
  with the same weights in PyTorch, in the same process, and the ratio numpy / PyTorch; as a
  sanity check, the largest difference between the two predictions;
- **timed in blocks, never interleaved**: one framework is warmed up and run ``--repeats``
  times, then the other, and the whole twice over; each framework's figure is the median of
  its better block. After a BLAS call OpenBLAS's threads keep spinning for a while, and a
  framework run right after the other competes with them for the cores: alternating run by
  run slows whichever comes second. A short pause separates the blocks;
- PyTorch at its best on a CPU: its block runs with channels-first (NCHW) and channels-last
  (NHWC memory, ``torch.channels_last``) tensors and weights, and the faster counts (both
  are printed);
- the machine's ``np.matmul`` float32 ceiling, measured in the same run (a 2048-cube
  product), so that the GFLOP/s of each framework can be read against it;
- peak memory of one training step: each framework runs in a fresh subprocess, takes one
  step, resets the kernel's peak-RSS counter (/proc/self/clear_refs), takes a second step and
  reports the peak RSS above the memory in use right after its imports (so weights,
  gradients and the step's activations count, the frameworks' own code does not). For the
  comparison both children return freed memory to the kernel at once (glibc's mmap and
  trim thresholds at 64-128 KB, and ``keep_freed_memory(False)`` after building the model,
  which would otherwise set numpy_unet.fast.allocator's settings in both processes): the peak
  is then the memory really in use. A third child reports numpy-unet as it runs, keeping
  freed memory for reuse (numpy_unet/fast/allocator.py).

- ``--loop`` (and by default, for the 16-filter network): a step of ``fit`` (its time for
  ten steps, divided by ten) against the same ten steps written by hand, forward, loss,
  backward and the optimizer's update: the speed engine lives in ``forward`` and
  ``backward``, so the two should take the same time.

Run from the repository root::

    python benchmarks/bench_unet.py                    # the three networks, 2 threads
    python benchmarks/bench_unet.py --filters 16 --size 128 --batch 2
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
    p.add_argument("--size", type=int, default=None, help="input height and width")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--filters", type=int, default=None, help="64 is the seed's UNet")
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
        "--loop", action="store_true", help="only: a step of fit against one written by hand"
    )
    p.add_argument(
        "--memory-child", choices=["numpy", "torch", "numpy-kept"], help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.filters, args.repeats = 64, 8, 2
    args.networks = NETWORKS
    if any(v is not None for v in (args.size, args.batch, args.filters)):  # one network
        seed = NETWORKS[0][1:]
        one = (args.filters or seed[0], args.size or seed[1], args.batch or seed[2])
        args.networks = [("UNet", *one)]
    args.filters, args.size, args.batch = args.networks[0][1:]  # the first, for --layers
    return args


NETWORKS = [  # (label, filters, size, batch)
    ("the seed's UNet", 64, 256, 1),
    ("16 filters (train_isbi.py)", 16, 256, 2),
    ("the demo's UNet", 8, 128, 4),
]


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before NumPy loads its BLAS
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from numpy_unet import UNet  # noqa: E402
from numpy_unet.fast import Engine, keep_freed_memory  # noqa: E402
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
    """Forward in training mode, BCE, backward: everything but the optimizer update, as a
    loop written by hand runs it (and ``fit``)."""
    loss = BinaryCrossentropy()
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())


def torch_runner(model: UNet, x: np.ndarray, y: np.ndarray, channels_last: bool = False):
    """PyTorch's predict and training step of ``model``'s twin; with ``channels_last`` the
    input, the target and the weights are in NHWC memory (``torch.channels_last``)."""
    import torch
    import torch.nn.functional as F
    from torch_unet import TorchUNet, to_numpy, to_torch

    torch.set_num_threads(ARGS.threads)
    twin = TorchUNet(model)
    xt, yt = to_torch(x), to_torch(y)
    if channels_last:
        xt, yt = (t.contiguous(memory_format=torch.channels_last) for t in (xt, yt))
        with torch.no_grad():
            for w in twin.weights.values():
                kernel = w["kernel"].detach().contiguous(memory_format=torch.channels_last)
                w["kernel"] = kernel.requires_grad_(True)

    def predict() -> np.ndarray:
        with torch.no_grad():
            return to_numpy(twin.forward(xt))

    def step() -> None:
        for p in twin.parameters():
            p.grad = None
        F.binary_cross_entropy(twin.forward(xt, training=True), yt).backward()

    return predict, step


def rss_mb(field: str, pid: int | str = "self") -> float:
    """VmRSS (memory in use) or VmHWM (peak since the last reset) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(which: str) -> None:
    """Two steps; print the second's peak RSS above the RSS right after the imports, this
    process's plus its worker processes' (``numpy_unet/fast/workers.py``), each above its own
    RSS once started."""
    if which == "torch":
        import torch  # noqa: F401  (imported before the baseline, like numpy)
    engine = Engine()
    if which != "torch":  # start the workers (which import all) on a tiny model first
        tiny = UNet((8, 8, 1), filters=2, depth=1)
        tiny.engine = engine
        tiny.predict(np.zeros((4, 8, 8, 1), np.float32))
    workers = [w.process.pid for w in engine.runtime().split.workers]
    base = rss_mb("VmRSS")
    bases = [rss_mb("VmRSS", pid) for pid in workers]
    # numpy-unet as it runs (numpy-kept) keeps freed memory for reuse; for the comparison
    # both return it at once, so that the peak is the memory really in use
    keep_freed_memory(which == "numpy-kept")
    model = UNet((ARGS.size, ARGS.size, 1), filters=ARGS.filters, seed=0)
    model.engine = engine  # the engine whose workers are measured
    x, y = make_inputs(np.random.default_rng(0), ARGS.batch, ARGS.size)
    if which != "torch":
        step = lambda: numpy_step(model, x, y)  # noqa: E731
    else:
        _, step = torch_runner(model, x, y)
        del model  # the twin has its own copy of the weights
    step()  # warm-up: gradients exist from now on, as in training
    for pid in ["self", *workers]:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    step()
    peak = rss_mb("VmHWM") - base
    peak += sum(rss_mb("VmHWM", pid) - b for pid, b in zip(workers, bases))
    print(json.dumps({"peak_mb": peak}))


def measure_memory(which: str, filters: int, size: int, batch: int) -> float | None:
    """Peak MB of a training step (see the module docstring), from a fresh subprocess."""
    cmd = [sys.executable, __file__, "--memory-child", which, "--threads", str(ARGS.threads)]
    cmd += ["--filters", str(filters), "--size", str(size), "--batch", str(batch)]
    env = dict(os.environ)
    if which != "numpy-kept":
        env |= {"MALLOC_MMAP_THRESHOLD_": "65536"}  # freed blocks go back at once
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"  memory child ({which}) failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def layer_table(model: UNet, x: np.ndarray, y: np.ndarray) -> None:
    """Forward and backward time of every layer in one training step (medians of 5 steps
    after a warm-up), with each conv's GFLOP/s beside a plain np.matmul of its im2col size
    (the BLAS ceiling)."""
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
    # the speed engine's fused up-sampling + up-conv runs neither layer's own methods: time
    # it under the up-conv's name (its up-sampling then shows as fused)
    engine = model.engine
    fused = engine.upsample_conv, engine.upsample_conv_backward
    engine.upsample_conv = lambda up, conv, x: timed(fused[0], (conv.name, "fwd"))(up, conv, x)
    engine.upsample_conv_backward = lambda up, conv, d: timed(fused[1], (conv.name, "bwd"))(
        up, conv, d
    )
    model.workers = 0  # layer by layer: the whole batch through each, no parts
    try:
        numpy_step(model, x, y)  # a warm-up step, not counted: its first allocations fault
        times.clear()
        for _ in range(5):
            numpy_step(model, x, y)
    finally:
        model.workers = None
        del engine.upsample_conv, engine.upsample_conv_backward
        for layer, fwd, bwd in originals:
            layer.forward, layer.backward = fwd, bwd
    macs = {r.name: r.mult_adds for r in model.rows}
    print(
        f"\n{'layer':12}{'fwd ms':>9}{'bwd ms':>9}{'fwd GF/s':>10}{'bwd GF/s':>10}"
        f"{'matmul GF/s':>13}"
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if (layer.name, "fwd") not in times:
            print(f"{layer.name:12}   (fused into the next up-conv by the speed engine)")
            continue
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


def loop_table(filters: int, size: int, batch: int, steps: int = 10) -> None:
    """A step of ``fit`` against the same steps written by hand (forward, loss, backward,
    the optimizer's update), each in its own block, medians of 3 runs of ``steps`` steps."""
    x, y = make_inputs(np.random.default_rng(0), batch, size)
    model = UNet((size, size, 1), filters=filters, seed=0)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])

    def by_hand() -> None:
        loss = BinaryCrossentropy()
        for _ in range(steps):
            loss.forward(model.forward(x, training=True), y)
            model.backward(loss.backward())
            model.optimizer.step(model)

    def by_fit() -> None:
        model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, verbose=0)

    hand = _median_time(by_hand) / steps
    time.sleep(1.0)
    fit = _median_time(by_fit) / steps
    print(
        f"\nfilters {filters}, {batch}x{size}x{size}: a step of fit {fit * 1e3:.0f} ms, the same "
        f"step by hand {hand * 1e3:.0f} ms (ratio hand / fit {hand / fit:.2f})"
    )
    model.close()


def scaling_table(torch_ok: bool) -> None:
    """Training-step time over input sizes and batch sizes, for the 16-filter network and the
    seed's, numpy-unet beside PyTorch (channels-last), each in its own block (medians of 3):
    the cost should grow linearly with the number of pixels."""
    print(
        f"\n{'filters':>8}{'input':>14}{'numpy ms':>10}{'torch ms':>10}{'ratio':>7}"
        f"{'numpy ms/Mpx':>14}"
    )
    for filters in (16, 64):
        for size, batch in [(64, 1), (128, 1), (256, 1), (512, 1), (128, 2), (128, 4)]:
            model = UNet((size, size, 1), filters=filters, seed=0)
            x, y = make_inputs(np.random.default_rng(0), batch, size)
            n = _median_time(numpy_step, model, x, y)
            time.sleep(1.0)
            t = None
            if torch_ok:
                t = _median_time(torch_runner(model, x, y, channels_last=True)[1])
                time.sleep(1.0)
            model.close()
            mpix = batch * size * size / 1e6
            cells = f"{n * 1e3:10.0f}" + (
                f"{t * 1e3:10.0f}{n / t:7.2f}" if t else f"{'-':>10}{'-':>7}"
            )
            print(f"{filters:8}{f'{batch}x{size}x{size}':>14}{cells}{n * 1e3 / mpix:14.0f}")


def _median_time(fn, *args, repeats: int = 3, **kwargs) -> float:
    """Median seconds of ``fn(*args, **kwargs)`` over ``repeats`` runs after a warm-up."""
    fn(*args, **kwargs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_ceiling() -> float:
    """GFLOP/s of a float32 ``np.matmul`` of two 2048 x 2048 matrices (median of 5)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    return 2 * 2048**3 / _median_time(np.matmul, a, b, repeats=5) / 1e9


def time_block(runs: dict) -> dict[str, float]:
    """Medians of each run over ``--repeats``, after one warm-up each, the runs of one
    framework only; then a pause, so that its BLAS threads are idle before the next block."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ARGS.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    time.sleep(1.0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def compare(
    label: str, filters: int, size: int, batch: int, torch_ok: bool, ceiling: float
) -> dict:
    """predict and training-step times of numpy-unet and PyTorch, timed in blocks."""
    model = UNet((size, size, 1), filters=filters, seed=0)
    x, y = make_inputs(np.random.default_rng(0), batch, size)
    gflop = 2 * sum(r.mult_adds for r in model.rows) * batch / 1e9
    print(
        f"\n{label}: filters {filters}, {model.count_params():,} parameters; input "
        f"{batch}x{size}x{size}x1 float32; forward {gflop:.2f} GFLOP"
    )
    blocks = {
        "numpy": {
            "predict": lambda: model.predict(x, batch_size=batch),
            "step": lambda: numpy_step(model, x, y),
        }
    }
    if torch_ok:
        for name, last in (("torch NCHW", False), ("torch NHWC", True)):
            t_predict, t_step = torch_runner(model, x, y, channels_last=last)
            blocks[name] = {"predict": t_predict, "step": t_step}
        diff = np.abs(model.predict(x) - blocks["torch NHWC"]["predict"]()).max()
        print(f"max |numpy - torch| prediction difference {diff:.2e}")
    best: dict[str, dict[str, float]] = {}
    for _ in range(2):  # every framework's block, twice over; the better block counts
        for name, runs in blocks.items():
            for what, t in time_block(runs).items():
                best.setdefault(name, {})[what] = min(t, best.get(name, {}).get(what, np.inf))
    result = {"label": label, "filters": filters, "size": size, "batch": batch}
    result |= {f"numpy_{k}": v for k, v in best["numpy"].items()}
    header = f"{'':16}{'numpy-unet':>12}"
    if torch_ok:
        header += f"{'torch NCHW':>12}{'torch NHWC':>12}{'numpy/torch':>13}"
    print(header + f"{'numpy GF/s':>12}{'torch GF/s':>12}   (matmul ceiling {ceiling:.0f})")
    for what, key, flop in (("predict", "predict", gflop), ("training step", "step", 3 * gflop)):
        n = best["numpy"][key]
        cells = [f"{n * 1e3:>10.0f}ms"]
        if torch_ok:
            nchw, nhwc = best["torch NCHW"][key], best["torch NHWC"][key]
            t = min(nchw, nhwc)  # PyTorch at its best
            result |= {f"torch_{key}": t, f"ratio_{key}": n / t}
            cells += [f"{nchw * 1e3:>10.0f}ms", f"{nhwc * 1e3:>10.0f}ms", f"{n / t:>13.2f}"]
            cells += [f"{flop / n:>12.1f}", f"{flop / t:>12.1f}"]
        else:
            cells += [f"{flop / n:>12.1f}"]
        print(f"{what:16}" + "".join(cells))
    mem = {
        w: measure_memory(w, filters, size, batch)
        for w in (["numpy", "torch"] if torch_ok else ["numpy"])
    }
    print("peak memory of a training step (weights, gradients, activations), in use:", end="")
    print("".join(f"  {w} {m:.0f} MB" for w, m in mem.items() if m is not None), end="")
    if mem.get("numpy") and mem.get("torch"):
        print(f"  (ratio {mem['numpy'] / mem['torch']:.2f})", end="")
        result["memory_ratio"] = mem["numpy"] / mem["torch"]
    print()
    model.close()  # its engine's worker process, if it started one
    return result


def main() -> None:
    if ARGS.memory_child:
        memory_child(ARGS.memory_child)
        return
    keep_freed_memory()  # as the numpy-unet command does; PyTorch, in the same process, too
    if ARGS.loop:
        loop_table(16, 256, 2)
        return
    torch_ok = have_torch()
    ceiling = matmul_ceiling()
    print(
        f"numpy {np.__version__}; {ARGS.threads} threads; np.matmul float32 ceiling "
        f"{ceiling:.0f} GFLOP/s; medians of {ARGS.repeats} after 1 warm-up, each framework "
        "in its own block, twice over, the better block counted"
    )
    if torch_ok:
        import torch

        print(f"PyTorch {torch.__version__}, same process, blocks not interleaved")
    else:
        print("PyTorch not installed (pip install torch==2.13.0): numpy-unet only")
    results = [compare(*network, torch_ok, ceiling) for network in ARGS.networks]
    if torch_ok:
        print("\nsummary, numpy-unet / PyTorch (lower is better; 1 = as fast):")
        for r in results:
            print(
                f"  {r['label']:28} predict {r['ratio_predict']:.2f}   step {r['ratio_step']:.2f}"
                + (f"   memory {r['memory_ratio']:.2f}" if "memory_ratio" in r else "")
            )
    if ARGS.networks is NETWORKS:
        loop_table(16, 256, 2)
    kept = measure_memory("numpy-kept", ARGS.filters, ARGS.size, ARGS.batch)
    if kept is not None:
        print(
            f"numpy as it runs ({ARGS.networks[0][0]}), freed memory kept for reuse: {kept:.0f} MB"
        )
    if ARGS.layers:
        model = UNet((ARGS.size, ARGS.size, 1), filters=ARGS.filters, seed=0)
        layer_table(model, *make_inputs(np.random.default_rng(0), ARGS.batch, ARGS.size))
        model.close()
    if ARGS.scaling:
        scaling_table(torch_ok)


if __name__ == "__main__":
    main()

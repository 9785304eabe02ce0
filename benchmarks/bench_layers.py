"""Layer timings for the seed UNet's shapes, against the BLAS ceiling of a plain matmul.

What it measures, for batch 1, float32, 256x256 input (the seed's size):

- Conv2D 3x3 'same' (ReLU, as in the seed) at every depth of the UNet, the decoder conv
  after concatenation (128->64), the 2x2 'same' up-conv (1024->512 at 32x32, after
  UpSampling2D) and a Conv2DTranspose(512, 2, strides=2) from 16x16x1024;
- MaxPooling2D(2) and UpSampling2D(2) (times only, their GFLOP/s column is '-').

A layer on its own runs its readable code (im2col for a conv); ``--engine`` gives each
conv a speed engine (``numpy_unet.fast.Engine``), as a UNet whose switch is on does, with
the algorithm its rules pick and BLAS's own threads.

For each layer: median forward and backward time (ms) over R repeats after one warm-up
call, and GFLOP/s with FLOP = 2*M*K*N for the forward and twice that for the backward
(the dx and dkernel products). For a convolution M = N*Ho*Wo, K = kh*kw*Cin, N = Cout (its
im2col product); for the transposed convolution M = N*H*W of the *input*, K = Cin,
N = kh*kw*Cout, the product the layer really does. Beside each conv row, the GFLOP/s of a
plain float32 ``A (M, K) @ B (K, N)`` timed in the same loop, alternating with the layer,
so that machine noise hits both alike: the BLAS ceiling, and the ratio fwd / matmul.

``--algorithms`` times, for every conv of the seed's UNet (256x256, batch 1), of the
16-filter one (256x256, batch 2) and of the demo's (8 filters, 128x128, batch 4), forward plus
backward by each of the speed engine's algorithms, forced on (``Engine(algorithm=...)``):
the readable im2col of ``layers/conv2d.py``, shifted products (``fast/conv.py``), pixel
pairs (``fast/pairs.py``) and Winograd's F(2x2, 3x3) (``fast/winograd.py``); it prints which
the rules pick. These runs are what the rules rest on; ``benchmarks/RESULTS.md`` keeps them.
The thin networks' convs are timed as they run inside a UNet, one core's part of the batch
with BLAS on one thread; the seed's whole, on BLAS's threads. The up-convs are timed here as
plain 2x2 convs after an up-sampling; inside a UNet they run fused (``fast/upconv.py``).

Run from the repository root::

    python benchmarks/bench_layers.py               # full size, 5 repeats
    python benchmarks/bench_layers.py --engine      # the convs by the speed engine
    python benchmarks/bench_layers.py --algorithms  # im2col against the speed engine
    python benchmarks/bench_layers.py --repeats 9
    python benchmarks/bench_layers.py --quick       # 64x64 input, 2 repeats: a smoke test

Thread counts are BLAS's own; set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to change them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the package importable
    sys.path.insert(0, str(ROOT))

from numpy_unet import UNet  # noqa: E402
from numpy_unet.fast import Engine, keep_freed_memory  # noqa: E402
from numpy_unet.layers import (  # noqa: E402
    Conv2D,
    Conv2DTranspose,
    Layer,
    MaxPooling2D,
    UpSampling2D,
)

DTYPE = np.float32


@dataclass
class Case:
    """One row of the table: a layer, its input shape and its main product (M, K, N)."""

    name: str
    layer: Layer
    x_shape: tuple[int, int, int, int]
    mkn: tuple[int, int, int] | None = None  # None: no FLOP count (pooling, upsampling)


def conv_case(cin: int, cout: int, size: int, k: int = 3) -> Case:
    """Conv2D k x k 'same' with ReLU, cin -> cout at size x size, batch 1."""
    layer = Conv2D(
        cout,
        k,
        padding="same",
        activation="relu",
        kernel_initializer="he_normal",
        dtype="float32",
        seed=0,
    )
    return Case(
        f"Conv2D {k}x{k} {cin}->{cout}",
        layer,
        (1, size, size, cin),
        (size * size, k * k * cin, cout),
    )


def build_cases(scale: int) -> list[Case]:
    """The seed UNet's shapes at a 256x256 input, spatial sizes divided by ``scale``."""
    s = 256 // scale
    convt = Conv2DTranspose(
        512,
        2,
        strides=2,
        padding="same",
        activation="relu",
        kernel_initializer="he_normal",
        dtype="float32",
        seed=0,
    )
    return [
        conv_case(1, 64, s),
        conv_case(64, 64, s),
        conv_case(128, 128, s // 2),
        conv_case(256, 256, s // 4),
        conv_case(512, 512, s // 8),
        conv_case(1024, 1024, s // 16),
        conv_case(128, 64, s),
        conv_case(1024, 512, s // 8, k=2),
        Case(
            "Conv2DTranspose 2x2/2 1024->512",
            convt,
            (1, s // 16, s // 16, 1024),
            ((s // 16) ** 2, 1024, 2 * 2 * 512),
        ),
        Case("MaxPooling2D 2", MaxPooling2D(2), (1, s, s, 64)),
        Case("UpSampling2D 2", UpSampling2D(2), (1, s // 2, s // 2, 128)),
    ]


def measure(case: Case, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """Median forward, backward and matmul times (s), interleaved in one loop."""
    x = rng.standard_normal(case.x_shape, dtype=DTYPE)
    dy = rng.standard_normal(case.layer.forward(x).shape, dtype=DTYPE)  # warm-up forward
    case.layer.backward(dy)  # warm-up backward
    a = b = None
    if case.mkn is not None:
        m, k, n = case.mkn
        a = rng.standard_normal((m, k), dtype=DTYPE)
        b = rng.standard_normal((k, n), dtype=DTYPE)
        np.matmul(a, b)  # warm-up matmul
    fwd, bwd, mm = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        case.layer.forward(x)
        t1 = time.perf_counter()
        case.layer.backward(dy)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        if a is not None:
            t3 = time.perf_counter()
            np.matmul(a, b)
            mm.append(time.perf_counter() - t3)
    med = statistics.median
    return {"fwd": med(fwd), "bwd": med(bwd), "mm": med(mm) if mm else float("nan")}


def blas_name() -> str:
    """BLAS library name and version from ``numpy.show_config``, or '?' if unavailable."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):  # NumPy < 1.26 has no mode='dicts'
        return "?"
    return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()


def header(size: int, repeats: int) -> str:
    """Environment lines printed above the table."""
    threads = (
        ", ".join(
            f"{k}={os.environ[k]}"
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        )
        or "not set"
    )
    return "\n".join(
        [
            f"numpy {np.__version__}, BLAS: {blas_name()}",
            f"threads env: {threads}; cpu_count: {os.cpu_count()}",
            f"input {size}x{size}, batch 1, float32; median of {repeats} repeats after 1 warm-up",
        ]
    )


def gflops(flop: float, seconds: float) -> str:
    return f"{flop / seconds / 1e9:.1f}"


def unet_convs(filters: int, size: int) -> list[tuple[str, int, int, int, int]]:
    """(name, Cin, F, H, k) of every 'same' conv of a UNet, from one walk of the U."""
    model = UNet((size, size, 1), filters=filters)
    found = []

    def visit(layer: Layer, shape: tuple, out: tuple, inbound: list[str]) -> None:
        if isinstance(layer, Conv2D):
            found.append((layer.name, shape[-1], layer.filters, shape[1], layer.kernel_size[0]))

    model.walk((1, size, size, 1), visit)
    return found


def fwd_bwd_seconds(layer: Conv2D, x: np.ndarray, repeats: int) -> tuple[float, float]:
    """Medians of the forward and of forward plus backward, after one warm-up."""
    dy = np.ones_like(layer.forward(x))
    layer.backward(dy)
    forward, both = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        layer.forward(x)
        t1 = time.perf_counter()
        layer.backward(dy)
        forward.append(t1 - t0)
        both.append(time.perf_counter() - t0)
    return statistics.median(forward), statistics.median(both)


def compare_algorithms(repeats: int, quick: bool) -> None:
    """im2col against the speed engine's algorithms on every conv of the seed's, the
    16-filter and the demo's UNets, as each runs inside a UNet: the thin ones one part of
    the batch per core, BLAS on one thread, the seed's whole, on BLAS's threads."""
    nets = [("seed", 64, 256, 1), ("isbi16", 16, 256, 2), ("demo", 8, 128, 4)]
    if quick:
        nets = [("seed/4", 16, 64, 1), ("demo", 8, 128, 4)]
    algorithms = ("im2col", "shifted", "pairs", "winograd")
    fmt = "{:<7} {:<9} {:>15} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9} {:>9}"
    columns = [f"{e} ms" for e in algorithms]
    print(fmt.format("net", "conv", "input", *columns, "fwd", "fwd+bwd", "rule"))
    print(fmt.format("", "", "", *["fwd|fwd+bwd"] * len(algorithms), "faster", "faster", ""))
    rng = np.random.default_rng(0)
    rules = Engine()  # the rules of this machine, for the column "rule"
    runtime = rules.runtime()
    for net, filters, size, whole in nets:
        split = rules.splits(UNet((16, 16, 1), filters=filters, depth=1), whole)
        parts = runtime.split.count + 1 if split else 1
        batch = -(-whole // parts)  # one core's part
        blas = runtime.blas.one_thread() if split else contextlib.nullcontext()
        seen = set()
        with blas:
            for name, c, f, h, k in unet_convs(filters, size):
                if (c, f, h, k) in seen:
                    continue
                seen.add((c, f, h, k))
                x = rng.standard_normal((batch, h, h, c), dtype=DTYPE)
                times = {}
                for algorithm in algorithms:
                    if (algorithm == "winograd" and k != 3) or (algorithm == "pairs" and k < 2):
                        times[algorithm] = (np.nan, np.nan)  # not for this kernel
                        continue
                    layer = Conv2D(f, k, padding="same", activation="relu", seed=0)
                    layer.engine = Engine(algorithm=algorithm, rules=runtime.rules)
                    times[algorithm] = fwd_bwd_seconds(layer, x, repeats)
                faster = [
                    min((t[i], e) for e, t in times.items() if t[i] == t[i])[1] for i in (0, 1)
                ]
                one = split or runtime.blas.threads() == 1
                rule = rules.choose(c, f, (k, k), h, h, batch, False, one)
                shape = f"{batch}x{h}x{h}x{c}"
                ms = [f"{times[e][0] * 1e3:.1f}|{times[e][1] * 1e3:.1f}" for e in algorithms]
                print(fmt.format(net, name, shape, *ms, *faster, rule), flush=True)
    rules.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="64x64 input and 2 repeats: a smoke test of a few seconds",
    )
    parser.add_argument(
        "--algorithms", action="store_true", help="im2col against the speed engine, per conv"
    )
    parser.add_argument("--engine", action="store_true", help="the convs by the speed engine")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else max(1, args.repeats)
    keep_freed_memory()  # as the numpy-unet command does
    if args.algorithms:
        compare_algorithms(repeats, args.quick)
        return
    scale = 4 if args.quick else 1
    start = time.perf_counter()
    print(header(256 // scale, repeats))
    cols = (
        "layer",
        "input (H,W,C)",
        "fwd ms",
        "bwd ms",
        "fwd GF/s",
        "bwd GF/s",
        "matmul GF/s",
        "fwd/mm",
    )
    fmt = "{:<32} {:>15} {:>9} {:>9} {:>9} {:>9} {:>11} {:>7}"
    print(fmt.format(*cols))
    print("-" * 108)
    rng = np.random.default_rng(0)
    engine = Engine() if args.engine else None
    for case in build_cases(scale):
        if isinstance(case.layer, Conv2D):
            case.layer.engine = engine
        t = measure(case, repeats, rng)
        shape = "x".join(str(d) for d in case.x_shape[1:])
        row = [case.name, shape, f"{t['fwd'] * 1e3:.1f}", f"{t['bwd'] * 1e3:.1f}"]
        if case.mkn is None:
            row += ["-", "-", "-", "-"]
        else:
            flop = 2.0 * np.prod(case.mkn, dtype=np.float64)
            row += [
                gflops(flop, t["fwd"]),
                gflops(2 * flop, t["bwd"]),
                gflops(flop, t["mm"]),
                f"{t['mm'] / t['fwd']:.2f}",
            ]
        print(fmt.format(*row), flush=True)
    print(f"total run time {time.perf_counter() - start:.1f} s")
    if engine is not None:
        engine.close()


if __name__ == "__main__":
    main()

"""numpy-unet against numpy-unet: two checkouts of this repository, timed side by side.

Each tree runs in a process of its own (its package imported from its folder), the trees
alternating ``--rounds`` times, so that a slow spell of a shared machine hits both alike;
each prints the medians of ``predict`` and of a training step (``model.forward`` in training
mode, binary cross-entropy, ``model.backward``) for the chosen networks. No PyTorch: this is
for a change to numpy-unet itself, before and after (``git worktree add ../before HEAD~1``).

    python benchmarks/compare_trees.py ../before .              # the three networks, 3 rounds
    python benchmarks/compare_trees.py ../before . --filters 8,16 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

NETWORKS = {64: (256, 1), 16: (256, 2), 8: (128, 4)}  # filters: (size, batch), as bench_unet

CHILD = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from numpy_unet import UNet
from numpy_unet.fast import keep_freed_memory
from numpy_unet.losses import BinaryCrossentropy

keep_freed_memory()


def step(model, x, y):
    loss = BinaryCrossentropy()
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())


def median(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


out = {{}}
for filters, size, batch in {networks!r}:
    model = UNet((size, size, 1), filters=filters, seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 1), dtype=np.float32)
    y = (rng.random((batch, size, size, 1)) < 0.78).astype(np.float32)
    p = min(median(lambda: model.predict(x, batch_size=batch)) for _ in range(2))
    s = min(median(lambda: step(model, x, y)) for _ in range(2))
    out[filters] = (p, s)
    getattr(model, "close", lambda: None)()
    time.sleep(0.5)
print(json.dumps(out))
"""


def run(root: Path, networks: list[tuple[int, int, int]]) -> dict[str, list[float]]:
    code = CHILD.format(root=str(root.resolve()), networks=networks)
    # run in the tree's own folder: an older tree's worker processes import the package
    # from the folder they start in
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root.resolve()
    )
    if done.returncode != 0:
        raise SystemExit(f"{root}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path, help="a checkout of this repository")
    p.add_argument("after", type=Path, help="another one (say, the working tree: .)")
    p.add_argument("--filters", default="64,16,8", help="which networks (64, 16, 8)")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the two trees")
    args = p.parse_args()
    chosen = [int(f) for f in args.filters.split(",")]
    networks = [(f, *NETWORKS[f]) for f in chosen]
    results: dict[str, list[dict]] = {"before": [], "after": []}
    for k in range(args.rounds):
        for name in ("before", "after"):
            results[name].append(run(getattr(args, name), networks))
            line = "  ".join(
                f"{f} filters {v[0] * 1e3:.1f} / {v[1] * 1e3:.1f} ms"
                for f, v in results[name][-1].items()
            )
            print(f"round {k + 1}, {name:6}: predict / step: {line}", flush=True)
            time.sleep(1.0)
    print("\nmedians over the rounds, after / before (1 = as fast):")
    for f in chosen:
        ratios = []
        for i in (0, 1):
            before = statistics.median(r[str(f)][i] for r in results["before"])
            after = statistics.median(r[str(f)][i] for r in results["after"])
            ratios.append(f"{after * 1e3:.1f} / {before * 1e3:.1f} ms = {after / before:.2f}")
        print(f"  {f:2} filters: predict {ratios[0]}; step {ratios[1]}")


if __name__ == "__main__":
    main()

"""Metrics: hand-worked values, batch conventions, connected components against a flood fill,
the Rand error against brute-force pair counting, and the input errors."""

from __future__ import annotations

import time
import warnings
from collections import deque

import numpy as np
import pytest

from numpy_unet.metrics import (
    connected_components,
    dice,
    evaluate,
    iou,
    pixel_accuracy,
    rand_error,
)

METRICS = [pixel_accuracy, iou, dice, rand_error, evaluate]


# -- slow, obviously correct references -------------------------------------------------------
def flood_fill_labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected labelling by breadth-first search, started from each unlabelled foreground
    pixel in row-major order (so regions are numbered in order of first appearance)."""
    grid = np.asarray(mask, dtype=bool).tolist()
    height, width = len(grid), len(grid[0]) if grid else 0
    labels = [[0] * width for _ in range(height)]
    count = 0
    for y in range(height):
        for x in range(width):
            if grid[y][x] and labels[y][x] == 0:
                count += 1
                labels[y][x] = count
                queue = deque([(y, x)])
                while queue:
                    cy, cx = queue.popleft()
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < height and 0 <= nx < width:
                            if grid[ny][nx] and labels[ny][nx] == 0:
                                labels[ny][nx] = count
                                queue.append((ny, nx))
    return np.array(labels, dtype=np.int64).reshape(height, width), count


def brute_force_rand_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Rand error of one image by comparing every pair of scored pixels directly."""
    t = flood_fill_labels(true)[0].ravel()
    s = flood_fill_labels(pred)[0].ravel()
    t, s = t[t > 0], s[t > 0]  # score only the pixels inside a true cell
    distinct = ~np.eye(t.size, dtype=bool)  # ordered pairs of two different pixels
    same_true = (t[:, None] == t[None, :]) & distinct
    same_test = (s[:, None] == s[None, :]) & distinct
    P = np.count_nonzero(same_true & same_test)
    A, B = np.count_nonzero(same_true), np.count_nonzero(same_test)
    precision, recall = P / B, P / A
    return 1 - 2 * precision * recall / (precision + recall)


def spiral(size: int) -> np.ndarray:
    """A one-pixel-wide square spiral path, one pixel apart from itself, drawn by a turtle that
    walks straight while it can keep the gap, and turns right when it cannot."""
    m = np.zeros((size, size), dtype=bool)
    y, x, dy, dx = 0, 0, 0, 1
    m[0, 0] = True

    def can_step(dy: int, dx: int) -> bool:
        ny, nx, fy, fx = y + dy, x + dx, y + 2 * dy, x + 2 * dx
        if not (0 <= ny < size and 0 <= nx < size) or m[ny, nx]:
            return False
        return not (0 <= fy < size and 0 <= fx < size and m[fy, fx])

    while True:
        if not can_step(dy, dx):
            dy, dx = dx, -dy  # turn right
            if not can_step(dy, dx):
                return m
        y, x = y + dy, x + dx
        m[y, x] = True


def random_walk_snakes(rng, size: int, n: int, length: int) -> np.ndarray:
    """``n`` random walks of ``length`` 4-connected steps, clipped to the image."""
    steps = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)])[rng.integers(0, 4, (n, length))]
    start = rng.integers(0, size, (n, 1, 2))
    path = np.clip(start + np.cumsum(steps, axis=1), 0, size - 1).reshape(-1, 2)
    m = np.zeros((size, size), dtype=bool)
    m[path[:, 0], path[:, 1]] = True
    return m


# -- pixel accuracy, IoU, Dice ------------------------------------------------------------------
# A 4x4 truth with 6 cell pixels, and a prediction (probabilities) with 5 pixels >= 0.5:
TRUE_4X4 = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 1, 1],
    ],
    dtype=np.float64,
)
PRED_4X4 = np.array(
    [
        [0.9, 0.8, 0.6, 0.1],
        [0.7, 0.2, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.5, 0.4],
    ]
)


def test_pixel_metrics_by_hand():
    # threshold 0.5 (0.5 itself counts as cell): predicted cells (0,0) (0,1) (0,2) (1,0) (3,2)
    #   TP = (0,0) (0,1) (1,0) (3,2) = 4,  FP = (0,2) = 1,  FN = (1,1) (3,3) = 2,  TN = 16 - 7 = 9
    #   accuracy = (4 + 9) / 16 = 13/16,  IoU = 4 / (4 + 1 + 2) = 4/7,  Dice = 8 / (8 + 3) = 8/11
    assert pixel_accuracy(PRED_4X4, TRUE_4X4) == pytest.approx(13 / 16)
    assert iou(PRED_4X4, TRUE_4X4) == pytest.approx(4 / 7)
    assert dice(PRED_4X4, TRUE_4X4) == pytest.approx(8 / 11)
    # threshold 0.65: predicted cells (0,0) (0,1) (1,0): TP = 3, FP = 0, FN = 3, TN = 10
    #   accuracy = 13/16,  IoU = 3/6,  Dice = 6/9
    assert pixel_accuracy(PRED_4X4, TRUE_4X4, threshold=0.65) == pytest.approx(13 / 16)
    assert iou(PRED_4X4, TRUE_4X4, threshold=0.65) == pytest.approx(1 / 2)
    assert dice(PRED_4X4, TRUE_4X4, threshold=0.65) == pytest.approx(2 / 3)
    # Dice = 2 IoU / (1 + IoU)
    j = iou(PRED_4X4, TRUE_4X4)
    assert dice(PRED_4X4, TRUE_4X4) == pytest.approx(2 * j / (1 + j))


def test_soft_truth_is_cut_at_one_half_and_types_do_not_matter():
    soft_true = TRUE_4X4 * 0.5 + np.where(TRUE_4X4 == 0, 0.49, 0.0)  # 0.5 -> cell, 0.49 -> not
    assert iou(PRED_4X4, soft_true) == pytest.approx(4 / 7)
    for t in (TRUE_4X4.astype(bool), TRUE_4X4.astype(np.uint8), TRUE_4X4.astype(np.float32)):
        assert iou(PRED_4X4.astype(np.float32), t) == pytest.approx(4 / 7)
    assert dice(PRED_4X4 >= 0.5, TRUE_4X4) == pytest.approx(8 / 11)  # a binary prediction


def test_empty_masks():
    empty = np.zeros((4, 4))
    # nothing predicted, nothing true: TP + FP + FN = 0 -> perfect by definition
    assert iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0
    assert pixel_accuracy(empty, empty) == 1.0
    # nothing predicted, 6 true cell pixels: TP = 0 -> 0; accuracy = 10/16
    assert iou(empty, TRUE_4X4) == 0.0 and dice(empty, TRUE_4X4) == 0.0
    assert pixel_accuracy(empty, TRUE_4X4) == pytest.approx(10 / 16)


def test_batch_pools_pixels_for_pixel_metrics():
    # image 1: 4 true cell pixels, all found (TP = 4); image 2: 1 true cell pixel, missed (FN = 1)
    true = np.array([[[1, 1], [1, 1]], [[1, 0], [0, 0]]], dtype=np.float64)
    pred = np.array([[[1, 1], [1, 1]], [[0, 0], [0, 0]]], dtype=np.float64)
    # pooled: TP = 4, FN = 1 -> IoU 4/5, Dice 8/9, accuracy 7/8
    # (the mean of the per-image IoUs would be (1 + 0) / 2 = 0.5)
    assert iou(pred[0], true[0]) == 1.0 and iou(pred[1], true[1]) == 0.0
    for shape in ((2, 2, 2), (2, 2, 2, 1)):
        p, t = pred.reshape(shape), true.reshape(shape)
        assert iou(p, t) == pytest.approx(4 / 5)
        assert dice(p, t) == pytest.approx(8 / 9)
        assert pixel_accuracy(p, t) == pytest.approx(7 / 8)


def test_single_image_shapes_agree():
    for shape in ((4, 4), (4, 4, 1), (1, 4, 4), (1, 4, 4, 1)):
        p, t = PRED_4X4.reshape(shape), TRUE_4X4.reshape(shape)
        assert iou(p, t) == pytest.approx(4 / 7)
        # true cells {(0,0) (0,1) (1,0) (1,1)} and {(3,2) (3,3)}; predicted segments
        # {(0,0) (0,1) (1,0)}, {(3,2)} and the membrane {(1,1) (3,3)} among the scored pixels.
        # Unordered pairs: truth 6 + 1 = 7, prediction 3 + 1 = 4, both 3 ((1,1) and (3,3) are
        # together only in the prediction): F = 2 * 3 / (7 + 4) = 6/11 -> error 5/11
        assert rand_error(p, t) == pytest.approx(5 / 11)


# -- connected components -------------------------------------------------------------------
def test_connected_components_by_hand():
    mask = np.array(
        [
            [0, 1, 0, 1],
            [1, 1, 0, 0],
            [0, 0, 1, 1],
        ]
    )
    labels, count = connected_components(mask)
    # the row-major scan meets (0,1) first -> 1, then (0,3) -> 2; (1,0) and (1,1) join region 1
    # through (1,1)-(0,1); (2,2) touches (1,1) only diagonally, so (2,2) (2,3) are region 3
    expected = np.array(
        [
            [0, 1, 0, 2],
            [1, 1, 0, 0],
            [0, 0, 3, 3],
        ]
    )
    np.testing.assert_array_equal(labels, expected)
    assert count == 3 and labels.dtype == np.int64
    # diagonal neighbours are not connected (4-connectivity)
    assert connected_components(np.eye(3, dtype=bool))[1] == 3
    # a U: the two arms start as separate trees in the first row and meet at the bottom
    u_shape = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(connected_components(u_shape)[0], u_shape.astype(int))


def test_connected_components_empty_and_full():
    for shape in ((1, 1), (3, 4), (0, 5)):
        labels, count = connected_components(np.zeros(shape, dtype=bool))
        assert count == 0 and labels.shape == shape and not labels.any()
    labels, count = connected_components(np.ones((5, 6)))
    assert count == 1 and (labels == 1).all()


SIZES = [(1, 1), (1, 9), (9, 1), (2, 2), (5, 6), (6, 5), (7, 7), (16, 16), (33, 20), (40, 41)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("density", [0.1, 0.3, 0.5, 0.6, 0.8])
def test_connected_components_match_flood_fill(size, density):
    rng = np.random.default_rng([*size, int(10 * density)])
    for _ in range(3):
        mask = rng.random(size) < density
        labels, count = connected_components(mask)
        expected, expected_count = flood_fill_labels(mask)
        assert count == expected_count
        np.testing.assert_array_equal(labels, expected)
        # the same for a 0/1 float mask
        np.testing.assert_array_equal(connected_components(mask.astype(np.float32))[0], expected)


@pytest.mark.parametrize("size", [9, 10, 31, 64])
def test_connected_components_spiral(size):
    path = spiral(size)
    for mask in (path, ~path):  # the spiral path, and the spiral corridor beside it
        labels, count = connected_components(mask)
        expected, expected_count = flood_fill_labels(mask)
        assert count == expected_count == 1
        np.testing.assert_array_equal(labels, expected)
    assert path.sum() > size * size / 3  # a long path, not a stub


def test_connected_components_snakes_match_flood_fill_and_are_fast():
    rng = np.random.default_rng(7)
    mask = random_walk_snakes(rng, 512, n=300, length=400)
    start = time.perf_counter()
    labels, count = connected_components(mask)
    elapsed = time.perf_counter() - start
    expected, expected_count = flood_fill_labels(mask)
    assert count == expected_count and count > 50
    np.testing.assert_array_equal(labels, expected)
    assert elapsed < 1.0, f"connected_components took {elapsed:.2f} s on 512x512 snakes"


def test_connected_components_long_serpentine_is_fast():
    # one path of ~131,000 pixels snaking through every other row: min-label propagation
    # without pointer jumping would need one round per pixel of the path
    mask = np.zeros((512, 512), dtype=bool)
    mask[::2] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    start = time.perf_counter()
    labels, count = connected_components(mask)
    elapsed = time.perf_counter() - start
    assert count == 1 and (labels[mask] == 1).all() and (labels[~mask] == 0).all()
    assert elapsed < 1.0, f"connected_components took {elapsed:.2f} s on a 512x512 serpentine"


# -- Rand error --------------------------------------------------------------------------------
# Two true cells side by side, split by a membrane column. The 8 cell pixels are scored.
TWO_CELLS = np.array(
    [
        [1, 1, 0, 1, 1],
        [1, 1, 0, 1, 1],
    ],
    dtype=np.float64,
)


def test_rand_error_perfect_and_merge_by_hand():
    assert rand_error(TWO_CELLS, TWO_CELLS) == 0.0
    # A one-pixel gap in the predicted membrane merges the two cells into one segment.
    # Unordered pairs of scored pixels: together in the truth: 6 + 6 = 12; together in the
    # prediction: C(8, 2) = 28; together in both: 12.
    #   precision = 12/28 = 3/7, recall = 12/12 = 1, F = 2 (3/7) / (10/7) = 0.6 -> error 0.4
    gap = TWO_CELLS.copy()
    gap[0, 2] = 1
    assert rand_error(gap, TWO_CELLS) == pytest.approx(0.4)
    assert pixel_accuracy(gap, TWO_CELLS) == pytest.approx(9 / 10)  # only 1 pixel wrong
    # predicting no cell at all puts the 8 scored pixels in the membrane segment 0: the same
    # partition as the merge (error 0.4)
    assert rand_error(np.zeros_like(TWO_CELLS), TWO_CELLS) == pytest.approx(0.4)


def test_rand_error_split_by_hand():
    # truth: cell L = columns 0-3 (4 pixels), cell R = columns 5-6 (2 pixels)
    true = np.array([[1, 1, 1, 1, 0, 1, 1]], dtype=np.float64)
    # prediction: membrane at column 2 cuts L into {0, 1} and {3}; {2} goes to segment 0
    pred = np.array([[1, 1, 0, 1, 0, 1, 1]], dtype=np.float64)
    # unordered pairs: truth C(4,2) + C(2,2) = 7; prediction {0,1} + {5,6} = 2; both = 2
    #   precision = 2/2 = 1, recall = 2/7, F = 2 (2/7) / (9/7) = 4/9 -> error 5/9
    assert rand_error(pred, true) == pytest.approx(5 / 9)
    # merge instead: all 6 scored pixels in one segment: prediction C(6,2) = 15, both 7
    #   precision = 7/15, recall = 1, F = 2 (7/15) / (22/15) = 7/11 -> error 4/11
    assert rand_error(np.ones_like(true), true) == pytest.approx(4 / 11)


def test_rand_error_ignores_membrane_pixels_of_the_truth():
    true = np.array([[1, 1, 0, 0, 1, 1]], dtype=np.float64)
    pred = np.array([[1, 1, 1, 0, 1, 1]], dtype=np.float64)  # a cell pixel on the membrane
    assert pixel_accuracy(pred, true) == pytest.approx(5 / 6)
    assert rand_error(pred, true) == 0.0  # the partition of the scored pixels is right


def test_rand_error_no_pair_right_is_one():
    # truth: {0, 1} and {3, 4}; prediction: {0}, {4} and the membrane segment 0 = {1, 3}
    # n_ij are all 1, so P = 0, while A = 2 + 2 = 4 > 0 and B = 2 -> F = 0 -> error 1.0
    true = np.array([[1, 1, 0, 1, 1]], dtype=np.float64)
    pred = np.array([[1, 0, 0, 0, 1]], dtype=np.float64)
    assert rand_error(pred, true) == 1.0


def test_rand_error_degenerate_cases_do_not_warn():
    rng = np.random.default_rng(0)
    checkerboard = (np.indices((6, 6)).sum(axis=0) % 2).astype(np.float64)  # 18 one-pixel cells
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = np.zeros((6, 6))
        # no true cell: nothing is scored, 0.0 whatever the prediction
        assert rand_error(empty, empty) == 0.0
        assert rand_error(np.ones((6, 6)), empty) == 0.0
        assert rand_error(rng.random((6, 6)), empty) == 0.0
        # one-pixel cells predicted exactly: A = B = P = 0, identical partitions -> 0.0
        assert rand_error(checkerboard, checkerboard) == 0.0
        # ... predicted as one cell: A = P = 0, B > 0 -> 1.0
        assert rand_error(np.ones((6, 6)), checkerboard) == 1.0


def test_rand_error_matches_brute_force_pair_counting():
    rng = np.random.default_rng(3)
    checked = 0
    for size in [(5, 6), (6, 5), (7, 7), (8, 8), (4, 11)]:
        for true_density, pred_density in [(0.4, 0.5), (0.6, 0.6), (0.8, 0.3), (0.7, 0.9)]:
            for _ in range(3):
                true = (rng.random(size) < true_density).astype(np.float64)
                is_cell = rng.random(size) < pred_density
                pred = np.where(is_cell, rng.uniform(0.5, 1, size), rng.uniform(0, 0.5, size))
                if true.sum() < 3:
                    continue
                with np.errstate(divide="ignore", invalid="ignore"):
                    expected = brute_force_rand_error(pred >= 0.5, true >= 0.5)
                if np.isnan(expected):  # a degenerate case, tested above
                    continue
                assert rand_error(pred, true) == pytest.approx(expected, abs=1e-12)
                checked += 1
    assert checked > 40


def test_rand_error_batch_is_mean_of_images():
    true = np.stack([TWO_CELLS, TWO_CELLS, np.ones_like(TWO_CELLS)])
    gap = TWO_CELLS.copy()
    gap[0, 2] = 1
    pred = np.stack([TWO_CELLS, gap, TWO_CELLS])
    # errors 0 (perfect), 0.4 (merge, above), and a one-cell truth split into two cells
    # plus a membrane column: truth C(10,2) = 45 pairs; prediction 6 + 6 + 1 = 13; both 13
    #   precision 1, recall 13/45, F = 2 (13/45) / (58/45) = 13/29 -> error 16/29
    assert rand_error(pred[2], true[2]) == pytest.approx(16 / 29)
    expected = (0 + 0.4 + 16 / 29) / 3
    assert rand_error(pred, true) == pytest.approx(expected)
    assert rand_error(pred[..., None], true[..., None]) == pytest.approx(expected)


def test_rand_error_uses_the_threshold():
    true = np.array([[1, 1, 0, 1, 1]], dtype=np.float64)
    pred = np.array([[0.9, 0.9, 0.6, 0.9, 0.9]])  # the gap pixel is 0.6
    assert rand_error(pred, true) > 0  # cut at 0.5 the cells merge
    assert rand_error(pred, true, threshold=0.7) == 0.0


# -- evaluate ---------------------------------------------------------------------------------
def test_evaluate_returns_all_four_as_floats():
    result = evaluate(PRED_4X4, TRUE_4X4)
    assert list(result) == ["pixel_accuracy", "iou", "dice", "rand_error"]
    assert all(type(v) is float for v in result.values())
    assert result["pixel_accuracy"] == pytest.approx(13 / 16)
    assert result["iou"] == pytest.approx(4 / 7)
    assert result["dice"] == pytest.approx(8 / 11)
    assert result["rand_error"] == rand_error(PRED_4X4, TRUE_4X4)
    assert evaluate(PRED_4X4, TRUE_4X4, threshold=0.65)["iou"] == pytest.approx(1 / 2)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
def test_shape_mismatch_names_function_and_shapes(metric):
    with pytest.raises(ValueError, match=rf"{metric.__name__}.*\(4, 4\).*\(4, 5\)"):
        metric(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=rf"{metric.__name__}.*\(2, 4, 4, 1\).*\(2, 4, 4\)"):
        metric(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4)))


@pytest.mark.parametrize("metric", METRICS)
def test_bad_values_are_refused(metric):
    name = metric.__name__
    with pytest.raises(ValueError, match=rf"{name}: y_true must lie in \[0, 1\].*255"):
        metric(np.zeros((4, 4)), TRUE_4X4 * 255)
    with pytest.raises(ValueError, match=rf"{name}: y_true must lie in \[0, 1\]"):
        metric(np.zeros((4, 4)), TRUE_4X4 - 0.5)
    nan = PRED_4X4.copy()
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match=rf"{name}: y_pred contains NaN"):
        metric(nan, TRUE_4X4)
    with pytest.raises(ValueError, match=rf"{name}: y_true contains NaN"):
        metric(PRED_4X4, nan)


@pytest.mark.parametrize("metric", METRICS)
def test_bad_shapes_and_thresholds_are_refused(metric):
    name = metric.__name__
    with pytest.raises(ValueError, match=rf"{name}: y_pred has shape \(1, 4, 4, 2\) with 2"):
        metric(np.zeros((1, 4, 4, 2)), np.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match=rf"{name}: y_pred must have shape"):
        metric(np.zeros(16), np.zeros(16))
    with pytest.raises(ValueError, match=rf"{name}: the masks are empty"):
        metric(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
    for threshold in (float("nan"), "0.5", None):
        with pytest.raises(ValueError, match=rf"{name}: threshold must be a finite number"):
            metric(PRED_4X4, TRUE_4X4, threshold=threshold)


def test_connected_components_refuses_bad_masks():
    with pytest.raises(ValueError, match=r"connected_components: mask must be 2-D.*\(1, 4, 4\)"):
        connected_components(np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="only 0 and 1.*mask >= 0.5"):
        connected_components(PRED_4X4)
    with pytest.raises(ValueError, match="NaN"):
        connected_components(np.full((2, 2), np.nan))


def test_threshold_sweep_finds_the_best_threshold():
    from numpy_unet.metrics import threshold_sweep

    true = np.zeros((1, 12, 12, 1))
    true[0, 1:5, 1:11] = 1  # two cells separated by a membrane row
    true[0, 6:11, 1:11] = 1
    probs = true * 0.9 + (1 - true) * 0.1
    probs[0, 5, 2:10] = 0.7  # the membrane between them is unsure: above 0.5
    sweep = threshold_sweep(probs, true)
    assert sweep["thresholds"][0] == 0.05 and len(sweep["scores"]) == 19
    assert rand_error(probs, true) > 0.1  # at 0.5 the two cells merge
    assert sweep["best_score"] == 0.0 and 0.7 < sweep["best_threshold"] <= 0.9
    acc = threshold_sweep(probs, true, thresholds=[0.5, 0.8], metric="pixel_accuracy")
    assert acc["best_threshold"] == 0.8 and acc["best_score"] == 1.0
    with pytest.raises(ValueError, match="metric must be one of"):
        threshold_sweep(probs, true, metric="f1")

"""The UNet: the seed's architecture and the paper's, shapes, errors, gradients end to end."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_unet import UNet, gradcheck
from numpy_unet.gradcheck import ModelWithLoss
from numpy_unet.layers import Conv2D, Dropout
from numpy_unet.losses import BinaryCrossentropy, CategoricalCrossentropy, DiceLoss
from numpy_unet.teach.checks import random_biases


@pytest.fixture(scope="module")
def seed_unet() -> UNet:
    return UNet(seed=0)


def test_seed_unet_counts_and_keras_weight_layout(seed_unet):
    assert seed_unet.count_params() == 31_031_685
    weights = seed_unet.get_weights()
    assert len(weights) == 48
    convs = [layer for layer in seed_unet.layers if isinstance(layer, Conv2D)]
    assert len(convs) == 24
    shapes = [w.shape for w in weights]
    assert shapes[:4] == [(3, 3, 1, 64), (64,), (3, 3, 64, 64), (64,)]
    assert shapes[16:20] == [(3, 3, 512, 1024), (1024,), (3, 3, 1024, 1024), (1024,)]
    assert shapes[20:24] == [(2, 2, 1024, 512), (512,), (3, 3, 1024, 512), (512,)]  # up6, conv6
    assert shapes[-4:] == [(3, 3, 64, 2), (2,), (1, 1, 2, 1), (1,)]
    names = list(seed_unet.params)
    assert names[20] == "up6/kernel" and names[-2] == "conv10/kernel"


def test_seed_unet_initializers(seed_unet):
    k = seed_unet.params["conv5_2/kernel"].astype(np.float64)
    assert abs(k.std() / np.sqrt(2 / (9 * 1024)) - 1) < 0.01  # he_normal
    last = seed_unet.params["conv10/kernel"]
    assert np.abs(last).max() <= np.sqrt(6 / (2 + 1))  # glorot_uniform, Keras's default
    assert not any(np.any(b) for n, b in seed_unet.params.items() if n.endswith("bias"))


def test_seed_unet_summary_shapes(seed_unet):
    lines = []
    seed_unet.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for row in [
        "conv1_1 (Conv2D)          (None, 256, 256, 64)",
        "conv5_2 (Conv2D)          (None, 16, 16, 1024)",
        "drop4 (Dropout)           (None, 32, 32, 512)",
        "merge6 (Concatenate)      (None, 32, 32, 1024)",
        "conv10 (Conv2D)           (None, 256, 256, 1)",
    ]:
        assert row in text
    assert "drop4, up6" in text  # the skip is the dropped-out tensor, concatenated first
    assert "Total params: 31,031,685" in text
    assert "109.21GFLOP" in text  # 54.6 G multiply-adds per 256x256 image
    assert seed_unet.compute_output_shape((2, 256, 256, 1)) == (2, 256, 256, 1)


def test_paper_unet():
    paper = UNet.paper(seed=0)
    assert paper.count_params() == 31_030_658
    assert paper.compute_output_shape((1, 572, 572, 1)) == (1, 388, 388, 2)
    lines = []
    paper.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "up6 (Conv2DTranspose)" in text and "crop6 (Cropping2D)" in text
    assert "(None, 388, 388, 2)" in text and "(None, 28, 28, 1024)" in text
    small = UNet.paper(input_shape=(44, 44, 1), filters=2, depth=2, seed=0)
    y = small.forward(np.random.default_rng(0).random((1, 44, 44, 1), dtype=np.float32))
    assert y.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_gradcheck_seed_layout_end_to_end(dropout, rng):
    model = UNet((16, 16, 1), filters=2, depth=2, dropout=dropout, dtype="float64", seed=1)
    random_biases(model, rng)
    x = rng.random((2, 16, 16, 1))
    y = (rng.random((2, 16, 16, 1)) < 0.6).astype(np.float64)
    report = gradcheck(ModelWithLoss(model, BinaryCrossentropy(), y), x, training=True)
    assert report.passed and report.max_rel_error < 1e-6
    assert len(report.checks) == 1 + len(model.params)  # the input and every parameter


def test_gradcheck_paper_layout_with_weight_map(rng):
    model = UNet.paper(input_shape=(44, 44, 1), filters=2, depth=2, dtype="float64", seed=2)
    random_biases(model, rng)
    x = rng.random((1, 44, 44, 1))
    labels = rng.integers(0, 2, (1, 4, 4))
    weights = rng.uniform(1, 10, (1, 4, 4))
    objective = ModelWithLoss(model, CategoricalCrossentropy(), labels, weight_map=weights)
    report = gradcheck(objective, x, training=True)
    assert report.passed and report.max_rel_error < 1e-6


@pytest.mark.parametrize(
    "options",
    [
        dict(num_classes=3, dropout=0.5),  # softmax over three classes
        dict(num_classes=3, upsampling="transpose", head_conv=False, dropout=0.0),
        dict(padding="valid", upsampling="upsample", dropout=0.5),
    ],
    ids=["softmax", "same-transpose", "valid-upsample"],
)
def test_gradcheck_other_layouts(options, rng):
    size = 48 if options.get("padding") == "valid" else 8
    model = UNet((size, size, 1), filters=2, depth=2, dtype="float64", seed=3, **options)
    random_biases(model, rng)
    x = rng.random((1, size, size, 1))
    out = model.compute_output_shape(x.shape)
    if out[-1] > 1:
        loss, target = CategoricalCrossentropy(), rng.integers(0, out[-1], out[:-1])
    else:
        loss, target = DiceLoss(), (rng.random(out) < 0.5).astype(np.float64)
    report = gradcheck(ModelWithLoss(model, loss, target), x, training=True)
    assert report.passed and report.max_rel_error < 1e-6


@pytest.mark.slow  # 31 million parameters: seconds on a quiet machine, minutes on a busy one
def test_directional_gradcheck_of_the_full_seed_unet(rng):
    model = UNet((16, 16, 1), dtype="float64", seed=4)  # all 31,031,685 parameters
    random_biases(model, rng)
    x = rng.random((1, 16, 16, 1))
    y = (rng.random((1, 16, 16, 1)) < 0.6).astype(np.float64)
    report = gradcheck(
        ModelWithLoss(model, BinaryCrossentropy(), y), x, directional=True, n_directions=2
    )
    assert report.passed and len(report.checks) == 49


def test_backward_sets_every_gradient_and_get_gradients_mirrors_weights(rng):
    model = UNet((16, 16, 1), filters=4, depth=2, seed=0)
    with pytest.raises(RuntimeError, match="call backward"):
        model.get_gradients()
    y = model.forward(rng.random((2, 16, 16, 1), dtype=np.float32), training=True)
    dx = model.backward(np.ones_like(y))
    assert dx.shape == (2, 16, 16, 1) and dx.dtype == np.float32
    grads = model.get_gradients()
    assert [g.shape for g in grads] == [w.shape for w in model.get_weights()]
    assert all(g.dtype == np.float32 for g in grads)


def test_dropout_only_in_training(rng):
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    assert [type(layer) for layer in model.layers].count(Dropout) == 2
    x = rng.random((2, 16, 16, 1), dtype=np.float32)
    np.testing.assert_array_equal(model.forward(x), model.forward(x))
    np.testing.assert_array_equal(model.predict(x, batch_size=1), model.forward(x))
    assert not np.array_equal(model.forward(x, training=True), model.forward(x, training=True))
    no_dropout = UNet((16, 16, 1), filters=2, depth=2, dropout=0, seed=0)
    assert [type(layer) for layer in no_dropout.layers].count(Dropout) == 0
    no_dropout.set_weights(model.get_weights())
    np.testing.assert_array_equal(no_dropout.forward(x), model.forward(x))


def test_same_seed_same_model_and_masks(rng):
    a, b = (UNet((8, 8, 1), filters=2, depth=2, seed=7) for _ in range(2))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    x = rng.random((1, 8, 8, 1), dtype=np.float32)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


def test_any_size_the_depth_allows(rng):
    model = UNet((32, 32, 1), filters=2, depth=2, seed=0)
    for hw in [(16, 16), (8, 24), (36, 4)]:
        assert model.forward(rng.random((1, *hw, 1), dtype=np.float32)).shape == (1, *hw, 1)
    paper = UNet.paper(input_shape=(44, 44, 1), filters=2, depth=2, seed=0)
    assert paper.forward(rng.random((1, 60, 44, 1), dtype=np.float32)).shape == (1, 20, 4, 2)


def test_predict_batches_and_frees_memory(rng):
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    x = rng.random((5, 16, 16, 1), dtype=np.float32)
    np.testing.assert_allclose(
        model.predict(x, batch_size=2), model.forward(x), rtol=1e-5, atol=1e-6
    )
    model.predict(x)
    assert all(layer._cache is None for layer in model.layers)
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.ones((5, 16, 16, 1), np.float32))


def test_astype_float64_copy(rng):
    model = UNet((16, 16, 1), filters=4, depth=2, seed=0)
    twin = model.astype("float64")
    assert all(p.dtype == np.float64 for p in twin.params.values())
    assert all(p.dtype == np.float32 for p in model.params.values())
    x = rng.random((2, 16, 16, 1))
    y32 = model.forward(x.astype(np.float32), training=True)
    y64 = twin.forward(x, training=True)  # same weights and the same dropout masks
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)


def test_size_errors_name_the_nearest_valid_sizes(seed_unet):
    with pytest.raises(ValueError, match=r"height 250 .*divisible by 2\*\*depth = 16.*240 or 256"):
        seed_unet.forward(np.zeros((1, 250, 256, 1), np.float32))
    with pytest.raises(ValueError, match=r"width 100 .*96 or 112"):
        seed_unet.predict(np.zeros((1, 256, 100, 1), np.float32))
    paper = UNet.paper(input_shape=(44, 44, 1), filters=2, depth=2, seed=0)
    with pytest.raises(ValueError, match=r"height 46 .*'valid'.*even.*44 or 48"):
        paper.forward(np.zeros((1, 46, 44, 1), np.float32))
    with pytest.raises(ValueError, match="height 570 .*556 or 572"):
        UNet.paper(input_shape=(570, 572, 1))


def test_other_input_errors(seed_unet):
    with pytest.raises(ValueError, match=r"built for 1-channel input, got 3 channels"):
        seed_unet.forward(np.zeros((1, 256, 256, 3), np.float32))
    with pytest.raises(ValueError, match=r"4-D input.*got shape \(256, 256, 1\).*x\[None\]"):
        seed_unet.predict(np.zeros((256, 256, 1), np.float32))
    with pytest.raises(ValueError, match="upsampling must be"):
        UNet(upsampling="bilinear")
    with pytest.raises(ValueError, match="padding must be"):
        UNet(padding="full")


def test_weights_roundtrip_through_npz(tmp_path, rng):
    model = UNet((16, 16, 1), filters=4, depth=2, seed=0)
    path = model.save_weights(tmp_path / "w.npz")
    other = UNet((16, 16, 1), filters=4, depth=2, seed=99)
    x = rng.random((2, 16, 16, 1), dtype=np.float32)
    assert not np.array_equal(other.predict(x), model.predict(x))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save_weights(path)
    model.save_weights(path, overwrite=True)
    with pytest.raises(ValueError, match=r"end in \.npz .* or \.h5 "):  # .h5: Keras's layout
        model.save_weights(tmp_path / "w.txt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        model.load_weights(tmp_path / "missing.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]  # no temporary left behind


def test_loading_a_different_configuration_fails_and_changes_nothing(tmp_path, rng):
    path = UNet((16, 16, 1), filters=2, depth=2, seed=0).save_weights(tmp_path / "small.npz")
    model = UNet((16, 16, 1), filters=4, depth=2, seed=1)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"filters: file 2, model 4.*unchanged"):
        model.load_weights(path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_style_export_loads(tmp_path):
    source = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    np.savez(tmp_path / "keras.npz", *source.get_weights())  # arr_0 ... arr_N, as from Keras
    target = UNet((16, 16, 1), filters=2, depth=2, seed=1)
    target.load_weights(tmp_path / "keras.npz")
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_refuses_a_wrong_list_and_leaves_the_model_unchanged():
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    before = model.get_weights()
    wrong_length = before[:-1]
    with pytest.raises(ValueError, match=r"expected 28 arrays.*got 27"):
        model.set_weights(wrong_length)
    wrong_shape = [w + 1 for w in before]
    wrong_shape[-2] = np.ones((1, 1, 3, 1))  # the last kernel, corrupted after the others
    with pytest.raises(
        ValueError, match=r"array 26 \(conv6/kernel\) must have shape \(1, 1, 2, 1\)"
    ):
        model.set_weights(wrong_shape)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing was half-applied


def test_backward_frees_every_cache_but_a_standalone_layer_keeps_its_own():
    # A UNet's layers free what forward kept as soon as backward has used it (PyTorch's
    # retain_graph=False), which lowers a training step's peak memory; a layer on its own
    # keeps its cache so that backward can be called again with another dy.
    model = UNet((16, 16, 1), filters=2, dtype="float64", seed=0)
    x = np.random.default_rng(0).random((1, 16, 16, 1))
    y = model.forward(x, training=True)
    model.backward(np.ones_like(y))
    parts = [model.layers, [getattr(layer, "activation", None) for layer in model.layers]]
    assert all(p._cache is None for group in parts for p in group if p is not None)
    with pytest.raises(RuntimeError, match="twice after one forward"):
        model.backward(np.ones_like(y))
    conv = Conv2D(3, 3, activation="relu", padding="same")
    z = conv.forward(x)
    first = conv.backward(np.ones_like(z))
    np.testing.assert_array_equal(conv.backward(np.ones_like(z)), first)


def test_only_the_first_layer_checks_its_input_and_the_output_is_checked():
    model = UNet((32, 32, 1), filters=2, seed=0)
    assert [layer.check_finite for layer in model.layers].count(True) == 1
    assert model.layers[0].check_finite
    x = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    bad = x.copy()
    bad[0, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"'conv1_1'.*1 NaN or infinite value"):
        model.predict(bad)
    model.down[1].conv1.params["kernel"][0, 0, 0, 0] = np.nan  # a weight diverged
    with pytest.raises(ValueError, match=r"UNet 'unet'.*NaN or infinite.*diverged"):
        model.predict(x)


def test_backward_never_writes_into_an_array_a_layer_handed_back():
    """Tutorial 03 records what pool1 and merge9 pass backwards; nothing may change them
    afterwards (an in-place `d += d_skip` once did, and the lesson printed 1.6 for 0)."""
    model = UNet((16, 16, 1), filters=2, depth=2, dtype="float64", seed=0)
    handed_back = []

    def recording(layer):
        original = layer.backward

        def backward(d):
            out = original(d)
            for a in out if isinstance(out, list) else [out]:
                handed_back.append((layer.name, a, a.copy()))
            return out

        return backward

    for layer in model.layers:
        layer.backward = recording(layer)
    fused = model.engine.upsample_conv_backward  # up-sampling + up-conv, in one call

    def fused_recorded(upsample, upconv, d):
        out = fused(upsample, upconv, d)
        handed_back.append((upconv.name, out, out.copy()))
        return out

    model.engine.upsample_conv_backward = fused_recorded
    x = np.random.default_rng(0).random((2, 16, 16, 1))
    model.backward(np.random.default_rng(1).standard_normal(model.forward(x).shape))
    names = [name for name, _, _ in handed_back]
    assert [names.count(level.merge.name) for level in model.up] == [2, 2]  # two each
    assert all(names.count(level.upconv.name) == 1 for level in model.up)
    upsamplings = {level.upsample.name for level in model.up}  # fused into the up-convs
    assert set(names) == {layer.name for layer in model.layers} - upsamplings
    changed = [name for name, a, before in handed_back if not np.array_equal(a, before)]
    assert changed == []


def lengths_by_arithmetic(n, depth, padding, upsampling, head_conv):
    """The U's output length for input length n, worked out by hand (None: not taken):
    an independent reference for UNet.output_size, which walks the layers."""
    lost = 0 if padding == "same" else 2  # pixels each 3x3 conv removes
    skips = []
    for _ in range(depth):
        n -= 2 * lost
        if n < 2 or n % 2:
            return None
        skips.append(n)
        n //= 2
    n -= 2 * lost
    if n < 1:
        return None
    for skip in reversed(skips):
        n = 2 * n - (1 if upsampling == "upsample" and padding == "valid" else 0)
        if n < 1 or n > skip or (padding == "same" and n != skip):
            return None
        n -= 2 * lost
        if n < 1:
            return None
    n -= lost if head_conv else 0
    return n if n >= 1 else None


@pytest.mark.parametrize(
    ("depth", "padding", "upsampling", "head_conv"),
    [
        (4, "same", "upsample", True),
        (2, "same", "transpose", False),
        (3, "valid", "transpose", False),
        (2, "valid", "upsample", True),
        (1, "valid", "transpose", True),
    ],
)
def test_one_walk_of_the_u_gives_the_sizes(depth, padding, upsampling, head_conv):
    sizes = [
        n for n in range(1, 200) if lengths_by_arithmetic(n, depth, padding, upsampling, head_conv)
    ]
    model = UNet(
        (sizes[len(sizes) // 2], sizes[len(sizes) // 2], 1),
        filters=1,
        depth=depth,
        padding=padding,
        upsampling=upsampling,
        head_conv=head_conv,
    )
    for n in range(0, 200):
        assert model.output_size(n) == lengths_by_arithmetic(
            n, depth, padding, upsampling, head_conv
        ), n


def test_crops_are_fixed_when_the_model_is_built():
    model = UNet.paper(input_shape=(92, 92, 1), filters=1, depth=2, seed=0)
    crops = [level.crop.cropping for level in model.up]
    assert crops == [((4, 4), (4, 4)), ((16, 16), (16, 16))]
    y = model.predict(np.zeros((1, 124, 108, 1), np.float32))  # another size, another shape
    assert y.shape == (1, model.output_size(124), model.output_size(108), 2)
    assert [level.crop.cropping for level in model.up] == crops

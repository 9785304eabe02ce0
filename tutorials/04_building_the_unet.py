# %% [markdown]
# # 04 · Building the UNet: from the seed's Keras code to 31,031,685 numbers
#
# The seed is about forty lines of Keras that build a UNet. This tutorial puts those lines
# next to the objects `numpy_unet.UNet()` creates, one layer at a time, and then counts
# what the network holds and what it costs. Every number printed here is computed from
# the model, not typed in.
#
# **You will learn**
#
# - which `numpy_unet` layer each line of the seed's Keras code becomes, with its output
#   shape;
# - how to read `model.summary()`, and where the 31,031,685 parameters sit (mostly at the
#   bottom of the U);
# - how to count parameters and multiply-adds by hand, and why one 256x256 image costs
#   about 54.6 G multiply-adds (about 109 GFLOP) on the way forward;
# - how to draw the U diagram from the model itself, and how the original paper's network
#   (`UNet.paper()`, 572 -> 388, with cropped skips) differs;
# - which input sizes a UNet accepts, and what the error for a bad one says.
#
# **Time:** about 20 minutes to read; its run time, measured, is in `tutorials/README.md`
# (`NUMPY_UNET_QUICK=1` runs a small version in seconds).
#
# If you know PyTorch: there is no `nn.Module` tree or autograd here. A `UNet` holds plain
# layer objects, each with `forward`, `backward`, `params` and `grads`, and
# `numpy_unet/model/unet.py` wires them together by hand.

# %%
# ruff: noqa: E402
import re
import time

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from numpy_unet import UNet
from numpy_unet.layers import Conv2D, Conv2DTranspose
from numpy_unet.layers.padding import same_padding
from numpy_unet.model.summary import multiply_adds
from numpy_unet.teach.tutorial import pick, quick, save

print("quick mode: smaller models for the forward passes" if quick() else "full mode")

# %% [markdown]
# ## 1. The seed's code, and the model it becomes
#
# Here is the seed's Keras function, copied from the blog post it comes from (the Chinese
# comments are translated). Each `Conv2D(...)` line repeats
# `activation='relu', padding='same', kernel_initializer='he_normal'`.

# %%
SEED_KERAS = """\
inputs = Input(input_shape)
# encoder
conv1 = Conv2D(64, 3, activation='relu', padding='same', kernel_initializer='he_normal')(inputs)
conv1 = Conv2D(64, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv1)
pool1 = MaxPooling2D(pool_size=(2, 2))(conv1)
conv2 = Conv2D(128, 3, activation='relu', padding='same', kernel_initializer='he_normal')(pool1)
conv2 = Conv2D(128, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv2)
pool2 = MaxPooling2D(pool_size=(2, 2))(conv2)
conv3 = Conv2D(256, 3, activation='relu', padding='same', kernel_initializer='he_normal')(pool2)
conv3 = Conv2D(256, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv3)
pool3 = MaxPooling2D(pool_size=(2, 2))(conv3)
conv4 = Conv2D(512, 3, activation='relu', padding='same', kernel_initializer='he_normal')(pool3)
conv4 = Conv2D(512, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv4)
drop4 = Dropout(0.5)(conv4)
pool4 = MaxPooling2D(pool_size=(2, 2))(drop4)
conv5 = Conv2D(1024, 3, activation='relu', padding='same', kernel_initializer='he_normal')(pool4)
conv5 = Conv2D(1024, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv5)
drop5 = Dropout(0.5)(conv5)
# decoder
up6 = Conv2D(512, 2, activation='relu', padding='same', kernel_initializer='he_normal')(UpSampling2D(size=(2, 2))(drop5))
merge6 = concatenate([drop4, up6], axis=3)
conv6 = Conv2D(512, 3, activation='relu', padding='same', kernel_initializer='he_normal')(merge6)
conv6 = Conv2D(512, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv6)
up7 = Conv2D(256, 2, activation='relu', padding='same', kernel_initializer='he_normal')(UpSampling2D(size=(2, 2))(conv6))
merge7 = concatenate([conv3, up7], axis=3)
conv7 = Conv2D(256, 3, activation='relu', padding='same', kernel_initializer='he_normal')(merge7)
conv7 = Conv2D(256, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv7)
up8 = Conv2D(128, 2, activation='relu', padding='same', kernel_initializer='he_normal')(UpSampling2D(size=(2, 2))(conv7))
merge8 = concatenate([conv2, up8], axis=3)
conv8 = Conv2D(128, 3, activation='relu', padding='same', kernel_initializer='he_normal')(merge8)
conv8 = Conv2D(128, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv8)
up9 = Conv2D(64, 2, activation='relu', padding='same', kernel_initializer='he_normal')(UpSampling2D(size=(2, 2))(conv8))
merge9 = concatenate([conv1, up9], axis=3)
conv9 = Conv2D(64, 3, activation='relu', padding='same', kernel_initializer='he_normal')(merge9)
conv9 = Conv2D(64, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv9)
conv9 = Conv2D(2, 3, activation='relu', padding='same', kernel_initializer='he_normal')(conv9)
# output layer
outputs = Conv2D(1, 1, activation='sigmoid')(conv9)
"""  # noqa: E501

# %% [markdown]
# Now build the same network. `UNet()` takes the seed's defaults: a 256x256x1 input,
# 64 filters at the top, four poolings, dropout 0.5, 'same' padding, up-sampling followed
# by a 2x2 conv, and the extra 2-channel conv before the sigmoid. Building it creates every
# parameter (He-normal kernels, zero biases), which takes a second or two.

# %%
t0 = time.perf_counter()
model = UNet(seed=0)
print(f"built in {time.perf_counter() - t0:.1f} s:", model)

# %% [markdown]
# The table below walks the Keras lines in order and takes, for each layer the line
# creates, the next entry of `model.layers` and of `model.rows` (the rows of
# `model.summary()`). The code checks that the layer classes match, so the table is
# produced and verified by the same code.
#
# Three things to notice:
#
# - Keras code reuses Python variable names (`conv1 = ...` twice, `conv9 = ...` three
#   times). The layers need distinct names, so the project calls them `conv1_1`, `conv1_2`,
#   ..., `conv9_3`, and calls the output layer `conv10`.
# - The `up6 = Conv2D(...)(UpSampling2D(...)(drop5))` line creates **two** layers: the
#   up-sampling runs first (`upsample6`), then the 2x2 conv (`up6`).
# - `concatenate([drop4, up6], axis=3)` puts the skip first. `axis=3` is the channel axis
#   of an `(N, H, W, C)` tensor, so the channels add up: 512 + 512 = 1024.

# %%
KIND = {  # the name in the Keras code -> the class name in numpy_unet
    "Input": "InputLayer",
    "Conv2D": "Conv2D",
    "MaxPooling2D": "MaxPooling2D",
    "Dropout": "Dropout",
    "UpSampling2D": "UpSampling2D",
    "concatenate": "Concatenate",
}
REPEATED = ", activation='relu', padding='same', kernel_initializer='he_normal'"


def seed_to_layers(keras_code: str, model: UNet) -> list[tuple[str, list]]:
    """Pair every Keras line with the rows (name, class, shape) of the layers it creates."""
    layers = iter(model.layers)
    rows = iter(model.rows)
    next(rows)  # the InputLayer row; it has no layer object
    pairs = []
    for line in keras_code.splitlines():
        if "=" not in line or line.lstrip().startswith("#"):
            continue
        calls = re.findall(
            r"\b(Input|Conv2D|MaxPooling2D|Dropout|UpSampling2D|concatenate)\(", line
        )
        calls.reverse()  # f(g(x)): the inner call g runs first
        made = []
        for call in calls:
            if call == "Input":
                row = model.rows[0]
            else:
                layer, row = next(layers), next(rows)
                assert layer.name == row.name and type(layer).__name__ == KIND[call], (line, row)
            assert row.kind == KIND[call], (line, row)
            made.append(row)
        pairs.append((line.replace(REPEATED, ", ..."), made))
    assert next(layers, None) is None, "some layers have no Keras line"
    return pairs


pairs = seed_to_layers(SEED_KERAS, model)
left = max(len(line) for line, _ in pairs)
print(f"{'Keras line in the seed':{left}}    numpy_unet layer (class) output shape")
print(f"{'-' * left}    {'-' * 44}")
for line, made in pairs:
    for k, row in enumerate(made):
        print(f"{line if k == 0 else '':{left}} -> {row.name} ({row.kind}) {row.shape}")
print(f"\n{len(pairs)} Keras lines -> {len(model.rows) - 1} layers + the input")
two_layer_lines = [line.split("=")[0].strip() for line, made in pairs if len(made) == 2]
print("lines that create two layers:", ", ".join(two_layer_lines))
assert sum(len(made) for _, made in pairs) == len(model.rows), "every layer has its Keras line"
assert two_layer_lines == ["up6", "up7", "up8", "up9"], "only the up lines create two layers"

shape_of = {row.name: row.shape for row in model.rows}
for row in model.rows:
    if row.kind == "Concatenate":
        skip, up = row.inbound  # the skip first, as in concatenate([drop4, up6])
        c_skip, c_up, c = shape_of[skip][-1], shape_of[up][-1], row.shape[-1]
        print(f"{row.name} = concatenate([{skip}, {up}]): {c_skip} + {c_up} = {c} channels")
        assert c == c_skip + c_up, f"{row.name}: the channels of a merge add up"
        assert up.startswith("up"), f"{row.name}: the skip comes first, the up-sampled map second"

# %% [markdown]
# Two details the Keras code hides, both visible in `numpy_unet`:
#
# - **'same' padding with a 2x2 kernel.** A 3x3 conv pads one pixel on every side. A 2x2
#   kernel cannot pad symmetrically, and Keras (like TensorFlow) pads 0 rows before and 1
#   row after, in both height and width. `Conv2D` does the same, so weights exported from
#   the seed's Keras model give the same outputs here.
# - **The last conv's initializer.** `Conv2D(1, 1, activation='sigmoid')` passes no
#   `kernel_initializer`, so it gets Keras's default, Glorot-uniform, not He-normal.

# %%
print({layer.name: layer.kernel_initializer for layer in model.layers[-3:]})
up6 = next(layer for layer in model.layers if layer.name == "up6")
print(f"{up6.describe()}: kernel {up6.params['kernel'].shape}, padding {up6.padding!r}")
for k in (3, 2):  # (before, after) along one axis of a 32-pixel map, stride 1
    print(f"'same' padding of a {k}x{k} kernel: {same_padding(32, k)} (before, after)")
assert same_padding(32, 3) == (1, 1), "a 3x3 kernel pads one pixel on each side"
assert same_padding(32, 2) == (0, 1), "a 2x2 kernel pads 0 before and 1 after, as Keras does"
initializers = {lay.kernel_initializer for lay in model.layers[:-1] if isinstance(lay, Conv2D)}
assert initializers == {"he_normal"}, "every conv but the last is He-normal"
assert model.layers[-1].kernel_initializer == "glorot_uniform", "the last conv: Glorot-uniform"

# %% [markdown]
# ## 2. `model.summary()`
#
# The summary prints Keras's table plus a "Mult-Adds" column: the multiply-adds each layer
# performs for one image, which section 4 explains. "Connected to" lists each layer's
# inputs; the merges have two, the skip and the up-sampled map.
#
# Read the Output Shape column from top to bottom. The maps get 2x smaller and 2x deeper at
# each pooling (256x256x64 down to 16x16x1024), then 2x larger and 2x shallower on the way
# up, back to 256x256. The batch axis is `None`: the model takes any batch size.

# %%
model.summary()
down_shapes = [shape_of[level.conv2.name] for level in [*model.down, model.bottom]]
print("\nthe way down:", " -> ".join(f"{h}x{w}x{c}" for _, h, w, c in down_shapes))
for (_, h, w, c), (_, h2, w2, c2) in zip(down_shapes, down_shapes[1:]):
    assert (h2, w2, c2) == (h // 2, w // 2, 2 * c), "each pooling: 2x smaller, then 2x deeper"
assert model.rows[-1].shape[1:3] == model.rows[0].shape[1:3], "the way up returns to the input size"

# %% [markdown]
# ## 3. Where the 31,031,685 parameters are
#
# A `Conv2D` with a `kh x kw` kernel, `Cin` input channels and `Cout` filters holds a kernel
# of shape `(kh, kw, Cin, Cout)` and one bias per filter:
#
#     params = kh * kw * Cin * Cout + Cout
#
# For the first layer, `conv1_1`, a 3x3 kernel on a 1-channel image with 64 filters:
# `3*3*1*64 + 64 = 576 + 64 = 640`. The cell below works a few more layers the same way
# and checks every one against the layer's own `count_params()`. Note `conv6_1`: its input
# is the 1024-channel merge, so it has twice the weights of `conv6_2`.

# %%
convs = [layer for layer in model.layers if isinstance(layer, (Conv2D, Conv2DTranspose))]
for layer in convs:
    kh, kw, cin, cout = layer.params["kernel"].shape
    assert kh * kw * cin * cout + cout == layer.count_params(), layer.name
for name in ["conv1_1", "conv1_2", "conv5_2", "up6", "conv6_1", "conv6_2", "conv10"]:
    layer = next(lay for lay in convs if lay.name == name)
    kh, kw, cin, cout = layer.params["kernel"].shape
    by_hand = kh * kw * cin * cout + cout
    print(f"{name:8s} {f'{kh}*{kw}*{cin}*{cout} + {cout}':>22s} = {by_hand:>9,}")
total = sum(layer.count_params() for layer in convs)
print(f"\n{len(convs)} conv layers, {2 * len(convs)} arrays (kernel + bias each)")
print(f"total: {total:,} parameters (model.count_params() = {model.count_params():,})")
assert total == model.count_params() == 31_031_685, "the seed's UNet has 31,031,685 parameters"
conv6_1, conv6_2 = (next(lay for lay in convs if lay.name == n) for n in ("conv6_1", "conv6_2"))
assert conv6_1.params["kernel"].size == 2 * conv6_2.params["kernel"].size, "conv6_1 reads 2x"

# %% [markdown]
# **Predict before you run.** A 512x512 image has four times as many pixels as a 256x256
# one. How many parameters does this UNet use on it? And how many multiply-adds does one
# forward pass cost (section 4 defines them)? Section 4 answers both.
#
# Now group the layers by level of the U. Level 1 is full resolution, level 5 the bottom.
# The decoder half of a level is its up-conv (the 2x2 conv after the up-sampling) and its
# two 3x3 convs; the head (the 2-channel conv and the 1x1 output conv) sits at level 1.
#
# **Predict before you run.** Level 1 works on 256x256 maps of 64 channels, level 5 on
# 16x16 maps of 1024 channels. Which of the two holds more of the parameters, and roughly
# what share of all of them? Which of the two does more of the arithmetic? The next cell
# answers the first question, section 4 the second.


# %%
def level_layers(model: UNet) -> list[tuple[list[str], list[str]]]:
    """The conv names of each level, top first, as (encoder, decoder). The head counts as
    level 1's decoder; the bottom level has no decoder half."""
    levels = []
    decoder_levels = list(reversed(model.up))  # model.up runs deepest first
    for k, down in enumerate([*model.down, model.bottom]):
        encoder, decoder = [down.conv1.name, down.conv2.name], []
        if k < len(decoder_levels):
            up = decoder_levels[k]
            decoder = [lay.name for lay in (up.upconv, up.conv1, up.conv2)]
        if k == 0:
            decoder += [lay.name for lay in model.head]
        levels.append((encoder, decoder))
    return levels


row_of = {row.name: row for row in model.rows}
levels = level_layers(model)
param_share = []
print(f"{'level':>5}  {'maps':>12}  {'encoder':>11}  {'decoder':>11}  {'share':>6}")
for level, (enc, dec) in enumerate(levels, start=1):
    _, h, w, c = shape_of[enc[-1]]
    p_enc, p_dec = (sum(row_of[name].params for name in names) for names in (enc, dec))
    param_share.append((p_enc + p_dec) / total)
    print(f"{level:>5}  {f'{h}x{w}x{c}':>12}  {p_enc:>11,}  {p_dec:>11,}  {param_share[-1]:6.1%}")
deepest_two = param_share[-1] + param_share[-2]
print(f"\nlevel 1 holds {param_share[0]:.1%} of the parameters, level 5 {param_share[-1]:.1%};")
print(f"levels 4 and 5 together hold {deepest_two:.1%}")
assert abs(sum(param_share) - 1) < 1e-12, "every conv belongs to exactly one level"
assert np.argmax(param_share) == len(levels) - 1, "the bottom level holds the most parameters"
assert 0.85 < deepest_two < 0.9, "the two deepest levels hold almost nine tenths"

# %% [markdown]
# The two deepest levels hold almost nine tenths of the parameters: a 3x3 conv from 1024
# to 1024 channels alone has 9.4 million weights (`conv5_2` above), and the number of
# weights grows with the square of the channel count. Section 4 shows that the arithmetic
# is spread quite differently.
#
# ## 4. Multiply-adds: what one forward pass costs
#
# Every output value of a conv is a dot product of length `kh * kw * Cin`, and there are
# `Ho * Wo * Cout` output values per image:
#
#     multiply-adds = Ho * Wo * kh * kw * Cin * Cout
#
# For `conv1_2` on a 256x256 image: `256 * 256 * 3 * 3 * 64 * 64 = 2,415,919,104`, about
# 2.42 G. The summary's column uses exactly this formula; `model.rows` holds the numbers.
# Each multiply-add counts as two floating-point operations (FLOP). Biases, ReLUs, pooling
# and concatenation are left out: they cost about one operation per value, while a conv
# spends `kh * kw * Cin` multiply-adds on each of its output values. That is 576 in
# `conv1_2` and 9,216 in `conv5_2`, about 1,400 on average over the whole network (the
# cell prints it): the left-out operations are hundreds to thousands of times cheaper.

# %%
by_hand = 256 * 256 * 3 * 3 * 64 * 64
conv1_2 = next(row for row in model.rows if row.name == "conv1_2")
print(f"conv1_2 by hand: {by_hand:,}   in model.rows: {conv1_2.mult_adds:,}")
macs = sum(row.mult_adds for row in model.rows)
print(f"total: {macs:,} multiply-adds per 256x256 image = {macs / 1e9:.1f} G")
print(f"       = {2 * macs / 1e9:.0f} GFLOP per forward pass (a backward pass costs about 2x)")
conv_outputs = sum(int(np.prod(row.shape[1:])) for row in model.rows if row.mult_adds)
per_output = macs / conv_outputs
print(f"       = {per_output:,.0f} multiply-adds per conv output value, on average")
assert by_hand == conv1_2.mult_adds, "the summary counts Ho*Wo*kh*kw*Cin*Cout"
assert f"{macs / 1e9:.1f}" == "54.6", "one 256x256 image costs about 54.6 G multiply-adds"
assert 1_300 < per_output < 1_450, "about 1,400 multiply-adds per conv output value"

# %% [markdown]
# Now the answers to the two questions of section 3. First, the multiply-adds per level,
# next to the parameter shares of section 3.

# %%
mac_share = []
print(f"{'level':>5}  {'multiply-adds':>14}  {'share':>6}  {'params share':>12}")
for level, (enc, dec) in enumerate(levels, start=1):
    level_macs = sum(row_of[name].mult_adds for name in enc + dec)
    mac_share.append(level_macs / macs)
    shares = f"{mac_share[-1]:6.1%}  {param_share[level - 1]:12.1%}"
    print(f"{level:>5}  {level_macs / 1e9:>12.2f} G  {shares}")
print(
    f"\nlevel 5 holds {param_share[-1]:.0%} of the parameters but does {mac_share[-1]:.1%} of "
    f"the arithmetic;\nlevel 1 holds {param_share[0]:.1%} and does {mac_share[0]:.0%}"
)
assert np.argmin(mac_share) == len(levels) - 1, "the bottom does the least arithmetic"
assert all(0.2 < share < 0.25 for share in mac_share[:-1]), "levels 1 to 4 cost about the same"
assert mac_share[0] > 10 * param_share[0], "level 1: few parameters, much arithmetic"


# %% [markdown]
# Level 5 has no decoder half, and its two convs cost no more than two convs of any other
# level. Then the 512x512 image. `model.walk(shape, visit)` follows the U with shapes
# alone and calls `visit` on every layer; `multiply_adds` (from `numpy_unet/model/summary.py`)
# is the formula of the summary's column. Nothing is built or run.


# %%
def costs_at(model: UNet, size: int) -> tuple[int, int]:
    """(parameters, multiply-adds per image) of ``model`` on a size x size input."""
    counts = []

    def visit(layer, in_shape, out_shape, inbound):
        counts.append((layer.count_params(), multiply_adds(layer, in_shape, out_shape)))

    model.walk((1, size, size, model.config["input_shape"][2]), visit)
    return sum(p for p, _ in counts), sum(m for _, m in counts)


(p256, m256), (p512, m512) = costs_at(model, 256), costs_at(model, 512)
print(f"256x256: {p256:,} parameters, {m256 / 1e9:.1f} G multiply-adds")
print(f"512x512: {p512:,} parameters, {m512 / 1e9:.1f} G multiply-adds ({m512 / m256:g}x)")
assert p512 == p256 == total, "the parameters do not depend on the image size"
assert m512 == 4 * m256, "the arithmetic grows with the number of pixels: 4x"

# %% [markdown]
# The same 31,031,685 parameters: a conv's weights are shared by every pixel, so only the
# activations and the arithmetic grow, exactly 4 times here.
#
# The figure below shows both quantities per conv layer, on log scales. The parameters pile
# up at the bottom of the U. The multiply-adds of a layer hardly change from level to
# level: each pooling divides the pixels by 4, and doubling the channels multiplies
# `Cin * Cout` by 4. Within a level the pattern repeats: 1.21 G for the first encoder conv
# (its input has half the channels), 2.42 G for the second, 4.83 G for the first decoder
# conv (it reads the merge, twice as deep). Only the first conv (one input channel) and the
# two head convs are cheap.

# %%
PATH_COLOURS = {
    "encoder": "tab:blue",
    "bottom": "tab:purple",
    "decoder": "tab:green",
    "head": "tab:orange",
}


def path_of(model: UNet) -> dict[str, str]:
    """Which part of the U each layer belongs to, from the model's structure."""
    part = {}
    for level in model.down:
        part |= {lay.name: "encoder" for lay in (level.conv1, level.conv2)}
    part |= {lay.name: "bottom" for lay in (model.bottom.conv1, model.bottom.conv2)}
    for level in model.up:
        part |= {lay.name: "decoder" for lay in (level.upconv, level.conv1, level.conv2)}
    part |= {lay.name: "head" for lay in model.head}
    return part


def plot_costs(model: UNet) -> Figure:
    part = path_of(model)
    rows = [row for row in model.rows if row.mult_adds > 0]
    names = [row.name for row in rows]
    colours = [PATH_COLOURS[part[name]] for name in names]
    x = np.arange(len(rows))
    fig = Figure(figsize=(12, 7.5), layout="constrained")
    ax_p, ax_m = fig.subplots(2, 1, sharex=True)
    params = [row.params for row in rows]
    ax_p.bar(x, params, color=colours)
    ax_p.set_yscale("log")
    ax_p.set_ylabel("parameters")
    ax_p.set_title(f"Parameters per layer (total {sum(params):,})")
    mult_adds = [row.mult_adds for row in rows]
    ax_m.bar(x, mult_adds, color=colours)
    ax_m.set_yscale("log")
    ax_m.set_ylabel("multiply-adds per image")
    h, w = model.rows[0].shape[1:3]
    ax_m.set_title(
        f"Multiply-adds per layer, one {h}x{w} image "
        f"(total {sum(mult_adds) / 1e9:.1f} G = {2 * sum(mult_adds) / 1e9:.0f} GFLOP)"
    )
    ax_m.set_xticks(x, names, rotation=90)
    ax_m.set_xlabel("conv layer, in the order of the forward pass")
    for ax in (ax_p, ax_m):
        ax.grid(axis="y", which="major", alpha=0.4)
    handles = [Patch(color=c, label=p) for p, c in PATH_COLOURS.items()]
    fig.legend(handles=handles, loc="outside upper center", ncols=4, title="part of the U")
    return fig


save(plot_costs(model), "04_cost_per_layer.png")
for level, (enc, dec) in enumerate(levels[1:-1], start=2):  # levels 2 to 4
    first, second, merge_conv = (row_of[name].mult_adds for name in (enc[0], enc[1], dec[1]))
    print(
        f"level {level}: {enc[0]} {first / 1e9:.2f} G, {enc[1]} {second / 1e9:.2f} G, "
        f"{dec[1]} {merge_conv / 1e9:.2f} G"
    )
    assert (2 * first, 2 * second) == (second, merge_conv), "the 1.21 / 2.42 / 4.83 G pattern"
cheap = [row.name for row in model.rows if 0 < row.mult_adds < 1e9]
print("convs under 1 G multiply-adds:", cheap)
assert cheap == ["conv1_1", "conv9_3", "conv10"], "only the first conv and the head are cheap"

# %% [markdown]
# ## 5. The U, drawn from the model
#
# The paper's Figure 1 draws each feature map as a box, one row per resolution: down the
# left side through the poolings, across the bottom, up the right side, with grey arrows
# carrying each level's output across to the decoder. The function below draws that
# diagram by walking the model's own structure: `model.down` (one entry per level: two
# convs, an optional dropout, a pooling), `model.bottom`, `model.up` (up-sampling and
# up-conv, an optional crop, the merge, two convs) and `model.head`. The labels are the
# layer names and the output shapes from `model.rows`, so the drawing cannot disagree with
# the code. Box widths grow with the channel count (on a log scale).
#
# The same function draws `UNet.paper()`, Ronneberger et al.'s network. It has unpadded
# ('valid') 3x3 convs, each of which loses a 1-pixel border, so a 572x572 tile shrinks to
# 388x388 at the output. The skips are therefore larger than the maps they join and are
# centre-cropped first. The up-convolution is a 2x2 transposed conv with stride 2. A 1x1
# conv to two classes with a softmax replaces the seed's two-conv head.

# %%
paper = UNet.paper(seed=0)
print(paper)
paper_shapes = {row.name: row.shape for row in paper.rows}
for level in paper.up:
    crop = next(row for row in paper.rows if row.name == level.crop.name)
    skip = crop.inbound[0]
    (top, bottom), (lft, rgt) = level.crop.cropping
    h, w = paper_shapes[skip][1:3]
    print(
        f"  {crop.name}: {skip} {h}x{w} -> {crop.shape[1]}x{crop.shape[2]}, "
        f"cropping {top}+{bottom} rows and {lft}+{rgt} columns"
    )
    assert top == bottom and lft == rgt, f"{crop.name}: the skip is cropped at its centre"
assert paper.up[-1].crop.cropping == ((88, 88), (88, 88)), "the top skip loses 88 px a side"
assert paper.rows[-1].shape[1:] == (388, 388, 2), "a 572x572 tile gives 388x388x2"

# %% [markdown]
# The drawing function follows. It places each level's boxes in columns, shifting every
# level one pooling step to the right, so that each pooling arrow points straight down
# and each up-sampling arrow straight up, as in the paper.


# %%
def light(colour: str, amount: float = 0.4) -> tuple:
    """``colour`` mixed with white, so that black text on it stays readable."""
    return tuple(1 - amount + amount * v for v in to_rgb(colour))


FILL = {"input": "0.8", "pool": "0.9"} | {p: light(c) for p, c in PATH_COLOURS.items()}


def draw_unet(ax, model: UNet) -> None:
    """Draw ``model`` as the paper's U: one row of boxes per level, arrows for layers."""
    shapes = {row.name: row.shape for row in model.rows}
    inbound = {row.name: row.inbound for row in model.rows}
    part = path_of(model)
    max_c = max(shape[-1] for shape in shapes.values())
    gap, box_h = 1.3, 0.86  # vertical distance between levels, box height

    def width(channels: int) -> float:  # log scale: 1 channel -> 0.36, max_c -> 0.72
        return 0.36 + 0.36 * np.log2(channels) / np.log2(max_c)

    def label(name: str, extra: str = "") -> str:
        h, w, c = shapes[name][1:]
        return f"{name}\n{h}x{w}x{c}" + (f"\n{extra}" if extra else "")

    def box(col: float, level: int, name: str, colour: str, extra: str = "") -> tuple:
        """A feature map; returns its (left, right, bottom, top)."""
        w, y = width(shapes[name][-1]), -level * gap
        edges = (col - w / 2, col + w / 2, y - box_h / 2, y + box_h / 2)
        ax.add_patch(
            Rectangle((edges[0], edges[2]), w, box_h, facecolor=colour, edgecolor="0.2", lw=0.8)
        )
        ax.text(col, y, label(name, extra), rotation=90, ha="center", va="center", fontsize=7.5)
        return edges

    def merge_box(col: float, level: int, name: str, skip_c: int) -> tuple:
        """The concatenation: the copied skip (white, left), the up-sampled map (right).
        The name and shape go above the box; each part shows its own channel count."""
        w, y = width(shapes[name][-1]), -level * gap
        c = shapes[name][-1]
        w_skip = w * skip_c / c
        left = col - (w - w_skip) / 2 - w_skip  # the up-sampled half sits above `col`
        ax.add_patch(Rectangle((left, y - box_h / 2), w_skip, box_h, fc="white", ec="0.2", lw=0.8))
        ax.add_patch(
            Rectangle(
                (left + w_skip, y - box_h / 2), w - w_skip, box_h, fc=FILL["decoder"], ec="0.2"
            )
        )
        for x_mid, channels in (
            (left + w_skip / 2, skip_c),
            (left + w_skip + (w - w_skip) / 2, c - skip_c),
        ):
            ax.text(x_mid, y, f"{channels} ch", rotation=90, ha="center", va="center", fontsize=7)
        h_w = "x".join(str(v) for v in shapes[name][1:])
        ax.text(
            left + w / 2,
            y + box_h / 2 + 0.04,
            f"{name}\n{h_w}",
            ha="center",
            va="bottom",
            fontsize=7.5,
        )
        return left, left + w, y - box_h / 2, y + box_h / 2

    def arrow(start: tuple, end: tuple, colour: str, lw: float = 1.6) -> None:
        style = dict(arrowstyle="-|>", color=colour, lw=lw, shrinkA=0, shrinkB=0)
        ax.annotate("", xy=end, xytext=start, arrowprops=style)

    def across(a: tuple, b: tuple, colour: str) -> None:  # box a -> box b, same level
        y = (a[2] + a[3]) / 2
        arrow((a[1], y), (b[0], y), colour)

    conv_c, pool_c, up_c, skip_c, out_c = "tab:blue", "darkmagenta", "tab:green", "0.5", "darkcyan"
    # contracting path: [input or pooled map], conv, conv per level, then the pooling
    col, prev, skips = 0, None, []
    for level, down in enumerate([*model.down, model.bottom]):
        if prev is None:
            prev = box(col, level, "input", FILL["input"])
        else:
            pool = model.down[level - 1].pool
            pooled = box(col, level, pool.name, FILL["pool"])
            arrow((col, prev[2]), (col, pooled[3]), pool_c)
            prev = pooled
        for conv in (down.conv1, down.conv2):
            col += 1
            extra = f"+ {down.drop.name}" if conv is down.conv2 and down.drop else ""
            b = box(col, level, conv.name, FILL[part[conv.name]], extra)
            across(prev, b, conv_c)
            prev = b
        skips.append((prev, col))
    skips.pop()  # the bottom's output is not a skip
    # expanding path: up-sample to the merge above, then conv, conv
    for level, up in zip(range(len(model.up) - 1, -1, -1), model.up):
        skip_box, _ = skips.pop()
        skip_name = inbound[up.merge.name][0]  # the skip (or its crop), first input
        skip_channels = shapes[skip_name][-1]
        merged = merge_box(col, level, up.merge.name, skip_channels)
        arrow((col, prev[3]), (col, merged[2]), up_c)
        ups = [lay.name for lay in (up.upsample, up.upconv) if lay is not None]
        ax.text(col + 0.08, prev[3] + 0.05, " + ".join(ups), fontsize=7, color=up_c, va="bottom")
        y = -level * gap
        arrow((skip_box[1], y), (merged[0], y), skip_c, lw=2.2)
        if up.crop is not None:
            source = inbound[up.crop.name][0]
            hs, hc = shapes[source][1], shapes[up.crop.name][1]
            what = f"copy {source}\ncrop {hs} -> {hc}"
        else:
            what = f"copy {skip_name}"
        ax.text(
            (skip_box[1] + merged[0]) / 2, y + 0.04, what, ha="center", va="bottom", fontsize=7.5
        )
        prev = merged
        for conv in (up.conv1, up.conv2):
            col += 1
            b = box(col, level, conv.name, FILL[part[conv.name]])
            across(prev, b, conv_c)
            prev = b
    for layer in model.head:  # at the top level, after the last conv
        col += 1
        b = box(col, 0, layer.name, FILL["head"])
        across(prev, b, out_c if layer.kernel_size == (1, 1) else conv_c)
        prev = b
    # legend: the arrows, described from the layers themselves
    first, pool = model.down[0].conv1, model.down[0].pool
    up = model.up[0]
    if up.upsample is not None:
        k = up.upconv.kernel_size[0]
        up_text = f"{up.upsample.size[0]}x up-sampling + {k}x{k} conv + {up.upconv.activation_name}"
    else:
        k, s = up.upconv.kernel_size[0], up.upconv.strides[0]
        up_text = f"{k}x{k} transposed conv, stride {s} (up-conv)"
    last = model.head[-1]
    handles = [
        Line2D(
            [],
            [],
            color=conv_c,
            lw=2,
            label=f"{first.kernel_size[0]}x{first.kernel_size[1]} conv ('{first.padding}') + relu",
        ),
        Line2D(
            [], [], color=pool_c, lw=2, label=f"{pool.pool_size[0]}x{pool.pool_size[1]} max-pool"
        ),
        Line2D([], [], color=up_c, lw=2, label=up_text),
        Line2D([], [], color=skip_c, lw=2.5, label="skip connection, concatenated"),
        Line2D([], [], color=out_c, lw=2, label=f"1x1 conv + {last.activation_name}"),
    ]
    ax.add_artist(ax.legend(handles=handles, loc="lower right", fontsize=9, title="arrows"))
    maps = {
        "input": "input image",
        "pool": "pooled map",
        "encoder": "encoder (contracting path)",
        "bottom": "bottom of the U",
        "decoder": "decoder (expanding path)",
        "head": "head (output layers)",
    }
    patches = [Patch(fc=FILL[k], ec="0.2", label=v) for k, v in maps.items()]
    patches.append(Patch(fc="white", ec="0.2", label="copied skip (left part of a merge)"))
    patches.append(Patch(fc=FILL["decoder"], ec="0.2", label="up-sampled map (right part)"))
    ax.legend(handles=patches, loc="lower left", fontsize=9, title="feature maps")
    ax.set_xlim(-0.7, col + 0.7)
    ax.set_ylim(-len(model.down) * gap - box_h / 2 - 0.15, box_h / 2 + 0.45)
    ax.set_axis_off()
    (_, h, w, c), (_, ho, wo, co) = model.rows[0].shape, model.rows[-1].shape
    ax.set_title(
        f"{model.name}: {h}x{w}x{c} -> {ho}x{wo}x{co}, {model.count_params():,} parameters "
        "(labels: layer name, output height x width x channels)",
        fontsize=11,
    )


fig = Figure(figsize=(16, 14), layout="constrained")
ax_seed, ax_paper = fig.subplots(2, 1)
draw_unet(ax_seed, model)
draw_unet(ax_paper, paper)
save(fig, "04_unet_diagrams.png")

# %% [markdown]
# Compare the two drawings:
#
# - **Sizes.** The seed keeps 256x256 on every level it returns to ('same' padding). The
#   paper loses two pixels per 3x3 conv (572 -> 570 -> 568), so its skips are larger than
#   the maps they meet and must be cropped: 568 -> 392 at the top, an 88-pixel border on each
#   side. Its output, 388x388, is the centre of the 572x572 input tile.
# - **The way up.** The seed up-samples (copies each pixel into a 2x2 block) and then applies
#   a 2x2 conv with a ReLU. The paper uses one 2x2 transposed conv with stride 2. It does
#   not say whether an activation follows; ports of the released Caffe model put a ReLU
#   after it, and `UNet.paper()` leaves it linear. Both halve the channels and hold the
#   same number of weights (`2*2*1024*512 + 512 = 2,097,664` for `up6`).
# - **The head.** The seed adds `Conv2D(2, 3, relu)` before a one-channel sigmoid; the paper
#   goes straight to two channels with a 1x1 conv and a softmax. That is why the counts
#   differ by 1,027: `1,154 + 3` (seed) minus `130` (paper).

# %%
seed_head = sum(layer.count_params() for layer in model.head)
paper_head = sum(layer.count_params() for layer in paper.head)
print(f"head: seed {seed_head:,}, paper {paper_head:,}; difference {seed_head - paper_head:,}")
print(f"total: seed {model.count_params():,}, paper {paper.count_params():,}")
up6_seed, up6_paper = (next(lay for lay in m.layers if lay.name == "up6") for m in (model, paper))
print(f"up6: seed {up6_seed.count_params():,}, paper {up6_paper.count_params():,} parameters")
assert paper.count_params() == 31_030_658, "the paper's network: 31,030,658 parameters"
assert model.count_params() - paper.count_params() == seed_head - paper_head == 1_027, (
    "the two networks differ only in their heads: 1,027 parameters"
)
assert up6_seed.count_params() == up6_paper.count_params() == 2_097_664, "same up-conv weights"

# %% [markdown]
# ## 6. Which input sizes work
#
# Every pooling halves the height and width, rounding down, and the way up doubles them
# again. The doubled map must have exactly the size of the skip it is concatenated with. With
# 'same' padding and four poolings that means the height and width must be divisible by
# `2**4 = 16`. Any other size reaches some pooling with an odd size and loses a row there,
# and the concatenation on the way up fails. This is the error users of the seed hit most
# often. In Keras it appears deep inside `concatenate`; here the model checks the size
# first and names the nearest valid ones.
#
# `model.output_size(n)` gives the output length for an input length `n`,
# or `None` if the model cannot take it.
#
# **Predict before you run.** The paper's network turns a 572x572 tile into 388x388, so
# 184 pixels of height are used as context and never predicted. What is the smallest tile
# it accepts, and how large is its output? Does a larger tile lose more than 184 pixels?

# %%
seed_ok = [n for n in range(1, 330) if model.output_size(n)]
print("seed UNet, valid sizes up to 329:", seed_ok)
assert seed_ok == list(range(16, 330, 16)), "'same' padding, 4 poolings: multiples of 16"
paper_ok = [(n, paper.output_size(n)) for n in range(1, 700) if paper.output_size(n)]
print("paper UNet, valid input -> output sizes below 700:")
print("  " + ", ".join(f"{n}->{m}" for n, m in paper_ok))
(n_min, m_min), lost = paper_ok[0], {n - m for n, m in paper_ok}
print(f"smallest tile: {n_min} -> {m_min}; pixels lost, input minus output: {sorted(lost)}")
assert (n_min, m_min) == (188, 4), "the smallest tile of the paper's network: 188 -> 4"
assert lost == {184}, "every valid tile loses the same 184-pixel border"
assert {b[0] - a[0] for a, b in zip(paper_ok, paper_ok[1:])} == {16}, "valid tiles: 16 apart"

# %% [markdown]
# The answer: the smallest tile predicts only a 4x4 centre, and every tile, large or small, loses
# the same border: 92 pixels on each side. Each 3x3 conv takes one pixel per side from its own
# map, and one pixel at level `k` is `2**(k-1)` pixels of the input: 4 convs x 1 at level
# 1, 4 x 2 at level 2, 4 x 4, 4 x 8, and 2 x 16 at the bottom, 92 in all. That fixed
# border is why the paper predicts a large image tile by tile, each tile with its context
# around it (tutorial 09).
#
# For the paper's network the valid tile sizes are 16 apart too, but offset, and the rule
# is different: every map that enters a pooling must have an even size. The cell below
# follows the height down the U for 572 and for 570, level by level (entering the level,
# after its two convs).


# %%
def way_down(model: UNet, n: int) -> tuple[list[tuple[int, int]], str]:
    """(height entering, height after the two convs) per level, until the U fails."""
    first = {level.conv1.name for level in [*model.down, model.bottom]}
    second = {level.conv2.name for level in [*model.down, model.bottom]}
    sizes = []

    def visit(layer, in_shape, out_shape, inbound):
        if layer.name in first:
            sizes.append((in_shape[1], None))
        if layer.name in second:
            sizes[-1] = (sizes[-1][0], out_shape[1])

    try:
        model.walk((1, n, n, 1), visit)
        failure = "fits"
    except ValueError as err:
        failure = f"fails: {err}"
    return sizes, failure


for n in (572, 570):
    sizes, failure = way_down(paper, n)
    print(f"{n}: " + ", ".join(f"{a} -> {b}" for a, b in sizes) + f"; {failure}")
assert way_down(paper, 572)[0] == [(572, 568), (284, 280), (140, 136), (68, 64), (32, 28)]
assert way_down(paper, 570)[0][-1] == (283, 279), "570 reaches a pooling with 279 rows"

# %% [markdown]
# 572 works: every map that enters a pooling (568, 280, 136, 64) is even. 570 does not:
# after the first pooling the level works on 283 -> 279, and 279 cannot be halved.
#
# Now the errors. Building a model for 250x250, or passing an image 250 pixels wide to a
# model, raises a `ValueError` that says why and what to use instead. So do the paper's
# network at 570 and an image without its batch axis.

# %%
for make, says in (
    (lambda: UNet((250, 250, 1)), "Nearest valid heights: 240 or 256"),
    (lambda: model.predict(np.zeros((1, 256, 250, 1), np.float32)), "widths: 240 or 256"),
    (lambda: UNet.paper(input_shape=(570, 570, 1)), "Nearest valid heights: 556 or 572"),
    (lambda: model.predict(np.zeros((256, 256, 1), np.float32)), "Add the batch axis"),
):
    try:
        make()
    except ValueError as err:
        print(f"ValueError: {err}\n")
        assert says in str(err), f"the error should say {says!r}"
    else:
        raise AssertionError("a bad input size must raise a ValueError")

# %% [markdown]
# ## 7. A forward pass, with the shapes recorded on the way
#
# `model.summary()` computes the shapes without running anything. To confirm them, run a
# real forward pass and record what every layer returns. The helper below wraps each
# layer's `forward`, like a forward hook in PyTorch, then removes the wrappers again.
# It runs the model with its speed switch off (`with model.readable():`): the speed engine
# computes each `UpSampling2D` and the 2x2 conv after it in one go
# (`numpy_unet/fast/upconv.py`), so the up-sampling layer's own `forward` would never run.
# Off, every layer runs its own code, one after the other, and the numbers are the same.
#
# In quick mode this cell uses a smaller model (8 filters, 64x64 input) so that it runs in
# a moment; the full run pushes one 256x256 image through the full 31-million-parameter
# UNet, which takes a few seconds on a laptop.


# %%
def forward_with_shapes(model: UNet, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """``model.forward(x)``, plus the output shape of every layer, by layer name."""
    seen = {}
    for layer in model.layers:

        def hooked(inputs, training=False, _forward=layer.forward, _name=layer.name):
            out = _forward(inputs, training=training)
            seen[_name] = out.shape
            return out

        layer.forward = hooked  # an instance attribute shadows the class's method
    try:
        with model.readable():  # every layer's own forward, none fused by the speed engine
            y = model.forward(x)
    finally:
        for layer in model.layers:
            del layer.forward  # back to the class's method
    return y, seen


runner = pick(model, UNet((64, 64, 1), filters=8, seed=0))
size = runner.rows[0].shape[1]
x = np.random.default_rng(0).random((1, size, size, 1), dtype=np.float32)
y, seen = forward_with_shapes(runner, x)
t0 = time.perf_counter()
y_fast = runner.forward(x)  # again, timed, with the speed engine on
seconds = time.perf_counter() - t0
assert np.allclose(y_fast, y, atol=1e-5), "the speed engine gives the same numbers"
mismatches = [row.name for row in runner.rows[1:] if seen[row.name][1:] != row.shape[1:]]
print(f"{runner}")
print(f"input {x.shape} -> output {y.shape}, values in [{y.min():.3f}, {y.max():.3f}]")
print(f"{len(seen)} layers ran; shapes that differ from the summary: {mismatches or 'none'}")
for name in ["conv1_2", "pool4", "conv5_2", "upsample6", "up6", "merge6", "conv9_3", "conv10"]:
    print(f"  {name:9s} {seen[name]}")
assert len(seen) == len(runner.rows) - 1 and not mismatches, "the summary's shapes are real"
assert y.shape == x.shape and 0 < y.min() and y.max() < 1, "a probability map, input-sized"
gflop = 2 * sum(row.mult_adds for row in runner.rows) / 1e9
print(f"forward pass: {seconds:.2f} s for {gflop:.2f} GFLOP = {gflop / seconds:.1f} GFLOP/s")
if quick():
    print("(quick mode: a model too small to keep BLAS busy; a full run shows the real rate)")

# %% [markdown]
# The output is a probability map with the input's height and width, from the sigmoid. Its
# values mean nothing yet: the network is untrained. The GFLOP/s figure measures how well
# NumPy's matrix product (BLAS) is used: each conv is a few large `matmul`s, after `im2col`
# (tutorial 01) for few channels and small images, otherwise as a sum of shifted products
# that needs no im2col copy (`numpy_unet/fast/conv.py`).
#
# **Predict before you run.** This model was built for square images (256x256; 64x64 in
# quick mode). Does it accept a batch of two images of 128x192 (32x48 in quick mode)? If
# so, what shape comes out?

# %%
h, w = pick((128, 192), (32, 48))
y = runner.predict(np.zeros((2, h, w, 1), np.float32))
print(f"{runner.name} built for {runner.rows[0].shape[1:3]}: input (2, {h}, {w}, 1) -> {y.shape}")
assert y.shape == (2, h, w, 1), "any valid height and width, any batch size"

# %% [markdown]
# The answer: yes. A model accepts any valid size, not only the one it was built for, and the height
# and width need not be equal. Only the channel count is fixed, by the first conv's kernel.

# %% [markdown]
# ## Summary
#
# - Each line of the seed's Keras code maps onto one named layer object (two for the
#   `UpSampling2D` + `Conv2D` lines); `model.layers` lists them in the same order.
# - `params = kh*kw*Cin*Cout + Cout` per conv; the total is 31,031,685 at any input size,
#   almost nine tenths of it in the two deepest levels.
# - `multiply-adds = Ho*Wo*kh*kw*Cin*Cout` per conv; about 54.6 G per 256x256 image (109
#   GFLOP), spread almost evenly over levels 1 to 4; the bottom level, which holds the most
#   parameters, does the least arithmetic. Four times the pixels, four times the cost.
# - The paper's network differs in padding, cropping, up-convolution and head, and has
#   1,027 fewer parameters (31,030,658).
# - With four poolings and 'same' padding, height and width must be multiples of 16. The
#   paper's network accepts tiles 16 apart too (188, 204, ..., 572) and always loses a
#   184-pixel border.
#
# Next: tutorial 05 checks every gradient of this network against finite differences.

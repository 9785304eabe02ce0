"""Small files that claim huge contents are refused before they are inflated (issue 32, items
4, 5 and 6): folders of huge images, ``.keras`` zip bombs, weights files declaring gigabytes.

Each hostile file is made here, small on disk: PNGs of zeros, zips whose deflate streams
inflate to gigabytes, an HDF5 file of unwritten (fill-value) datasets, an ``.npz`` whose
``.npy`` header declares a huge shape. Each is loaded in a child process whose address space
is capped at 1.5 GB (Python, NumPy, matplotlib and h5py take 0.2 GB of it), so a case that
used more than about 1 GB before its error would end in a MemoryError there, not in the one
line naming the file that these tests ask for.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import numpy_unet.data.loading as loading
from numpy_unet.data import load_folder, write_tiff_stack
from numpy_unet.model import keras_files

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the child's address-space limit (RLIMIT_AS) is Linux's"
)

LIMIT = 1_500_000_000  # bytes of address space the child may map
KERAS = Path(__file__).parent / "data" / "keras-seed-unet-f4" / "seed_unet_f4.keras"


def run_capped(code: str, limit: int = LIMIT) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python child whose address space is capped at ``limit`` bytes; it
    prints its peak resident memory (kB) on the last line of stderr."""
    prelude = textwrap.dedent(f"""
        import atexit, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        def peak():  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's)
            with open("/proc/self/status") as f:
                return next(line.split()[1] for line in f if line.startswith("VmHWM"))
        atexit.register(lambda: print("peak_kb", peak(), file=sys.stderr))
    """)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def api_error(code: str, limit: int = LIMIT) -> str:
    """The one-line ValueError that ``code`` raises in a child capped at ``limit`` bytes."""
    body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
    child = run_capped(
        f"try:\n{body}\nexcept ValueError as err:\n    print(err)\n    sys.exit(3)\n", limit
    )
    assert child.returncode == 3, child.stderr[-2000:]  # not a MemoryError traceback
    assert child.stdout.count("\n") == 1, child.stdout
    return child.stdout.strip()


# -- making the files -----------------------------------------------------------------------
def png(width: int, height: int, bits: int, color_type: int, row: bytes | None = None) -> bytes:
    """A PNG every row of which is ``row`` (zeros by default), compressed row by row."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = bytes(width * channels * bits // 8) if row is None else row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    z = zlib.compressobj(6)
    idat = b"".join(z.compress(b"\0" + row) for _ in range(height)) + z.flush()  # filter 0
    header = struct.pack(">IIBBBBB", width, height, bits, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def seed_folder(folder: Path, pairs: int, image: bytes, mask: bytes) -> Path:
    """``folder/image/k.png`` and ``folder/label/k.png`` for k < pairs."""
    for sub, data in (("image", image), ("label", mask)):
        (folder / sub).mkdir(parents=True)
        for k in range(pairs):
            (folder / sub / f"{k}.png").write_bytes(data)
    return folder


def deflated_zeros(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream that inflates to ``mib`` MiB of zero bytes, and their CRC-32.
    After a full flush each MiB of zeros compresses to the same kilobyte: repeat it."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(bytes(2**20)) + z.flush(zlib.Z_FULL_FLUSH)
    crc, zeros = 0, bytes(2**24)
    for _ in range(mib // 16):
        crc = zlib.crc32(zeros, crc)
    return block * mib + z.flush(), crc


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip written by hand, so that a member can be a ready-made deflate stream: members
    are (name, stored bytes, method (0 stored, 8 deflated), inflated size, CRC-32)."""
    body, directory = bytearray(), bytearray()
    for name, data, method, size, crc in members:
        fields = (method, 0, 0x21, crc, len(data), size, len(name))  # 0x21: 1 Jan 1980
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *fields, 0) + name.encode() + data
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *fields, 0, 0, 0, 0, 0, offset
        )
        directory += name.encode()
    n = len(members)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))
    return path


def keras_bomb(path: Path, member: str, mib: int) -> Path:
    """The seed's .keras with ``member`` replaced by ``mib`` MiB of deflated zeros."""
    members = []
    with zipfile.ZipFile(KERAS) as z:
        for name in z.namelist():
            data = z.read(name)
            members.append((name, data, 0, len(data), zlib.crc32(data)))
    k = next(k for k, m in enumerate(members) if m[0] == member)
    stream, crc = deflated_zeros(mib)
    members[k] = (member, stream, 8, mib * 2**20, crc)
    return write_zip(path, members)


def fill_value_h5(path: Path, filters: int) -> Path:
    """Keras 2's model.save() layout for the seed's UNet of ``filters`` filters, every dataset
    chunked and never written: HDF5 stores no chunk, reading gives the fill value."""
    h5py = pytest.importorskip("h5py")
    shapes = keras_files.seed_shapes(1, filters, 4, 1, True)
    names = [f"conv2d_{k + 1}" for k in range(len(shapes) // 2)]
    with h5py.File(path, "w") as f:
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [name.encode() for name in names]
        for k, name in enumerate(names):
            layer = weights.create_group(name)
            parts = [f"{name}/kernel:0", f"{name}/bias:0"]
            layer.attrs["weight_names"] = [part.encode() for part in parts]
            for part, shape in zip(parts, shapes[2 * k : 2 * k + 2]):
                layer.create_dataset(part, shape=shape, dtype="f8", chunks=True, fillvalue=0.01)
    return path


def npz_declaring(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose arr_0.npy header declares ``shape`` float32, followed by 64 bytes."""
    npy = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(npy, header)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("arr_0.npy", npy.getvalue() + bytes(64))
    return path


# -- item 4: a folder of huge images -------------------------------------------------------
def test_a_folder_of_huge_pngs_is_refused_from_their_headers(tmp_path):
    # ten pairs of 8192 x 8192 RGBA 16-bit PNGs: 10 MB on disk, 1.3 billion pixels declared
    folder = seed_folder(tmp_path / "huge", 10, *[png(8192, 8192, 16, 6)] * 2)
    assert sum(f.stat().st_size for f in folder.rglob("*.png")) < 12e6
    child = run_capped(f"""
        from numpy_unet.app.cli import main
        sys.exit(main(["train", "--data", {str(folder)!r}, "--size", "32", "--filters", "2",
                       "--depth", "2", "--epochs", "1", "--out", {str(tmp_path / "run")!r}]))
    """)
    error = child.stderr.splitlines()[0]
    assert child.returncode == 2 and child.stderr.count("\n") == 2, child.stderr[-2000:]
    assert str(folder) in error, error
    assert "1,342,177,280 pixels" in error and "1,073,741,824" in error, error
    assert "nothing was decoded" in error and "max_total_pixels" in error, error


def test_images_are_resized_as_they_are_read(tmp_path):
    # twelve pairs of 4096 x 4096 8-bit gray PNGs: 3 MB on disk, 1.5 GB kept as float32 at
    # full size; resized one by one to 32 x 32, only 96 kB are kept
    ramp = (np.arange(4096) % 256).astype(np.uint8).tobytes()
    half = bytes(2048) + b"\xff" * 2048  # the left half membrane, the right half cell
    image, mask = png(4096, 4096, 8, 0, ramp), png(4096, 4096, 8, 0, half)
    folder = seed_folder(tmp_path / "big", 12, image, mask)
    child = run_capped(f"""
        import numpy as np
        from numpy_unet.data import load_folder
        x, y = load_folder({str(folder)!r}, size=32)
        print(x.shape, y.shape, x.dtype)
        # each 128-pixel block holds half the ramp 0..255: 0..127, then 128..255
        print(np.allclose(x[..., 0], np.tile([63.5 / 255, 191.5 / 255], 16)))
        print(np.array_equal(y[..., 0], np.broadcast_to(np.arange(32) >= 16, (12, 32, 32))))
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split("\n")[:3] == [
        "(12, 32, 32, 1) (12, 32, 32, 1) float32",
        "True",
        "True",
    ]


def test_the_budget_counts_every_file_and_every_tiff_page(tmp_path):
    row = (np.arange(30) * 8).astype(np.uint8).tobytes()
    seed_folder(tmp_path / "pngs", 3, png(30, 20, 8, 0, row), png(30, 20, 8, 0, b"\xff" * 30))
    with pytest.raises(ValueError) as err:  # 6 files of 600 pixels
        load_folder(tmp_path / "pngs", size=8, max_total_pixels=3599)
    message = str(err.value)
    assert "the 6 image and mask files of" in message and "declare 3,600 pixels" in message
    assert str(tmp_path / "pngs") in message and "\n" not in message
    assert load_folder(tmp_path / "pngs", size=8, max_total_pixels=3600)[0].shape == (3, 8, 8, 1)
    first = load_folder(tmp_path / "pngs", size=8, max_images=1, max_total_pixels=1200)
    assert first[1].shape == (1, 8, 8, 1)

    stacks = tmp_path / "stacks"
    stacks.mkdir()
    write_tiff_stack(stacks / "train-volume.tif", np.zeros((5, 16, 16), np.uint8))
    write_tiff_stack(stacks / "train-labels.tif", np.full((5, 16, 16), 255, np.uint8))
    with pytest.raises(ValueError, match=r"declare 2,560 pixels in all \(the largest, "):
        load_folder(stacks, size=8, max_total_pixels=2559)
    assert load_folder(stacks, size=8, max_total_pixels=2560)[1].shape == (5, 8, 8, 1)


def test_by_default_the_budget_holds_an_image_and_its_mask_at_max_pixels(tmp_path):
    # headers alone, claiming 30000 x 30000 (0.9 billion pixels each, 1.8 in all)
    header = png(1, 1, 8, 0)[:33].replace(
        struct.pack(">II", 1, 1), struct.pack(">II", 30000, 30000)
    )
    seed_folder(tmp_path / "d", 1, header, header)
    with pytest.raises(ValueError, match="declare 1,800,000,000 pixels in all"):
        load_folder(tmp_path / "d")  # the budget: MAX_TOTAL_PIXELS, 2**30
    with pytest.raises(ValueError, match="cannot read .* as an image"):  # past the budget
        with pytest.MonkeyPatch.context() as patch:  # a machine where the decode would fit
            patch.setattr(loading, "_machine_memory", lambda: 2**40)
            load_folder(tmp_path / "d", max_pixels=10**9)  # the budget: 2 x 10**9


def test_an_8192_pixel_rgba16_image_and_mask_load_in_under_1_gb(tmp_path):
    # matplotlib's float32 RGBA alone is 1 GiB at this size, and the gray made from it in
    # float64 1.5 GiB more (3.1 GB peak); decoded by Pillow and made gray a band of rows at a
    # time, the image, then its mask, each stays a few hundred MB
    x = np.arange(8192, dtype=">u2")
    colour = np.stack([x * 7, x * 3, x * 5, x], -1).tobytes()  # channels differ: luminance
    half = np.repeat(np.where(x >= 4096, 65535, 0).astype(">u2"), 4).tobytes()  # gray RGBA
    folder = seed_folder(
        tmp_path / "big", 1, png(8192, 8192, 16, 6, colour), png(8192, 8192, 16, 6, half)
    )
    child = run_capped(f"""
        import numpy as np
        from numpy_unet.data import load_folder
        x, y = load_folder({str(folder)!r}, size=64)
        right_half = np.broadcast_to(np.arange(64) >= 32, (64, 64))
        print(x.shape, x.dtype, float(x.min()) > 0, np.array_equal(y[0, :, :, 0], right_half))
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "(1, 64, 64, 1) float32 True True"
    peak_kb = int(child.stderr.split()[-1])
    assert peak_kb * 1024 < 1_000_000_000, peak_kb


def test_an_image_too_large_for_the_memory_left_is_one_line_naming_it(tmp_path):
    # one 8192 x 8192 RGBA 16-bit PNG, which Pillow decodes into 256 MiB, in a child allowed
    # only a little more than Python, NumPy and matplotlib take
    path = tmp_path / "rgba.png"
    path.write_bytes(png(8192, 8192, 16, 6))
    error = api_error(
        f"""
        from numpy_unet.data import read_image
        read_image({str(path)!r})
    """,
        limit=600_000_000,
    )
    assert error == (
        f"read_image: decoding {path} (8192x8192 pixels) ran out of memory; shrink the file, "
        "or lower max_pixels (--max-pixels) to refuse such files before decoding"
    )


# -- item 5: .keras zip bombs ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("member", "mib", "budget"),
    [
        ("model.weights.h5", 2864, "the budget of 375,000,000 bytes"),  # a quarter of LIMIT
        ("config.json", 1536, "the 4,194,304 bytes a model config may take"),
    ],
)
def test_a_keras_zip_bomb_is_refused_from_its_zip_directory(tmp_path, member, mib, budget):
    pytest.importorskip("h5py")
    path = keras_bomb(tmp_path / "bomb.keras", member, mib)
    assert path.stat().st_size < 4e6
    for call in ("load_model", "UNet.from_keras"):
        error = api_error(f"""
            from numpy_unet import UNet, load_model
            {call}({str(path)!r})
        """)
        assert str(path) in error and f"its {member} inflates to {mib * 2**20:,} bytes" in error
        assert budget in error and "nothing was inflated" in error, error


def test_a_keras_weights_member_that_is_not_hdf5_is_refused_after_8_bytes(tmp_path):
    """Under the budget, model.weights.h5 is inflated in chunks into a temporary file, and
    one that does not start as HDF5 files do is refused before the rest is inflated."""
    pytest.importorskip("h5py")
    path = keras_bomb(tmp_path / "zeros.keras", "model.weights.h5", 160)  # 160 MiB of zeros
    error = api_error(f"""
        from numpy_unet import load_model
        load_model({str(path)!r})
    """)
    assert str(path) in error and "model.weights.h5 is not an HDF5 file" in error, error


# -- item 6: weights files declaring gigabytes -----------------------------------------------
def test_a_legacy_h5_of_fill_values_is_refused_from_its_shapes(tmp_path):
    path = fill_value_h5(tmp_path / "fill.h5", filters=320)  # 776 million float64 parameters
    assert path.stat().st_size < 200e3
    error = api_error(f"""
        from numpy_unet import load_model
        load_model({str(path)!r})
    """)
    assert str(path) in error and "its weights declare 6,204,963,880 bytes" in error, error
    assert "more than the budget of 375,000,000 bytes" in error, error
    assert "the largest array, conv2d_" in error and "float64" in error, error


def test_an_npz_declaring_a_huge_array_is_refused_from_its_header(tmp_path):
    path = npz_declaring(tmp_path / "huge.npz", (3, 3, 1, 400_000_000))
    error = api_error(f"""
        from numpy_unet import load_model
        load_model({str(path)!r})
    """)
    assert str(path) in error and "14,400,000,000 bytes" in error, error
    assert "arr_0" in error and "(3, 3, 1, 400000000)" in error and "float32" in error, error


def test_an_npz_member_that_np_load_reads_whole_is_counted_by_its_size(tmp_path):
    stream, crc = deflated_zeros(1536)  # 1.6 GB of zeros, which np.load would give as bytes
    path = write_zip(tmp_path / "notes.npz", [("notes.txt", stream, 8, 1536 * 2**20, crc)])
    error = api_error(f"""
        from numpy_unet import load_model
        load_model({str(path)!r})
    """)
    assert str(path) in error and "the largest array, notes.txt, has shape (1610612736,)" in error


def test_a_checkpoint_whose_arrays_exceed_the_budget_is_refused_from_its_headers(tmp_path):
    # a real array of 600 MB of zeros (1 MB on disk): np.load would read it whole; the budget
    # for weights (a quarter of the child's 1.5 GB) refuses it from its header
    npy = io.BytesIO()
    shape = (150 * 2**20,)
    np.lib.format.write_array_header_1_0(
        npy, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    header = npy.getvalue()
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = z.compress(header) + z.flush(zlib.Z_FULL_FLUSH)
    block = z.compress(bytes(2**20)) + z.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(600):
        crc = zlib.crc32(bytes(2**20), crc)
    member = start + block * 600 + z.flush()
    path = write_zip(
        tmp_path / "checkpoint.npz",
        [("optimizer:m:000.npy", member, 8, len(header) + 600 * 2**20, crc)],
    )
    child = run_capped(f"""
        from numpy_unet.train.checkpoint import read_checkpoint
        try:
            read_checkpoint({str(path)!r})
        except ValueError as err:
            print(err)
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.startswith(f"resume: {path} cannot be read: its arrays (weights and ")
    assert "629,145,600 bytes" in child.stdout and "optimizer:m:000" in child.stdout
    assert int(child.stderr.split()[-1]) * 1024 < 300e6  # the array was never read


def test_the_weights_budget_is_the_smaller_of_4_gb_and_a_quarter_of_memory():
    budget, why = keras_files.weights_budget()
    assert budget == min(4 * keras_files.MAX_PARAMS, keras_files.memory_limit() // 4)
    assert why


def test_predict_refuses_a_huge_npz_in_one_line(tmp_path):
    path = npz_declaring(tmp_path / "huge.npz", (3, 3, 1, 400_000_000))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(png(16, 16, 8, 0))
    child = run_capped(f"""
        from numpy_unet.app.cli import main
        sys.exit(main(["predict", "--weights", {str(path)!r}, {str(tmp_path / "in")!r},
                       "--out", {str(tmp_path / "out")!r}]))
    """)
    assert child.returncode == 2, child.stderr[-2000:]
    error = child.stderr.splitlines()[0]
    assert str(path) in error and "arr_0" in error and child.stderr.count("\n") == 2, error


@pytest.mark.slow
def test_predict_of_an_8192_pixel_rgba16_image_stays_under_1_gb(tmp_path):
    # item 7: read a band at a time, predicted in automatic tiles, written a band at a time
    # (before: 3.1 GB reading it, 1.4 GB once reading was banded)
    x = np.arange(8192, dtype=">u2")
    (tmp_path / "in").mkdir()
    colour = np.stack([x * 7, x * 3, x * 5, x], -1).tobytes()
    (tmp_path / "in" / "big.png").write_bytes(png(8192, 8192, 16, 6, colour))
    from numpy_unet import UNet

    UNet(input_shape=(64, 64, 1), filters=4, depth=2).save_weights(tmp_path / "small.npz")
    child = run_capped(f"""
        from numpy_unet.app.cli import main
        sys.exit(main(["predict", "--weights", {str(tmp_path / "small.npz")!r},
                       {str(tmp_path / "in")!r}, "--out", {str(tmp_path / "out")!r}]))
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "predicting it in tiles of" in child.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big_mask.png", "big_prob.png"]
    assert int(child.stderr.split()[-1]) * 1024 < 1e9

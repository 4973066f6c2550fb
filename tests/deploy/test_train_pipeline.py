"""`vitsearch train` on on-disk data: timm's training transform, a DataLoader with workers, precision."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vitsearch.evaluators.data import Augment, load_dataset
from vitsearch.search.train import TrainJob, TrainRecipe, train


@pytest.fixture()
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((200, 30, 30), (30, 30, 200))):
        folder = tmp_path / "imgs" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path / "imgs"


def test_folder_training_split_is_augmented_and_val_is_not(image_folder):
    split = load_dataset(f"folder:{image_folder}", img_size=32, augment=Augment())
    train_tf = repr(split.train.dataset.transform)
    val_tf = repr(split.val.dataset.transform)
    assert "RandomResizedCrop" in train_tf and "RandAugment" in train_tf and "RandomErasing" in train_tf
    assert "RandomResizedCrop" not in val_tf and "CenterCrop" in val_tf
    plain = load_dataset(f"folder:{image_folder}", img_size=32)
    assert "RandomResizedCrop" not in repr(plain.train.dataset.transform)
    assert split.train[0][0].shape == (3, 32, 32)


def test_train_on_a_folder_with_workers_and_bf16(image_folder, tmp_path):
    recipe = TrainRecipe(epochs=1, batch_size=8, warmup_epochs=0, ema_decay=None, seed=0)
    job = TrainJob(
        arch="test_vit",
        out=tmp_path / "run",
        data=f"folder:{image_folder}",
        img_size=32,
        recipe=recipe,
        device="cpu",
        amp="bf16",
        workers=2,
    )
    report = train(job)
    assert report["device"] == "cpu" and report["amp"] == "bf16"
    assert report["recipe"]["augment"] is True and report["recipe"]["auto_augment"] == "rand-m9-mstd0.5"
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert 0.0 <= saved["val_acc"] <= 1.0

"""vitsearch.search.reference_train: the reference recipe through vitsearch.search.train, field by field."""

from __future__ import annotations

import pytest

from vitsearch.evaluators.reference import ReferenceEvaluator, curve
from vitsearch.search.reference_train import DISTILL, ReferenceTrainer
from vitsearch.space.presets import vit


def test_the_trainer_matches_the_reference_recipe():
    """One batch per epoch, so the data order cannot matter: the same per-epoch accuracies and losses.

    (A warm-up from another learning rate, or no label smoothing, moves the last loss by 4e-3 or more.)
    """
    ref = ReferenceEvaluator(
        "synthetic", device="cpu", epochs=6, train_subset=128, val_subset=64, batch_size=128, lr=1e-2
    )
    arch = vit(64, 2, 2)
    want = ref.evaluate(arch)
    got = ReferenceTrainer(ref).evaluate(arch)
    assert curve(got) == pytest.approx(curve(want), abs=1e-6) and len(curve(got)) == 6 and curve(got)[-1] > 0.25
    assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
    assert got["params"] == want["params"] and got["proxy_patch_size"] == want["proxy_patch_size"]
    p, recipe = ref.profile, ReferenceTrainer(ref).recipe()
    for name in ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "min_lr", "label_smoothing"):
        assert getattr(recipe, name) == getattr(p, name), name
    assert (recipe.grad_clip, recipe.train_subset, recipe.val_subset, recipe.seed) == (p.grad_clip, 128, 64, p.seed)
    assert (recipe.mixup, recipe.cutmix, recipe.ema_decay, recipe.augment) == (0.0, 0.0, None, False)
    with pytest.raises(ValueError, match="uncapped"):
        ReferenceTrainer(ReferenceEvaluator("synthetic", max_seconds=10.0))


def test_settings_name_the_trainer_and_with_a_teacher_the_distillation(tmp_path):
    ref = ReferenceEvaluator("synthetic", device="cpu", epochs=1)
    plain = ReferenceTrainer(ref)
    assert plain.settings() == {**ref.settings(), "trainer": "vitsearch.search.train"}
    assert plain.recipe().distill_weight == 0.0
    taught = ReferenceTrainer(ref, tmp_path / "model.safetensors", "teacher-key")
    assert taught.settings()["teacher"] == "teacher-key" and taught.settings()["distill"] == DISTILL
    assert taught.recipe().distill_weight == DISTILL["distill_weight"]
    assert plain.cache_key(vit(64, 2, 2)) != taught.cache_key(vit(64, 2, 2))

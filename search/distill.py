"""Distillation losses of ``vitsearch train``: soft distillation from a teacher and RIFormer's module imitation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitsearch.evaluators.training.fit import FitState, Hook
from vitsearch.space import ArchConfig, ConfigError


def soft_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the batch (Hinton et al.)."""
    t = temperature
    log_s, log_t = F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1)
    return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * t * t


def _relation(x: torch.Tensor) -> torch.Tensor:
    x = F.normalize(x, dim=-1)
    return x @ x.transpose(-2, -1)  # (B, N, N) cosine similarity between tokens


class MixerTaps:
    """Forward hooks on every block's token mixer, keeping its input and output of the last forward."""

    def __init__(self, model: nn.Module):
        from vitsearch.space.layers import Block

        self.records: list[tuple[torch.Tensor, torch.Tensor]] = []
        blocks = [m for m in model.modules() if isinstance(m, Block)]
        self.handles = [b.mixer.register_forward_hook(self._hook) for b in blocks]
        self.count = len(blocks)

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.records.append((inputs[0], output))

    def take(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        records, self.records = self.records, []
        return records


def imitation_loss(student: list, teacher: list) -> torch.Tensor:
    """RIFormer-style module imitation over paired blocks: MSE of mixer inputs, outputs, relations."""
    total = torch.zeros(())
    for (s_in, s_out), (t_in, t_out) in zip(student, teacher, strict=True):
        total = total + F.mse_loss(s_in, t_in) + F.mse_loss(s_out, t_out)
        total = total + F.mse_loss(_relation(s_out), _relation(t_out))
    return total / max(len(student), 1)


def check_imitation_pairs(student: ArchConfig, teacher: ArchConfig) -> None:
    """Module imitation pairs blocks one to one: same stages, depths and widths."""
    s_shape = [(s.depth, s.width) for s in student.stages]
    t_shape = [(s.depth, s.width) for s in teacher.stages]
    if s_shape != t_shape:
        raise ConfigError(
            "--imitation-weight",
            f"student stages (depth, width) {s_shape} differ from the teacher's {t_shape}: blocks cannot be paired",
        )


class Distillation(Hook):
    """``train``'s distillation as a loop hook: ``(1 - a) * loss + a * soft KD``, plus module imitation.

    Args:
        student: the trained model (its mixers are tapped when ``imitation_weight > 0``).
        teacher: the frozen teacher, in eval mode, on the run's device.
        weight, temperature: ``a`` and ``T`` of the soft distillation.
        imitation_weight: weight of RIFormer's module imitation; 0 = none.
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module, weight: float, temperature: float, imitation_weight: float = 0.0
    ):
        self.teacher, self.weight, self.temperature = teacher, weight, temperature
        self.imitation_weight = imitation_weight
        self.taps = (MixerTaps(student), MixerTaps(teacher)) if imitation_weight > 0 else None

    def batch(self, state: FitState, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for taps in self.taps or ():  # drop what validation forwards left behind
            taps.take()
        return x, target

    def loss(self, state: FitState, x: torch.Tensor, output, loss: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t_logits = self.teacher(x)
        kd = soft_distillation(output.float(), t_logits.float(), self.temperature)
        loss = (1 - self.weight) * loss + self.weight * kd
        if self.taps is not None:
            student, teacher = self.taps
            loss = loss + self.imitation_weight * imitation_loss(student.take(), teacher.take())
        return loss

    def close(self) -> None:
        """Remove the forward hooks from both models."""
        for taps in self.taps or ():
            for handle in taps.handles:
                handle.remove()

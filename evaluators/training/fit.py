"""The one epoch loop of every training path: the proxy, ``vitsearch train`` and the supernet.

``fit`` owns what the three loops had in common: epochs of batches, one ``Engine.update`` per
batch with the loss ``criterion(net(x), target)``, the epoch's running loss, the epoch-level
schedule step, resuming mid-epoch, and stopping early. What differs between them is a ``Hook``:

- ``batch``: change the batch before the forward (mixup and cutmix; the sandwich rule picks
  the step's paths here);
- ``loss``: change the loss after the forward, inside the run's autocast (distillation and
  module imitation);
- ``step_end`` / ``epoch_end``: progress, validation, checkpoints, pruning, and ``state.stop``
  to end the run after this step (a wall-clock cap, Ctrl-C, ``max_steps``);
- ``stopped``: once, when the run ends early (the proxy scores its capped partial epoch).

A stop asked for on an epoch's last step still finishes that epoch (its schedule step and
``epoch_end`` hooks) before ``stopped``; hooks see ``state.stop`` there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import torch

from .engine import Engine

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class FitState:
    """Where a run is; hooks read it and set ``stop``.

    ``step`` counts updates over the whole run (a resumed run starts at its checkpoint's),
    ``within`` this epoch's; ``loss_sum`` / ``loss_n`` are this epoch's training losses
    (a run resumed mid-epoch passes in the part it had).
    """

    epochs: int
    steps_per_epoch: int
    step: int = 0
    loss_sum: float = 0.0
    loss_n: int = 0
    stop: bool = False

    @property
    def epoch(self) -> int:
        """The epoch the next update belongs to (0-based; ``epochs`` when done)."""
        return self.step // self.steps_per_epoch

    @property
    def within(self) -> int:
        """Updates already taken in the current epoch."""
        return self.step % self.steps_per_epoch

    @property
    def epoch_loss(self) -> float:
        """Mean training loss of the current (or just finished) epoch."""
        return self.loss_sum / max(self.loss_n, 1)

    @property
    def epochs_done(self) -> float:
        """Epochs trained, fractional when stopped mid-epoch."""
        return self.step / self.steps_per_epoch

    def where(self) -> str:
        """The next update's place, for error messages ("epoch 2 step 5")."""
        return f"epoch {self.epoch + 1} step {self.within + 1}"


class Hook:
    """One path's part of the loop; every method defaults to doing nothing."""

    def epoch_start(self, state: FitState) -> None:
        """Before the first batch of an epoch (also of an epoch resumed mid-way)."""

    def batch(self, state: FitState, x: torch.Tensor, target: torch.Tensor) -> Batch:
        """The batch the forward sees: ``(x, target)``, changed or not."""
        return x, target

    def loss(self, state: FitState, x: torch.Tensor, output, loss: torch.Tensor) -> torch.Tensor:
        """The loss of the update, given the forward's input and output (inside autocast)."""
        return loss

    def step_end(self, state: FitState, loss: float) -> None:
        """After an update (``state.step`` counts it); set ``state.stop`` to end the run."""

    def epoch_end(self, state: FitState) -> None:
        """After an epoch's last update and the schedule's epoch step."""

    def stopped(self, state: FitState) -> None:
        """Once, when a hook's ``stop`` ended the run before its last epoch was done."""


def fit(
    engine: Engine,
    net: Callable[[torch.Tensor], object],
    criterion: Callable[[object, torch.Tensor], torch.Tensor],
    batches: Callable[[int], Iterable[Batch]],
    state: FitState,
    hooks: Sequence[Hook] = (),
) -> FitState:
    """Train from ``state.step`` to the end of ``state.epochs`` (or a hook's stop); returns ``state``.

    Args:
        engine: the update step (its ``model`` is put in train mode at every epoch start).
        net: the forward (the compiled model, or the model itself).
        criterion: ``criterion(net(x), target)`` is the loss before the ``loss`` hooks.
        batches: ``batches(epoch)`` yields that epoch's ``(x, target)`` in order, on the
            device; called once per epoch after the ``epoch_start`` hooks, and a run resumed
            mid-epoch skips the batches it has trained on.
        state: where to start; it is updated in place, so a caller that catches an error
            (``DivergedError``) still knows where the run was.
        hooks: called in order at each point of the loop.
    """
    while state.epoch < state.epochs and not state.stop:
        epoch = state.epoch
        if state.within == 0:
            state.loss_sum, state.loss_n = 0.0, 0
        for hook in hooks:
            hook.epoch_start(state)
        engine.model.train()
        first = state.step
        for x, target in islice(batches(epoch), state.within, None):
            for hook in hooks:
                x, target = hook.batch(state, x, target)

            def loss_fn(x=x, target=target) -> torch.Tensor:
                output = net(x)
                loss = criterion(output, target)
                for hook in hooks:
                    loss = hook.loss(state, x, output, loss)
                return loss

            value = engine.update(loss_fn, state.where())
            state.step += 1
            state.loss_sum, state.loss_n = state.loss_sum + value, state.loss_n + 1
            for hook in hooks:
                hook.step_end(state, value)
            if state.within == 0 or state.stop:
                break
        if state.step == first or (state.within and not state.stop):  # a short epoch would never end
            raise RuntimeError(f"batches({epoch}) ended after {state.within} of {state.steps_per_epoch} steps")
        if state.within == 0:  # the epoch's last update was taken
            engine.end_epoch(epoch + 1)
            for hook in hooks:
                hook.epoch_end(state)
    if state.stop:
        for hook in hooks:
            hook.stopped(state)
    return state

"""A stratified start: the first draws of a random search placed across the budget's FLOPs range.

Uniform draws from the budget-fitted space put about 38% of the architectures within budget in
[B/2, B] but only about 3.5% in [0.9 B, B], so 40 draws miss the top tenth of the budget about
one run in four (a 4.6 GFLOPs run's largest was 0.76 B). The largest models are the ones a
short training under-rates and the rungs exist to judge, so the search should always hold some.

``stratified_start`` draws, offline and cheaply (analytic FLOPs, no training, no storage), one
architecture near each fraction of ``STRATA`` of the budget, the last in [0.9 B, B]; the driver
enqueues their choices as the study's first trials (``study.enqueue_trial``), so the span
[B/10, 0.9 B] is always covered. The rest of the trials are the sampler's own.
"""

from __future__ import annotations

import optuna

from vitsearch.space.analytic import analytic_flops
from vitsearch.space.search_space import SearchSpace

STRATA = (0.1, 0.15, 0.22, 0.33, 0.5, 0.7, 0.95)  # fractions of the budget, about log-spaced
TOLERANCE = 0.1  # an architecture within 10% of its target (and within budget) fills the stratum
DRAWS_PER_STRATUM = 400  # uniform draws tried per stratum; a stratum the space cannot fill is skipped


def stratified_start(
    space: SearchSpace, budget: int, seed: int | None = 0, img_size: int = 224, num_classes: int = 1000
) -> list[dict]:
    """The sampled choices (``trial.params``) of one architecture per stratum of the budget that the space fills."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: list[dict] = []
    for fraction in STRATA:
        low = max(fraction * (1 - TOLERANCE), 0.0) * budget
        high = min(fraction * (1 + TOLERANCE), 1.0) * budget
        if fraction == STRATA[-1]:
            low, high = (1 - TOLERANCE) * budget, budget  # the top stratum: within 10% of the budget
        for _ in range(DRAWS_PER_STRATUM):
            trial = study.ask()
            flops = analytic_flops(space.sample(trial), img_size, num_classes=num_classes)
            study.tell(trial, 0.0)
            if low <= flops <= high:
                found.append(dict(trial.params))
                break
    return found

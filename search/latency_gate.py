"""The latency cap and objective of a search: measured once per architecture, on this machine,
or summed from a per-part table (``--latency-method table``, ``evaluators.latency_table``)."""

from __future__ import annotations

import optuna

from vitsearch.evaluators import latency as timing
from vitsearch.evaluators.latency_table import LatencyTable, default_table_path
from vitsearch.space import ArchConfig, ConfigError

from .plan import SearchConfig, sample_under_budget


class LatencyGate:
    """Latency of candidates that passed the FLOPs and params checks, measured once per architecture.

    Measured on the machine running the search, at the target profile, in the deployed form
    (``timing.arch_latency_ms``). The cache is keyed by architecture digest and filled from the
    study's earlier trials measured with the same settings, so a resumed study or a resampled
    architecture costs no second measurement.
    """

    CALIBRATION_ARCHS = 5  # timed whole once per table, to set its level (LatencyTable.calibrate)

    def __init__(self, config: SearchConfig, study: optuna.Study):
        self.config = config
        self.settings = config.latency.to_dict()
        self.table = self._table() if config.latency.method == "table" else None
        self.cache: dict[str, float] = {}
        for t in study.get_trials(deepcopy=False):
            record = t.user_attrs.get("record", {})
            if record.get("latency_ms") is not None and record.get("latency_settings") == self.settings:
                self.cache[record["digest"]] = float(record["latency_ms"])

    def measure(self, arch: ArchConfig) -> float:
        digest = arch.digest()
        if digest not in self.cache:
            c = self.config
            if self.table is not None:
                self.cache[digest] = self.table.predict_ms(arch)
            else:
                self.cache[digest] = timing.arch_latency_ms(arch, c.img_size, c.in_chans, c.num_classes, c.latency)
        return self.cache[digest]

    def _table(self) -> LatencyTable:
        """This machine's table for these settings; a fresh one is calibrated on a few seeded draws in budget."""
        c = self.config
        path = default_table_path(c.latency, c.img_size, c.in_chans, c.num_classes)
        table = LatencyTable(c.latency, c.img_size, c.in_chans, c.num_classes, path=path)
        if not table.entries:
            try:
                archs = sample_under_budget(c.space, c.budget, self.CALIBRATION_ARCHS, 0, c.img_size, c.num_classes)
            except ConfigError:  # a budget few draws meet: the space's smallest, which meets any valid one
                archs = [c.space.smallest(c.img_size, c.num_classes)]
            table.calibrate(archs)
        return table

    def apply(self, arch: ArchConfig, over: list[float]) -> float | None:
        """Measure when ``over`` (FLOPs, params) is feasible; append the latency constraint to it."""
        if max(over) > 0:
            return None  # never built: the cheap checks already rejected it
        latency = self.measure(arch)
        if self.config.max_latency_ms is not None:
            over.append((latency - self.config.max_latency_ms) / self.config.max_latency_ms)
        return latency

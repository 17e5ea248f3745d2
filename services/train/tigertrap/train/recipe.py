"""The training recipe as data: which epochs run in which phase, and the loss, optimiser and
learning-rate schedule of each phase (mewc-train's ``configure_optimizer_and_loss`` and
``fit_progressive``; TeraiNet's frozen-backbone fit).

An epoch belongs to the ``frozen`` phase (backbone frozen, no augmentation, dropout of the first
stage) or to one ``progressive`` stage (last ``BUF`` blocks unfrozen, the stage's RandAugment
magnitude and dropout). mewc-train starts a new optimiser when the backbone is unfrozen; the
progressive stages share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tigertrap.train.config import TrainSettings

if TYPE_CHECKING:
    import keras

__all__ = ["EpochPlan", "make_loss", "make_optimizer", "plan_epochs"]

#: mewc-train: the learning rate decays to this fraction of its initial value.
MIN_LR_FRACTION = 1 / 5
#: mewc-train's cosine restarts: period growth and restart height.
COSINE_T_MUL, COSINE_M_MUL = 1.3, 3 / 4
#: mewc-train's Lion: a fifth of AdamW's rate, five times its weight decay.
LION_FACTOR = 5


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch trains and how."""

    epoch: int
    phase: str  # "frozen" or "progressive"
    stage: int
    magnitude: float
    dropout: float

    @property
    def setup(self) -> tuple[str, int]:
        """Epochs with the same setup share a compiled model."""
        return self.phase, self.stage


def plan_epochs(settings: TrainSettings) -> list[EpochPlan]:
    """Every epoch of the run in order (``settings`` with the recipe applied)."""
    magnitudes, dropouts = settings.magnitudes or [0.0], settings.dropouts or [0.0]
    plans = [EpochPlan(epoch, "frozen", 0, 0.0, dropouts[0])
             for epoch in range(settings.froz_epoch or 0)]
    stage_len, total = settings.prog_stage_len or 0, settings.prog_tot_epoch or 0
    if total == 0:
        return plans
    stages = len(magnitudes)
    total = max(total, stages * stage_len)
    for index in range(total):
        stage = min(index // stage_len, stages - 1) if stage_len else stages - 1
        plans.append(EpochPlan(len(plans), "progressive", stage, magnitudes[stage],
                               dropouts[stage]))
    return plans


def make_loss(settings: TrainSettings) -> keras.losses.Loss:
    """Focal cross-entropy (mewc) or cross-entropy (terainet), with label smoothing if set."""
    from keras import losses

    smoothing = settings.label_smoothing or 0.0
    if settings.loss == "focal":
        return losses.CategoricalFocalCrossentropy(label_smoothing=smoothing)
    return losses.CategoricalCrossentropy(label_smoothing=smoothing)


def _schedule(settings: TrainSettings, steps_per_epoch: int, lr: float) -> Any:
    from keras import optimizers

    decay_steps = max(1, int((settings.prog_stage_len or 1) * steps_per_epoch))
    if settings.lr_scheduler == "plateau":
        return lr
    if settings.lr_scheduler == "polynomial":
        return optimizers.schedules.PolynomialDecay(
            initial_learning_rate=lr, decay_steps=decay_steps * 2,
            end_learning_rate=lr * MIN_LR_FRACTION, power=1.0, cycle=True)
    if settings.lr_scheduler == "cosine":
        return optimizers.schedules.CosineDecayRestarts(
            initial_learning_rate=lr, first_decay_steps=decay_steps, t_mul=COSINE_T_MUL,
            m_mul=COSINE_M_MUL, alpha=MIN_LR_FRACTION)
    total_epochs = max(1, (settings.prog_tot_epoch or 0) or (settings.froz_epoch or 1))
    return optimizers.schedules.ExponentialDecay(
        initial_learning_rate=lr, decay_steps=max(1, total_epochs * steps_per_epoch),
        decay_rate=MIN_LR_FRACTION, staircase=False)


def make_optimizer(settings: TrainSettings, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """AdamW with amsgrad (default), centred RMSprop or Lion, on the configured schedule."""
    from keras import optimizers

    lr, decay = settings.learning_rate, settings.optim_reg
    if settings.optimizer == "lion":
        return optimizers.Lion(learning_rate=_schedule(settings, steps_per_epoch,
                                                       lr / LION_FACTOR),
                               weight_decay=decay * LION_FACTOR)
    schedule = _schedule(settings, steps_per_epoch, lr)
    if settings.optimizer == "rmsprop":
        return optimizers.RMSprop(learning_rate=schedule, rho=0.9, centered=True,
                                  weight_decay=decay or None)
    return optimizers.AdamW(learning_rate=schedule, amsgrad=True, weight_decay=decay)

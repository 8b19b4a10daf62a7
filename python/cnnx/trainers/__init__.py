"""Training: the trainer mixed into every model (compile, fit, evaluate,
predict, train_on_batch), the epoch loop, and how outputs meet their losses."""

from .trainer import Trainer, plans_enabled

__all__ = ["Trainer", "plans_enabled"]

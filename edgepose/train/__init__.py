"""``edgepose-train``: config, trainer, DDP, checkpoints, schedules and the Method extension point.

Public API::

    from edgepose.train import load_train_config, Trainer, Method, register_method
    cfg = load_train_config("configs/baseline-6d.yaml", ["epochs=5"])
    result = Trainer(cfg).fit()          # -> last epoch's metrics + checkpoint paths

Heavy modules (torch) are imported only when a trainer is built.
"""
from .config import TrainConfig, load_train_config  # noqa: F401
from ..methods.method import Method, SupervisedMethod, get_method, list_methods, register_method  # noqa: F401


def __getattr__(name):  # lazy: importing the config does not import torch
    if name in ("Trainer", "train", "seed_everything"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(name)


__all__ = ["TrainConfig", "load_train_config", "Trainer", "train", "Method", "SupervisedMethod",
           "register_method", "get_method", "list_methods", "seed_everything"]

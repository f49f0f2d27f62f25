"""The ``Method`` extension point: what a training run builds and how one batch becomes a loss.

The engine (:mod:`edgepose.train.engine`) owns everything generic (devices, DDP, AMP, optimiser,
schedule, EMA, checkpoints, logs, validation).  A method -- the objective -- owns what differs between
recipes: teacher methods (supervised, LDL, CLERF, PCL, HMTL), distillation
(:class:`edgepose.distill.objective.DistillObjective`), the default-model build and QAT are all methods:

* :meth:`Method.build` -- the trainable module (a :class:`PoseModel`, or a wrapper that adds
  projection heads / decoders around one);
* :meth:`Method.training_step` -- one batch -> ``(loss, logs)``;
* :meth:`Method.pose_model` -- the deployable :class:`PoseModel` inside the trainable module,
  which is what checkpoints, validation and export see;
* optional hooks: :meth:`wrap_dataset`, :meth:`param_groups`, :meth:`on_epoch_start`, :meth:`train_mode`,
  :meth:`state_dict` /
  :meth:`load_state_dict` for method state that is not in a module (loss histories, queues).

Teacher methods (CLERF, PCL, HMTL, LDL) register themselves with :func:`register_method`;
``method.name: clerf`` in a config finds ``edgepose.methods.clerf`` automatically, and
``method.name: my_pkg.my_module:MyMethod`` loads a method from any importable module.

DDP note: the trainer wraps the module returned by :meth:`build` in DistributedDataParallel
and passes the wrapper to :meth:`training_step`; call ``model(...)`` (not ``model.module...``)
for everything that needs gradients so that DDP synchronises them, in ONE call per step (teacher methods
pass their whole step through ``TeacherModule.forward(batch, step=...)``, :mod:`edgepose.methods.base`).
"""
from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any, Callable

from ..config import ConfigError, from_dict
from ..registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from ..preprocess import PreprocessSpec

__all__ = ["Method", "SupervisedMethod", "register_method", "get_method", "list_methods"]

#: method name -> Method subclass; a miss imports ``edgepose.methods.<name>`` (its decorator registers it)
METHODS: Registry[type["Method"]] = Registry(
    "training method", error=ConfigError, hint="(or give module:Class)",
    module_of=lambda name: f"edgepose.methods.{name}")


def register_method(name: str):
    """Class decorator: make a Method available as ``method.name: <name>`` in configs."""

    def deco(cls):
        METHODS.add(name, cls)
        cls.name = name
        return cls

    return deco


def list_methods() -> list[str]:
    return METHODS.names()


def get_method(name: str) -> type["Method"]:
    """Registered name, ``edgepose.methods.<name>`` (imported on demand) or ``module:Class``."""
    if ":" in name and name not in METHODS:
        mod_name, cls_name = name.split(":", 1)
        try:
            return getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"method.name {name!r}: cannot load {cls_name} from {mod_name} ({exc})") from None
    return METHODS.get(name)


class Method:
    """Base class; the default behaviour is plain supervised pose regression."""

    name = "base"
    #: DDP must look for parameters without a gradient in a step (``find_unused_parameters``): True for methods
    #: whose module has parts idle in some steps (a pre-training head during the pose stage, a pose head or a
    #: frozen encoder during pre-training / a probe). The engine ORs it with the config's ``ddp_find_unused``.
    ddp_find_unused: bool = False

    def __init__(self, cfg: Any, options: dict | None = None):
        self.cfg = cfg
        self.options = dict(options or {})
        #: set by the trainer: a context manager factory for mixed precision (no-op without AMP)
        self.autocast: Callable[[], Any] = contextlib.nullcontext
        #: set by the trainer: torch.device the batches live on
        self.device = None

    # -- building -------------------------------------------------------------------------
    def build(self, model_cfg: Any, spec: "PreprocessSpec") -> "nn.Module":
        """The trainable module.  Default: ``create_model`` from the model section."""
        from .model_setup import build_pose_model

        return build_pose_model(model_cfg, spec)

    def pose_model(self, module: "nn.Module") -> "nn.Module":
        """The deployable PoseModel inside ``module`` (checkpoints, validation and export use it)."""
        module = getattr(module, "module", module)  # DDP wrapper
        return getattr(module, "pose_model", module)

    def param_groups(self, module: "nn.Module") -> list[dict]:
        """Optimiser parameter groups; override for per-part learning rates (``lr_scale`` key)."""
        return [{"params": [p for p in module.parameters() if p.requires_grad]}]

    # -- per batch ------------------------------------------------------------------------
    def training_step(self, batch: dict, model: "nn.Module") -> tuple["torch.Tensor", dict[str, float]]:
        raise NotImplementedError

    @staticmethod
    def float_outputs(out: dict) -> dict:
        """Cast model outputs to float32 so losses (acos, Gram-Schmidt) never run in half precision."""
        def cast(v):
            if isinstance(v, dict):
                return {k: cast(x) for k, x in v.items()}
            return v.float() if hasattr(v, "float") and getattr(v, "is_floating_point", lambda: False)() else v

        return {k: cast(v) for k, v in out.items()}

    # -- hooks ----------------------------------------------------------------------------
    def wrap_dataset(self, dataset, split: str):
        """The dataset a split really uses; ``dataset`` is what ``data.<split>`` built (before
        ``data.repeat``).  Methods that need more than (image, label) per item -- CLERF's
        anchor/positive pairs -- wrap it here.  Default: unchanged."""
        return dataset

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def train_mode(self, model: "nn.Module") -> None:
        """Put the module into its training mode at the start of each epoch (QAT keeps eval mode:
        its BatchNorms are folded and dropout stays off)."""
        model.train()

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@register_method("supervised")
class SupervisedMethod(Method):
    """Images -> PoseModel -> :class:`edgepose.losses.PoseLoss` against the labels."""

    def __init__(self, cfg: Any, options: dict | None = None):
        super().__init__(cfg, options)
        if self.options:
            raise ConfigError(f"method.options: the supervised method takes no options, got {sorted(self.options)}")
        self.criterion = None

    def build(self, model_cfg, spec):
        module = super().build(model_cfg, spec)
        self.criterion = build_criterion(self.cfg.loss, module)
        return module

    def training_step(self, batch, model):
        with self.autocast():
            out = model(batch["image"])
        out = self.float_outputs(out)
        return self.criterion(out, batch["R"], batch.get("euler"))


def build_criterion(loss_cfg: dict, model) -> "nn.Module":
    """``PoseLoss`` from the ``loss`` section, with the model's bin specs for bin / LDL terms."""
    from ..errors import require

    losses = require("edgepose.losses", "train", "training")
    cfg = from_dict(losses.LossConfig, dict(loss_cfg), prefix="loss.")
    pm = getattr(model, "pose_model", model)
    bins = pm.metadata().bins if hasattr(pm, "metadata") else None
    return losses.PoseLoss(cfg, bins=bins or None)

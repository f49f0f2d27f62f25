"""Teacher training methods for ``edgepose-train`` (hpe-methods.md sections 5.3-5.6).

Select one with ``method.name`` in a training config; each module registers itself with
:func:`edgepose.train.register_method` when imported (the trainer imports
``edgepose.methods.<name>`` on demand):

* ``baseline`` -- plain 6D + geodesic regression (the supervised method, named for the table);
* ``ldl``      -- label distribution learning on a bins head (Gaussian targets, wrapped on full-range axes);
* ``clerf``    -- Circle-loss contrastive pre-training on same-pose anchor/positive pairs, then 6D regression;
* ``pcl``      -- pose-disentangled contrastive learning, then a frozen-encoder linear probe;
* ``hmtl``     -- rotation-prediction pre-training, then pose + jigsaw auxiliary head.

Combinations come from the config: a ``6d+bins`` head with ``loss.ldl > 0`` adds the LDL terms
to the pose stage of CLERF, PCL and HMTL.  Importing this package also registers the ``synth``
dataset format (:mod:`edgepose.methods.data`), so configs can train on the synthetic head engine.
See docs/teachers.md.
"""
from __future__ import annotations

from .data import register_synth_format

register_synth_format()

__all__ = ["register_synth_format"]

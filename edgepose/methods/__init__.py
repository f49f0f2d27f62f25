"""Teacher training methods for ``edgepose-train`` (the recipes are cited in docs/teachers.md).

Select one with ``method.name`` in a training config; each module registers itself with
:func:`edgepose.train.register_method` when imported (the trainer imports
``edgepose.methods.<name>`` on demand):

* ``baseline`` -- plain 6D + geodesic regression (the supervised method, named for the table);
* ``ldl``      -- label distribution learning on a bins head (Gaussian targets, wrapped on full-range axes);
* ``clerf``    -- Circle-loss contrastive pre-training on same-pose anchor/positive pairs, then 6D regression;
* ``pcl``      -- pose-disentangled contrastive learning, then a frozen-encoder linear probe;
* ``hmtl``     -- rotation-prediction pre-training, then pose + jigsaw auxiliary head;
* ``simclr``   -- plain SimCLR contrast, then PCL's frozen-encoder linear probe (PCL's control).

Combinations come from the config: a ``6d+bins`` head with ``loss.ldl > 0`` adds the LDL terms
to the pose stage of CLERF, PCL and HMTL.  The ``synth`` dataset format these configs train on
lives in :mod:`edgepose.synth.reader` (known to the data registry without importing this package).
See docs/teachers.md.
"""

"""Teacher -> student distillation (``edgepose distill``).  See docs/distillation.md.

* :mod:`.faces`    deployment-detector face boxes from images / videos (shared with INT8 calibration)
* :mod:`.teacher`  checkpoint / imported / ensemble teachers (chordal mean of R, mean bin distributions)
* :mod:`.losses`   geodesic to R_teacher, temperature KL on bins, feature distillation, GT geodesic
* :mod:`.data`     paired teacher / student crops of the same (jittered) face box
* :mod:`.trainer`  the loop, checkpoints and the config dataclasses
"""

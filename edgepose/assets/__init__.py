"""Files shipped inside the edgepose package.

``models/`` holds the default head-pose student (FP32 + INT8 ``cpu`` + INT8 ``tensorrt`` ONNX files,
each with its ``.json`` sidecar) and ``models/manifest.json`` (sha256, bytes, provenance).
:mod:`edgepose.defaults` resolves them; :mod:`edgepose.assets.build` rebuilds them
(``edgepose models build --config configs/default-model/build.yaml``); docs/models.md
documents data, teacher, licenses and measured accuracy.
"""

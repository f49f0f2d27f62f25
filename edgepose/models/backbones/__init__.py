"""Backbone implementations; importing this package registers them all."""
from . import mobilenet_v1, mobilenet_v2, mobilenetv3, onnx_graph, repvgg, resnet  # noqa: F401

try:  # EfficientNet-B0 (WHENet import) lives in its own module, written separately.
    from . import efficientnet  # noqa: F401
    from . import efficientnet_lite  # noqa: F401  (reuses efficientnet's TF-"same" conv)
except ImportError:  # pragma: no cover - absent until that module lands
    pass

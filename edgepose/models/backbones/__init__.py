"""Backbone implementations; importing this package registers them all."""
from . import mobilenetv3, repvgg, resnet  # noqa: F401

try:  # EfficientNet-B0 (WHENet import) lives in its own module, written separately.
    from . import efficientnet  # noqa: F401
except ImportError:  # pragma: no cover - absent until that module lands
    pass

"""Shipped default pose models (ONNX + sidecars + manifest.json); see edgepose.defaults."""

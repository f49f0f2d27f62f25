"""edgepose: head-pose estimation from research papers to the car.

Train teachers on desktop GPUs, distil and quantize them, and run face detection plus head pose
in a GStreamer pipeline with TensorRT on NVIDIA Jetson for in-car driver monitoring.

Heavy modules (torch, onnxruntime, tensorrt, gi) are imported only by the submodules that need them.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]

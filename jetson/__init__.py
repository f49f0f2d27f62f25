"""edgepose.jetson: TensorRT engines, the pycuda runtime and the Jetson deployment kit.

Modules (none imports TensorRT or pycuda at import time, so everything that does not need a
GPU -- cache keys, version gates, config generators, the kernel's NumPy reference -- runs and
is tested on any machine):

* :mod:`.platform`      Jetson / L4T / JetPack detection, TensorRT version gates, DLA rules
* :mod:`.cache`         engine cache keys, engine + timing-cache paths
* :mod:`.fp16`          FP16 ONNX conversion (IO kept float32) for strongly typed builds
* :mod:`.build`         Polygraphy-style builder: network_from_onnx, create_config, build_engine, save/load
* :mod:`.io_plan`       pure-Python I/O planning for the runtime (shapes, buffer sizes, chunks)
* :mod:`.trt_runtime`   ``TrtRunner`` (named-tensor API, pycuda buffers, pinned memory, streams)
* :mod:`.gpu_preprocess` crop + resize + normalise CUDA kernel (``kernels/*.cu``) and its NumPy reference
* :mod:`.deepstream`    nvinfer secondary-GIE config from an artifact's metadata
* :mod:`.power`         ``nvpmodel -q`` / ``jetson_clocks --show`` parsing for bench reports

Non-Python files: ``setup_jetson.sh``, ``Dockerfile``, ``systemd/edgepose-dms.service``.
"""

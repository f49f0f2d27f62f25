"""TensorRT engine build, Polygraphy style: small loaders + a cache.

    trt = trt_module()                            # lazy import, clear error when missing
    network, parser = network_from_onnx(trt, builder, logger, path, strongly_typed=True)
    config = create_config(trt, builder, options, profile, timing_cache, fp16_flag=False)
    plan = serialize_network(builder, network, config)
    build_engine(onnx_path, options) -> BuildResult   # all of the above + engine / timing cache + sidecar

TensorRT calls follow the named-tensor API of TRT 10 and 11 (docs/jetson.md; NVIDIA TensorRT Python API reference): ``Builder``,
``create_network(1 << STRONGLY_TYPED)``, ``OnnxParser.parse_from_file``,
``create_builder_config``, ``set_memory_pool_limit(WORKSPACE)``, ``create_optimization_profile``
+ ``set_shape``, ``create_timing_cache`` / ``set_timing_cache``, ``builder_optimization_level``,
``default_device_type = DLA`` + ``DLA_core`` + ``BuilderFlag.GPU_FALLBACK``,
``build_serialized_network``.  Precision routes: see :mod:`.options`.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgepose.errors import ModelError, UserError, require
from edgepose.metadata import (ArtifactMetadata, MetadataError, atomic_write_bytes, file_sha256,
                               load_metadata, save_sidecar)

from .cache import DeviceId, EngineKey, default_cache_dir, engine_path, timing_cache_path
from .options import BuildOptions, BuildOptionsError, ProfileShapes
from .platform import TrtVersion, check_dla, read_jetson_info

__all__ = ["trt_module", "trt_version", "onnx_input", "onnx_quantization", "network_from_onnx",
           "create_config", "serialize_network", "save_engine", "load_engine", "build_engine",
           "BuildResult", "EngineBuildError", "fp16_route", "current_device"]

log = logging.getLogger(__name__)


class EngineBuildError(UserError):
    """TensorRT could not parse or build the network."""


def trt_module():
    return require("tensorrt", "trt", "building and running TensorRT engines (on Jetson use JetPack's "
                   "python3-libnvinfer in a --system-site-packages venv, see docs/jetson.md)")


def trt_version(trt) -> TrtVersion:
    v = TrtVersion.parse(trt.__version__)
    v.require_supported()
    return v


# --- ONNX inspection (no TensorRT needed) ---------------------------------------------------

def onnx_input(onnx_path: Path) -> tuple[str, tuple]:
    """Name and shape (None for dynamic dims) of the image input."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise ModelError(f"{onnx_path} has no graph input")
    inp = inputs[0]
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in inp.type.tensor_type.shape.dim)
    return inp.name, dims


def onnx_quantization(onnx_path: Path) -> str:
    """"qdq" when the graph holds QuantizeLinear/DequantizeLinear, "fp16" for float16 weights, else "fp32"."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        return "qdq"
    from edgepose.weight_storage import stores_fp16_weights

    if stores_fp16_weights(model):  # float32 arithmetic, weights stored as float16 (the default model's file)
        return "fp32"
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return "fp16"
    return "fp32"


def check_onnx_precision(onnx_path: Path, precision: str) -> None:
    kind = onnx_quantization(onnx_path)
    if precision == "int8" and kind != "qdq":
        raise BuildOptionsError(
            f"--precision int8 needs a Q/DQ ONNX (explicit quantization); {onnx_path.name} has no Q/DQ nodes. "
            f"Make one with `edgepose quantize {onnx_path.name} --profile tensorrt` and build that file")
    if precision != "int8" and kind == "qdq":
        raise BuildOptionsError(f"{onnx_path.name} is a Q/DQ (INT8) model: build it with --precision int8")
    if precision == "fp32" and kind == "fp16":
        raise BuildOptionsError(f"{onnx_path.name} holds float16 weights: build it with --precision fp16")


def fp16_route(version: TrtVersion, precision: str, onnx_is_fp16: bool = False) -> str:
    """How FP16 reaches the engine: BuilderFlag.FP16 on TRT 10, an FP16 ONNX on TRT 11.

    An ONNX that already holds float16 weights (``edgepose engine fp16``) is built as it is,
    strongly typed, on both versions.
    """
    if precision != "fp16":
        return "none"
    if onnx_is_fp16:
        return "onnx"
    return "builder-flag" if version.weakly_typed_available else "onnx"


def materialized_fp32(onnx_path: Path, out: Path) -> Path:
    """``onnx_path`` itself, or for a file that stores float32 weights as float16 behind Casts (the default
    model's FP32 file) an ordinary FP32 copy at ``out``: TensorRT's parser wants weights as initializers."""
    import onnx

    from edgepose.weight_storage import materialize_fp32_weights, stores_fp16_weights

    model = onnx.load(str(onnx_path), load_external_data=False)
    if not stores_fp16_weights(model):
        return onnx_path
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(materialize_fp32_weights(model), str(out))
    return out


# --- TensorRT loaders -----------------------------------------------------------------------

def network_from_onnx(trt, builder, logger, onnx_path: Path, strongly_typed: bool):
    flags = 0
    st = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed and st is not None:  # honoured on TRT 10, accepted and ignored on 11
        flags |= 1 << int(st)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path.name}: " + "; ".join(errors or ["unknown error"])
                               + ". Re-export with `edgepose export --opset 18` (TensorRT 10 parses opset 17 and 18)")
    return network, parser


def create_config(trt, builder, options: BuildOptions, input_name: str, profile: ProfileShapes,
                  timing_cache_blob: bytes, fp16_flag: bool):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mb) << 20)
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = int(options.opt_level)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer info for the engine inspector
    prof = builder.create_optimization_profile()
    prof.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(prof)
    cache = config.create_timing_cache(timing_cache_blob or b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)  # TRT 10 weak typing; never reached on TRT 11
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(options.dla_core)
        if options.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    return config


def serialize_network(builder, network, config) -> bytes:
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError("TensorRT failed to build the engine (see the TensorRT log above); for DLA try "
                               "--gpu-fallback, otherwise raise --workspace-mb")
    return bytes(plan)


def save_engine(plan: bytes, path: Path, meta: ArtifactMetadata | None) -> Path:
    atomic_write_bytes(path, plan)
    if meta is not None:
        save_sidecar(path, meta)
    return path


def load_engine(trt, path: Path, logger=None):
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"TensorRT engine not found: {path}")
    runtime = trt.Runtime(logger or trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise ModelError(f"TensorRT cannot deserialize {path}: engines only load on the GPU model and TensorRT "
                         f"version they were built with; rebuild it here with `edgepose engine build <model.onnx>`")
    return runtime, engine


# --- device ---------------------------------------------------------------------------------

def current_device() -> DeviceId:
    """GPU name and SM of device 0 (pycuda, else nvidia-smi)."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        dev = cuda.Device(0)
        major, minor = dev.compute_capability()
        return DeviceId(dev.name(), f"{major}.{minor}")
    except Exception as exc:  # pycuda missing or no driver: try nvidia-smi
        first = exc
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        line = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
        if "," in line:
            name, sm = (p.strip() for p in line.split(",", 1))
            return DeviceId(name, sm)
    raise UserError(f"cannot identify the GPU (pycuda: {first}; nvidia-smi: {'missing' if not smi else 'failed'}); "
                    f"engine builds need an NVIDIA GPU with pycuda installed (`pip install 'edgepose[pycuda]'`)")


# --- the whole build with caching -----------------------------------------------------------

@dataclass
class BuildResult:
    engine: Path  # the plan in the cache
    output: Path | None  # copy requested by the user (-o), if any
    cached: bool
    key: EngineKey
    seconds: float


def _engine_meta(onnx_path: Path, key: EngineKey, version: TrtVersion, seconds: float,
                 built_from: Path) -> ArtifactMetadata | None:
    try:
        meta = load_metadata(onnx_path)
    except MetadataError:
        log.warning("%s has no edgepose metadata; the engine gets none either", onnx_path)
        return None
    precision = {"int8": "int8-tensorrt"}.get(key.options.precision, key.options.precision)
    jetson = read_jetson_info()
    extra = dict(meta.extra)
    extra.update({"build": key.components(), "build_options": key.options.to_dict(),
                  "build_seconds": round(seconds, 2), "built_from": built_from.name,
                  "versions": {"tensorrt": str(version), "l4t": jetson.l4t, "jetpack": jetson.jetpack_major},
                  "device": {"name": key.device.name, "sm": key.device.sm, "jetson_model": jetson.model,
                             "target": key.options.device_kind}})
    return meta.derive(format="tensorrt", precision=precision, extra=extra,
                       provenance={**meta.provenance, "parent": onnx_path.name,
                                   "parent_sha256": key.onnx_sha256})


def build_engine(onnx_path: str | Path, options: BuildOptions, cache_dir: str | Path | None = None,
                 output: str | Path | None = None, force: bool = False, verbose: bool = False) -> BuildResult:
    """Build (or reuse from the cache) an engine for ``onnx_path``; see the module docstring."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"ONNX model not found: {onnx_path}")
    check_onnx_precision(onnx_path, options.precision)
    input_name, input_shape = onnx_input(onnx_path)
    profile = options.profile(input_shape)
    trt = trt_module()
    version = trt_version(trt)
    if options.dla_core is not None:
        if options.precision == "int8":
            raise BuildOptionsError(
                "DLA INT8 needs implicit quantization (a calibrator), which edgepose does not ship: TensorRT <= 10 "
                "builds DLA INT8 only from calibration caches and TensorRT 11 has no calibrators. Use "
                "--precision fp16 on DLA, or INT8 on the GPU (see docs/jetson.md, 'DLA')")
        check_dla(version, read_jetson_info(), options.dla_core)
    device = current_device()
    onnx_is_fp16 = onnx_quantization(onnx_path) == "fp16"
    route = fp16_route(version, options.precision, onnx_is_fp16)
    key = EngineKey(onnx_sha256=file_sha256(onnx_path), trt_version=str(version), device=device,
                    options=options, profile=profile, fp16_route=route)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    plan_path = engine_path(cache_dir, onnx_path, key)
    t0 = time.perf_counter()
    cached = plan_path.is_file() and not force
    if cached:
        log.info("engine cache hit: %s", plan_path)
    else:
        built_from = materialized_fp32(onnx_path, cache_dir / "onnx" / f"{key.digest()}.fp32.onnx")
        if route == "onnx" and not onnx_is_fp16:
            from .fp16 import convert_fp16

            built_from = convert_fp16(built_from, cache_dir / "onnx" / f"{key.digest()}.fp16.onnx")
        logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
        builder = trt.Builder(logger)
        if options.dla_core is not None and options.dla_core >= builder.num_DLA_cores:
            raise BuildOptionsError(f"--dla-core {options.dla_core}: TensorRT sees {builder.num_DLA_cores} DLA core(s)")
        strongly_typed = route != "builder-flag"  # BuilderFlag.FP16 is rejected on strongly typed networks
        network, _parser = network_from_onnx(trt, builder, logger, built_from, strongly_typed=strongly_typed)
        tc_path = timing_cache_path(cache_dir, device, str(version))
        blob = tc_path.read_bytes() if tc_path.is_file() else b""
        config = create_config(trt, builder, options, input_name, profile, blob, fp16_flag=route == "builder-flag")
        log.info("building %s engine for %s on %s (TensorRT %s, batch %d..%d, opt %d); this takes minutes",
                 options.precision, onnx_path.name, device.name, version, options.min_batch, options.max_batch,
                 options.opt_batch)
        plan = serialize_network(builder, network, config)
        atomic_write_bytes(tc_path, bytes(config.get_timing_cache().serialize()))
        seconds = time.perf_counter() - t0
        save_engine(plan, plan_path, _engine_meta(onnx_path, key, version, seconds, built_from))
    out = None
    if output is not None:
        out = Path(output)
        atomic_write_bytes(out, plan_path.read_bytes())
        side = plan_path.with_name(plan_path.name + ".json")
        if side.is_file():
            meta = load_metadata(plan_path)
            save_sidecar(out, meta)
    return BuildResult(engine=plan_path, output=out, cached=cached, key=key, seconds=time.perf_counter() - t0)

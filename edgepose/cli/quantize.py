"""``edgepose quantize``: INT8 PTQ in the tensorrt and/or cpu profile, with a size/latency/accuracy report.

    edgepose quantize student.onnx --calib incar.mp4 --calib faces/ --eval aflw2000:/data/AFLW2000 \\
        --profiles tensorrt,cpu --method minmax -o out/
"""
from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from ..errors import UserError
from .argtypes import int_at_least, strength_or_off

HELP = "INT8 post-training quantization (tensorrt and cpu profiles) with a report"
DESCRIPTION = (HELP + ". Calibration crops come from the face detector + the model's own crop policy; "
               "the tensorrt profile is checked by the Q/DQ lint before it is written.")

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FP32 ONNX file written by `edgepose export` (with its .json sidecar)")
    p.add_argument("--calib", action="append", required=True, metavar="DIR_OR_VIDEO",
                   help="calibration images / videos / folders (repeatable); in-domain cabin footage, night/IR included")
    p.add_argument("--eval", dest="eval_set", metavar="FORMAT:PATH",
                   help="labelled evaluation set, e.g. aflw2000:/data/AFLW2000 (omit to skip accuracy)")
    p.add_argument("--profiles", default="tensorrt,cpu", help="comma list of tensorrt, cpu (default: both)")
    p.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"],
                   help="calibration method (default minmax, TensorRT's recommendation)")
    p.add_argument("--percentile", type=float, default=99.999, help="percentile for --method percentile")
    p.add_argument("--reduce-range", default="auto", choices=["auto", "on", "off"],
                   help="cpu profile: 7-bit weights against U8S8 saturation on x86 CPUs without VNNI "
                        "(ONNX Runtime's advice). auto (default) = on when this CPU lacks avx512_vnni / avx_vnni; "
                        "set on/off when the model will run on another CPU")
    p.add_argument("--equalize", type=strength_or_off, default=None, metavar="ALPHA|off",
                   help="activation equalization across ReLU before quantizing (FP32 function unchanged): each "
                        "channel of a quantized ReLU output gets the tensor's range; ALPHA in [0, 1] is the strength "
                        "before dense convs (0.5 for the default model; docs/quantization.md). Default off")
    p.add_argument("--max-crops", type=int_at_least(1), default=512, help="calibration crops used at most (default 512)")
    p.add_argument("--detector", default="yunet", help="face detector: yunet | ultraface | haar (default yunet)")
    p.add_argument("--detector-model", help="detector model file (default: the edgepose cache)")
    p.add_argument("--video-step", type=int_at_least(1), default=10, help="use every N-th video frame (default 10)")
    p.add_argument("-o", "--out-dir", help="output folder (default: next to the model)")
    p.add_argument("--runs", type=int_at_least(1), default=100, help="timed runs per model for the latency report")
    p.add_argument("--threads", type=int_at_least(1), default=2, help="ORT intra-op threads for the latency report")
    p.add_argument("--no-report", action="store_true", help="only quantize; skip latency and accuracy")
    p.add_argument("--exclude", action="append", default=[], metavar="NODE",
                   help="extra node kept in float (repeatable; names from `edgepose-bench quantize-sweep "
                        "MODEL --calib X --list-groups`)")
    p.add_argument("--qat", metavar="CHECKPOINT",
                   help="also run quantization-aware fine-tuning of this checkpoint (the one MODEL was exported "
                        "from), distilled from its FP32 self on the calibration crops, then export + tensorrt INT8")
    p.add_argument("--qat-steps", type=int_at_least(1), default=200, help="QAT optimizer steps (default 200)")
    p.add_argument("--qat-lr", type=float, default=1e-5, help="QAT learning rate (default 1e-5)")
    p.add_argument("--qat-batch", type=int_at_least(1), default=16, help="QAT batch size (default 16)")


def _load_qat(args, model: Path):
    """The --qat checkpoint, read and checked before the slow calibration (a bad file fails first)."""
    from edgepose.models.pose_model import PoseModel

    ckpt = Path(args.qat)
    if not ckpt.is_file():
        raise UserError(f"--qat checkpoint not found: {ckpt}; pass the .pt that {model.name} was exported from")
    net = PoseModel.from_checkpoint(ckpt)
    if net.preprocess.to_dict() != _onnx_spec(model):
        raise UserError(f"--qat {ckpt} has another preprocessing than {model}; pass the checkpoint it was exported from")
    return net


def _qat(args, net, model: Path, out_dir: Path, calib, command: str) -> Path:
    """QAT fine-tune ``net`` (``args.qat``) -> ``<stem>-qat.pt`` -> FP32 ONNX -> tensorrt INT8 (lint-checked)."""
    from edgepose.quantize.qat import qat_finetune
    from edgepose.export import export_onnx
    from edgepose.quantize.ptq import quantize_onnx

    ckpt = Path(args.qat)
    summary = qat_finetune(net, calib.crops, steps=args.qat_steps, batch_size=args.qat_batch, lr=args.qat_lr)
    log.info("QAT: %s", summary)
    net.provenance.update({"qat": summary, "qat_from": str(ckpt)})
    stem = out_dir / f"{model.stem}-qat"
    net.save_checkpoint(stem.with_suffix(".pt"))
    fp32 = export_onnx(net, stem.with_suffix(".onnx"), real_inputs=calib.crops[:8], command=command).path
    out = out_dir / f"{model.stem}-qat-int8-tensorrt.onnx"
    quantize_onnx(fp32, out, calib.crops, "tensorrt", method=args.method, percentile=args.percentile,
                  manifest=calib.manifest, command=command, exclude=args.exclude, equalize=args.equalize)
    return out


def command_line(args: argparse.Namespace) -> str:
    """The command as it was given, for provenance (``main()`` stores its argv on ``args``).

    Without that (``run()`` called directly), an equivalent command is rebuilt from the options.
    """
    from .main import invoked_command

    given = invoked_command(args)
    if given is not None:
        return given
    argv = [str(args.model)]
    for key, value in sorted(vars(args).items()):
        flag = "--eval" if key == "eval_set" else "--" + key.replace("_", "-")
        if key == "model" or key.startswith("_") or value is None or value is False or value in ([], ""):  # 0.0 stays
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [x for v in value for x in (flag, str(v))]
        else:
            argv += [flag, str(value)]
    return " ".join(["edgepose quantize", *(shlex.quote(str(a)) for a in argv)])


def _reduce_range_for(args: argparse.Namespace, profiles) -> dict[str, str]:
    """--reduce-range per profile: it only concerns the cpu profile (tensorrt always "off")."""
    if args.reduce_range == "on" and not any(p.reduce_range_ok for p in profiles):
        raise UserError("--reduce-range on applies to the cpu profile, which --profiles does not include; "
                        "add cpu to --profiles or drop --reduce-range")
    return {p.name: (args.reduce_range if p.reduce_range_ok else "off") for p in profiles}


def _onnx_spec(model: Path) -> dict:
    from edgepose.metadata import load_metadata

    return load_metadata(model).preprocess.to_dict()


def _check_paths(args, model: Path, out_dir: Path, profiles) -> None:
    """No file quantize writes is one it reads (model, sidecar, --qat, calibration files) or another output."""
    from edgepose.io_safety import check_outputs, with_sidecars

    outs = [(f"int8 {p.name} output", out_dir / f"{model.stem}-int8-{p.name}.onnx") for p in profiles]
    if args.qat:
        outs += [("QAT checkpoint", out_dir / f"{model.stem}-qat.pt"), ("QAT ONNX", out_dir / f"{model.stem}-qat.onnx"),
                 ("QAT int8 output", out_dir / f"{model.stem}-qat-int8-tensorrt.onnx")]
    report = out_dir / f"{model.stem}-quantize-report"
    outs = with_sidecars(outs) + ([] if args.no_report else [("report", report.with_name(report.name + ".json")),
                                                            ("report", report.with_name(report.name + ".md"))])
    inputs = with_sidecars([("model", model), ("--qat", args.qat)]) + [("--calib", c) for c in args.calib]
    check_outputs(inputs + [("--detector-model", args.detector_model)], outs, dir_outputs=[("-o", out_dir)])


def run(args: argparse.Namespace) -> int:
    from edgepose.data.faces import DetectorSettings
    from edgepose.metadata import load_metadata
    from edgepose.quantize.calibration import build_calibration_set
    from edgepose.quantize.profiles import parse_profiles
    from edgepose.quantize.ptq import quantize_onnx

    model = Path(args.model)
    if not model.is_file():
        raise UserError(f"model not found: {model}; export one with `edgepose export ckpt.pt -o model.onnx`")
    if model.suffix.lower() != ".onnx":
        raise UserError(f"{model} is not an ONNX file; quantize works on `edgepose export` output (.onnx)")
    profiles = parse_profiles(args.profiles)
    reduce_range = _reduce_range_for(args, profiles)
    meta = load_metadata(model)
    reader = None
    if args.eval_set:  # validate the eval set before the slow part
        from edgepose.data.options import build_eval_reader, parse_data_arg

        reader = build_eval_reader(parse_data_arg(args.eval_set), where="--eval")
    if args.qat and (args.qat_steps < 1 or args.qat_batch < 1 or args.qat_lr <= 0):
        raise UserError("--qat-steps and --qat-batch must be >= 1 and --qat-lr > 0")
    out_dir = Path(args.out_dir) if args.out_dir else model.parent
    _check_paths(args, model, out_dir, profiles)
    qat_net = _load_qat(args, model) if args.qat else None  # fail before the slow calibration
    settings = DetectorSettings(name=args.detector, model_path=args.detector_model, video_step=args.video_step)
    calib = build_calibration_set(args.calib, meta.preprocess, settings, max_crops=args.max_crops)
    log.info("calibration: %d face crops from %d file(s)", len(calib.crops), len(calib.manifest["files"]))
    command = command_line(args)
    outputs = {"fp32": model}
    for prof in profiles:
        out = out_dir / f"{model.stem}-int8-{prof.name}.onnx"
        quantize_onnx(model, out, calib.crops, prof, method=args.method, percentile=args.percentile,
                      manifest=calib.manifest, command=command, exclude=args.exclude,
                      reduce_range=reduce_range[prof.name], equalize=args.equalize)
        outputs[f"int8-{prof.name}"] = out
    if args.qat:
        outputs["int8-tensorrt-qat"] = _qat(args, qat_net, model, out_dir, calib, command)
    if args.no_report:
        return 0
    from edgepose.quantize.report import build_report, eval_batch, format_markdown, write_report

    ex = eR = None
    if reader is not None:
        ex, eR = eval_batch(reader, meta.preprocess)
    report = build_report(outputs, ex, eR, calib.crops[:1], runs=args.runs, threads=args.threads,
                          eval_name=args.eval_set or "")
    report["calibration"] = {"method": args.method, "crops": int(len(calib.crops)),
                             "files": [f["path"] for f in calib.manifest["files"]]}
    report["command"] = command
    js, md = write_report(report, out_dir / f"{model.stem}-quantize-report")
    print(format_markdown(report))
    print(f"report: {js} and {md}")
    return 0

"""``edgepose synth``: synthetic heads with exact pose labels (export, video, preview)."""
from __future__ import annotations

import argparse

HELP = "render synthetic heads with exact pose labels"
DESCRIPTION = (HELP + ". `export` writes images + labels.csv for the folder reader, `video` a driver-like mp4 "
               "with per-frame ground truth, `preview` a labelled contact sheet, `profile` re-renders real faces "
               "at new poses and `profile-eval` measures that. See docs/synth.md.")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="dataset seed: same seed -> identical images (default 0)")
    p.add_argument("--pose-range", default="wide",
                   help="frontal | driver | wide | full (uniform SO(3)) | 'pitch=-30:30,yaw=-90:90,roll=-20:20'")
    p.add_argument("--ir-fraction", type=float, default=0.3, help="fraction of NIR grayscale images (default 0.3)")
    p.add_argument("--sun-fraction", type=float, default=0.3, help="fraction of harsh-sun colour images (default 0.3)")
    p.add_argument("--split", default="train", choices=["train", "val", "test"],
                   help="identity split (disjoint identity-seed ranges; default train)")
    p.add_argument("--identities", type=int, default=500, help="number of identities drawn from the split (default 500)")
    p.add_argument("--backgrounds", default="plain,gradient,noise,cabin",
                   help="comma-separated background kinds (default: all of plain,gradient,noise,cabin)")
    p.add_argument("--accessories", type=float, default=1.0,
                   help="scale of glasses/cap/mask probabilities; 0 disables them (default 1)")
    p.add_argument("--size", type=int, default=128, help="square image size in pixels (default 128)")
    p.add_argument("--ssaa", type=int, default=2, choices=[1, 2, 3, 4], help="supersampling factor (default 2)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True,
                                metavar="{export,video,preview,boxcheck,profile,profile-eval}")
    e = sub.add_parser("export", help="render N images + labels.csv (folder format read by edgepose.data)")
    e.add_argument("--n", type=int, required=True, help="number of images")
    e.add_argument("--out", required=True, help="output folder (images/, labels.csv, synth.json)")
    e.add_argument("--format", default="png", choices=["png", "jpg", "bmp"], help="image format (default png)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing labels.csv in --out")
    _common(e)

    v = sub.add_parser("video", help="driver-like mp4 (scripted glances) + per-frame ground truth")
    v.add_argument("--out", required=True, help="output .mp4 (poses go to OUT.poses.jsonl/.csv, settings to OUT.json)")
    v.add_argument("--seconds", type=float, default=10.0, help="duration (default 10)")
    v.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    v.add_argument("--seed", type=int, default=0, help="seed: driver identity, cabin, head motion (default 0)")
    v.add_argument("--width", type=int, default=640, help="frame width (even, default 640)")
    v.add_argument("--height", type=int, default=480, help="frame height (even, default 480)")
    v.add_argument("--ir", action="store_true", help="NIR look (grayscale, illuminator at the camera)")
    v.add_argument("--identity", type=int, default=None, help="identity seed of the driver (default: from --seed)")

    p = sub.add_parser("preview", help="contact sheet of N labelled renders (box, key points, axes) as one image")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--out", required=True, help="output image (.png/.jpg)")
    _common(p)

    b = sub.add_parser("boxcheck", help="compare synthetic face boxes / key points with OpenCV YuNet detections")
    b.add_argument("--yunet", required=True, help="YuNet .onnx (e.g. from `edgepose models fetch yunet`)")
    b.add_argument("--n", type=int, default=40, help="frontal renders (default 40)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--pose-range", default="frontal")

    _profile_arguments(sub)

    from . import synth_profile_eval  # its own module (one per command); argument definitions only

    e = sub.add_parser("profile-eval", help=synth_profile_eval.HELP, description=synth_profile_eval.DESCRIPTION)
    synth_profile_eval.add_arguments(e)


def _profile_arguments(sub) -> None:
    from ..synth.profile.pipeline import DEFAULT_POSES

    f = sub.add_parser("profile", help="real faces (images, folders, video frames) re-rendered at new poses "
                                       "with their own pixels and exact labels, into a chunked cache")
    f.add_argument("sources", nargs="+", help="image files, folders of images, or videos")
    f.add_argument("--out", required=True, help="cache folder (resumed when its settings match, refused otherwise)")
    f.add_argument("--k", type=int, default=8, help="renders per face (default 8)")
    f.add_argument("--size", type=int, default=128, help="crop size in pixels (default 128)")
    f.add_argument("--ssaa", type=int, default=2, choices=[1, 2, 3, 4], help="supersampling factor (default 2)")
    f.add_argument("--pose-range", default=DEFAULT_POSES,
                   help=f"target poses: frontal | driver | wide | full | 'pitch=a:b,yaw=c:d,roll=e:f' (default {DEFAULT_POSES})")
    f.add_argument("--pose-mode", default="random", choices=["random", "shared"],
                   help="random: K poses per face; shared: every face at the same K poses (same-pose batches)")
    f.add_argument("--seed", type=int, default=0, help="seed: same seed and source -> identical renders (default 0)")
    f.add_argument("--ir-fraction", type=float, default=0.3, help="fraction of NIR/grey renders (default 0.3)")
    f.add_argument("--relight-fraction", type=float, default=0.5, help="fraction relit by a key light (default 0.5)")
    f.add_argument("--blur", type=float, default=0.6, help="max optical blur sigma in px (default 0.6)")
    f.add_argument("--detector", default="yunet", help="yunet | ultraface | haar | none (tight face crops)")
    f.add_argument("--detector-model", default=None, help="detector model file (default: the fetched one)")
    f.add_argument("--video-step", type=int, default=15, help="every n-th video frame (default 15)")
    f.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    f.add_argument("--chunk-faces", type=int, default=64, help="faces per cache chunk (default 64)")
    f.add_argument("--overwrite", action="store_true", help="rebuild a cache of other settings")


def _profile(args) -> int:
    from ..synth.profile.cache import ProfiledReader, build_cache
    from ..synth.profile.pipeline import ProfileConfig

    cfg = ProfileConfig(k=args.k, size=args.size, ssaa=args.ssaa, pose_range=args.pose_range,
                        pose_mode=args.pose_mode, seed=args.seed, ir_fraction=args.ir_fraction,
                        relight_fraction=args.relight_fraction, blur=args.blur, detector=args.detector,
                        detector_model=args.detector_model, video_step=args.video_step)
    root = build_cache(args.sources, args.out, cfg, workers=args.workers, chunk_faces=args.chunk_faces,
                       overwrite=args.overwrite)
    reader = ProfiledReader(str(root))
    print(f"{root}: {len(reader)} renders of {len(set(reader.column('face').tolist()))} faces")
    return 0


def _config(args):
    from ..synth.dataset import SynthConfig

    return SynthConfig(split=args.split, n_identities=args.identities, pose_range=args.pose_range,
                       ir_fraction=args.ir_fraction, sun_fraction=args.sun_fraction,
                       backgrounds=[b.strip() for b in args.backgrounds.split(",") if b.strip()],
                       accessories=args.accessories, size=args.size, ssaa=args.ssaa).validate()


def run(args) -> int:
    from ..errors import UserError
    from ..io_safety import check_outputs

    if args.action == "export":
        check_outputs([], [], dir_outputs=[("--out", args.out)])
    elif args.action in ("video", "preview"):
        check_outputs([], [("--out", args.out)])

    if args.action == "export":
        from ..synth.export import export_dataset

        if args.n < 1:
            raise UserError(f"--n must be >= 1, got {args.n}")
        path = export_dataset(args.out, args.n, seed=args.seed, config=_config(args), image_format=args.format,
                              overwrite=args.overwrite)
        print(path)
        return 0
    if args.action == "video":
        from ..synth.video import render_video

        meta = render_video(args.out, seconds=args.seconds, fps=args.fps, seed=args.seed,
                            size=(args.width, args.height), ir=args.ir, identity=args.identity)
        print(f"{args.out}: {meta['frames']} frames; ground truth in {meta['poses']}")
        return 0
    if args.action == "preview":
        from ..synth.preview import contact_sheet

        if not 1 <= args.n <= 400:
            raise UserError(f"--n must be in 1..400, got {args.n}")
        contact_sheet(args.out, args.n, seed=args.seed, config=_config(args))
        print(args.out)
        return 0
    if args.action == "boxcheck":
        import json

        from ..synth.boxcheck import compare_with_yunet

        if args.n < 1:
            raise UserError(f"--n must be >= 1, got {args.n}")
        print(json.dumps(compare_with_yunet(args.yunet, args.n, args.seed, pose_range=args.pose_range)))
        return 0
    if args.action == "profile":
        return _profile(args)
    if args.action == "profile-eval":
        from . import synth_profile_eval

        return synth_profile_eval.run(args)
    raise UserError(f"unknown action {args.action!r}")  # pragma: no cover - argparse guards it

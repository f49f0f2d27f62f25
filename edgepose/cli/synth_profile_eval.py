"""``edgepose synth profile-eval``: measurements of face profiling (docs/results/profiling.md).

    edgepose synth profile-eval throughput --image PHOTO [--n 300]
    edgepose synth profile-eval fit-vs-labels --data ../shared/data
    edgepose synth profile-eval teacher-yaw --teacher whenet.pt SOURCES... [--faces 60]
    edgepose synth profile-eval fixtures --teacher whenet.pt --data ../shared/data
    edgepose synth profile-eval sheet --out sheet.jpg PHOTOS...

Label truth without labels: a face profiled by a KNOWN yaw change should read, to a teacher trained
on 300W-LP, as turned by that change (the teacher's own bias on the person cancels).  Each
measurement prints its result as JSON; details in :mod:`edgepose.synth.profile.evaluate`.
(A sibling of ``edgepose synth profile``, whose positional arguments are its sources.)
"""
from __future__ import annotations

import argparse

HELP = "measure face profiling: throughput, fit vs labels, teacher yaw checks, contact sheet"
DESCRIPTION = __doc__


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--image", required=True)
    t.add_argument("--n", type=int, default=300)
    t.add_argument("--size", type=int, default=128)
    for name in ("fit-vs-labels", "fixtures"):
        f = sub.add_parser(name)
        f.add_argument("--data", default="../shared/data")
        if name == "fixtures":
            f.add_argument("--teacher", required=True)
    y = sub.add_parser("teacher-yaw")
    y.add_argument("sources", nargs="+")
    y.add_argument("--teacher", required=True)
    y.add_argument("--faces", type=int, default=60)
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--video-step", type=int, default=30)
    y.add_argument("--out", default=None, help="JSON file rewritten after every face")
    s = sub.add_parser("sheet")
    s.add_argument("sources", nargs="+")
    s.add_argument("--out", required=True)
    for p in (t, y, s, *[sub.choices[n] for n in ("fit-vs-labels", "fixtures")]):
        p.add_argument("--detector-model", default=None, help="YuNet .onnx (default: no detector, tight crops)")


def run(a: argparse.Namespace) -> int:
    import json

    from ..synth.profile.evaluate import contact_sheet, fit_vs_labels, fixtures, teacher_yaw, throughput

    if a.what == "throughput":
        out = throughput(a.image, a.n, a.size, a.detector_model)
    elif a.what == "fit-vs-labels":
        out = fit_vs_labels(a.data, a.detector_model)
    elif a.what == "fixtures":
        out = fixtures(a.teacher, a.data, a.detector_model)
    elif a.what == "teacher-yaw":
        out = teacher_yaw(a.teacher, a.sources, a.faces, a.detector_model, a.seed, a.video_step, out=a.out)
    else:
        out = contact_sheet(a.out, a.sources, a.detector_model)
    print(json.dumps(out, indent=1))
    return 0

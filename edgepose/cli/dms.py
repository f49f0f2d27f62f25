"""``edgepose dms``: driver monitoring offline (replay a recorded run, simulate a timeline, show zones)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "driver monitoring: replay a recorded run through a DMS preset, simulate timelines, show zones"
DESCRIPTION = HELP + ". See docs/dms.md."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{replay,simulate,zones}")

    p = sub.add_parser("replay", help="run the DMS over an `edgepose run --jsonl` recording")
    p.add_argument("run_jsonl", help="per-frame JSONL written by `edgepose run SOURCE --jsonl FILE`")
    p.add_argument("--preset", default="euro-ncap-2023", help="preset YAML or shipped name (default: euro-ncap-2023)")
    p.add_argument("--signals", help="vehicle signals .csv/.jsonl (t or pts_ns, speed_kmh, indicator)")
    p.add_argument("--mount", help="camera mount YAML: road_pose_deg [pitch, yaw, roll] (camera-frame pose of the driver looking down the road) or R_vehicle_cam")
    p.add_argument("--events", help="events JSONL output; '-' = stdout (default: the preset's outputs.events, else stdout)")
    p.add_argument("--states", action="store_true", help="also write periodic state records to the events output")
    p.add_argument("--mqtt", help="also publish to a broker: mqtt://HOST:PORT/topic/prefix")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="preset overrides (e.g. --set long_distraction.threshold_s=2.5 drive_side=rhd)")

    s = sub.add_parser("simulate", help="write a run JSONL (+ signals CSV) from a scripted glance timeline")
    s.add_argument("script", help="timeline YAML: fps + segments [{duration_s, zone|yaw/pitch, face, frames, speed_kmh, indicator}]")
    s.add_argument("--preset", default="euro-ncap-2023", help="preset whose zones `zone:` names refer to")
    s.add_argument("--mount", help="camera mount YAML; poses are written camera-relative through it")
    s.add_argument("--out", required=True, help="run JSONL to write")
    s.add_argument("--signals-out", help="vehicle signals CSV to write")

    z = sub.add_parser("zones", help="print the resolved zones of a preset (after drive_side mirroring)")
    z.add_argument("--preset", default="euro-ncap-2023")
    z.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")


def run(args) -> int:
    from ..dms.config import load_preset
    from ..io_safety import check_outputs

    if args.action == "replay":
        from ..dms.replay import replay

        cfg = load_preset(args.preset, args.overrides)
        events = args.events or cfg.outputs.events or "-"
        check_outputs([("run JSONL", args.run_jsonl), ("--signals", args.signals), ("--mount", args.mount),
                       ("--preset", args.preset if Path(args.preset).is_file() else None)], [("--events", events)])
        summary = replay(args.run_jsonl, cfg, events_out=events, signals=args.signals,
                         mount=args.mount, write_states=args.states, mqtt=args.mqtt)
        print(json.dumps({"record": "summary", **summary}), file=sys.stderr if events == "-" else sys.stdout)
        return 0
    if args.action == "simulate":
        from ..dms.mount import CameraMount
        from ..dms.timeline import load_script, synthesize, write_run_jsonl, write_signals_csv
        from ..dms.zones import build_zones

        cfg = load_preset(args.preset)
        check_outputs([("script", args.script), ("--mount", args.mount),
                       ("--preset", args.preset if Path(args.preset).is_file() else None)],
                      [("--out", args.out), ("--signals-out", args.signals_out)])
        frames, signals = synthesize(load_script(args.script), build_zones(cfg),
                                     CameraMount.from_file(args.mount) if args.mount else None)
        write_run_jsonl(frames, args.out)
        if args.signals_out:
            write_signals_csv(signals, args.signals_out)
        print(f"wrote {len(frames)} frames to {args.out}" + (f" and signals to {args.signals_out}" if args.signals_out else ""))
        return 0
    from ..dms.zones import build_zones

    cfg = load_preset(args.preset, args.overrides)
    print(f"# preset {cfg.name or args.preset}, drive_side {cfg.drive_side}; yaw + = driver's right, pitch + = up")
    for z in build_zones(cfg):
        y, p = z.polygon[:, 0], z.polygon[:, 1]
        print(f"{z.name:<14} {z.category:<12} yaw [{y.min():+6.1f}, {y.max():+6.1f}]  pitch [{p.min():+6.1f}, {p.max():+6.1f}]")
    return 0

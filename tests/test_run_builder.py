"""The one run builder (edgepose.pipelines.builder): RunOptions -> build_run -> Run.execute.

Real components only: GStreamer decode of the shared videos, the shipped default pose model, YuNet
from the shared data, the DMS layer with a shipped preset.  ``edgepose run``, ``edgepose demo`` and
the benchmarks all go through ``build_run``; these tests pin that the builder gives what the CLI
gives, that one run can be executed several times (the benchmarks' warm-up and repeats), and that
its checks and Ctrl-C handling live in the library.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from edgepose.cli.main import main as cli
from edgepose.errors import UserError
from edgepose.pipelines import DmsOptions, Outputs, RunOptions, build_run
from edgepose.runrecord import frame_records

FRAMES = 12


@pytest.fixture(scope="module")
def clip(data_file) -> Path:
    return data_file("videos/single_face.mp4")


@pytest.fixture(scope="module")
def yunet(data_file) -> Path:
    return data_file("detectors/yunet/yunet_s_320_320.onnx")


def _options(clip, yunet, **kw) -> RunOptions:
    base = dict(source=str(clip), detector="yunet", detector_model=str(yunet), threads=1, max_frames=FRAMES,
                progress=False)
    return RunOptions(**{**base, **kw})


def _strip_ids(records: list) -> list:
    return [[{k: v for k, v in f.items() if k != "track_id"} for f in r["faces"]] for r in records]


def _faces(path: Path) -> list:
    """Frame records without the timings (they differ run to run)."""
    return [{k: v for k, v in r.items() if k != "latency_ms"} for r in frame_records(path)]


def test_built_run_writes_records_and_summary(tmp_path, clip, yunet):
    out = Outputs(jsonl=tmp_path / "run.jsonl", stats=tmp_path / "stats.json", video=tmp_path / "run.mp4")
    with build_run(_options(clip, yunet, every=2, outputs=out)) as run:
        summary = run.execute()
    assert summary.frames == FRAMES and summary.frames_written == FRAMES and not summary.interrupted
    assert summary.frames_with_faces > FRAMES // 2, "the shared clip shows one face in most frames"
    lines = [json.loads(s) for s in out.jsonl.read_text().splitlines()]
    header, last = lines[0], lines[-1]
    # header=None: the builder describes the run (what ran, the resolved runtime options)
    assert header["type"] == "header" and header["detector"] == "yunet" and header["detect_every"] == 2
    assert header["detector_model"] == str(yunet) and header["runtime"]["detector"]["every"] == 2
    assert Path(header["model"]).name.startswith("edgepose-default")  # model=None: the shipped model
    assert last["type"] == "summary" and last["frames"] == FRAMES
    assert json.loads(out.stats.read_text())["frames_with_faces"] == summary.frames_with_faces


def test_run_cli_and_demo_style_options_give_the_same_records(tmp_path, clip, yunet):
    """`edgepose run --dms` (flags) and the demo's way of filling RunOptions (given header, explicit
    events file, no detect_every / device) build the same run: identical faces and DMS status."""
    rc = cli(["run", str(clip), "--detector", "yunet", "--detector-model", str(yunet), "--threads", "1", "--quiet",
              "--max-frames", str(FRAMES), "--jsonl", str(tmp_path / "cli.jsonl"), "--dms", "euro-ncap-2023"])
    assert rc == 0
    demo_like = _options(clip, yunet, outputs=Outputs(jsonl=tmp_path / "lib.jsonl"), handle_signals=True,
                         header={"demo": True}, dms=DmsOptions("euro-ncap-2023", events=tmp_path / "ev.jsonl"))
    with build_run(demo_like) as run:
        summary = run.execute()
    cli_records, lib_records = _faces(tmp_path / "cli.jsonl"), _faces(tmp_path / "lib.jsonl")
    assert len(lib_records) == FRAMES and lib_records == cli_records
    assert any(r["status"] for r in lib_records), "the DMS observer adds status lines"
    assert summary.dms is not None and summary.dms["frames"] == FRAMES
    # the CLI's events went next to its JSONL, the library's where the options said
    assert (tmp_path / "cli.dms-events.jsonl").is_file() and (tmp_path / "ev.jsonl").is_file()
    assert json.loads((tmp_path / "lib.jsonl").read_text().splitlines()[0])["demo"] is True


def test_one_run_executes_again_after_reset(tmp_path, clip, yunet):
    """The benchmarks' use: a short warm-up pass, then repeats from a fresh tracker, one processor."""
    with build_run(_options(clip, yunet)) as run:
        warm = run.execute(max_frames=3)
        passes = []
        for i in range(2):
            run.reset()
            passes.append(run.execute(Outputs(jsonl=tmp_path / f"r{i}.jsonl")))
    assert warm.frames == 3 and [p.frames for p in passes] == [FRAMES, FRAMES]
    # a fresh tracker and filters: the same poses and boxes (track ids keep counting up, by design)
    r0, r1 = (_faces(tmp_path / f"r{i}.jsonl") for i in range(2))
    assert _strip_ids(r0) == _strip_ids(r1) and any(r["faces"] for r in r0)


class _Recorder:
    """A custom frame observer: counts frames, remembers close()."""

    def __init__(self, after=None):
        self.frames, self.closed, self.after = 0, False, after

    def __call__(self, result):
        self.frames += 1
        if self.after is not None and self.frames == self.after:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
        return [f"seen {self.frames}"]

    def close(self):
        self.closed = True


def test_ctrl_c_finishes_the_outputs_and_restores_the_handler(tmp_path, clip, yunet):
    before = signal.getsignal(signal.SIGINT)
    obs = _Recorder(after=4)
    opts = _options(clip, yunet, max_frames=None, handle_signals=True, observers=[obs],
                    outputs=Outputs(jsonl=tmp_path / "run.jsonl", video=tmp_path / "run.mp4"))
    with build_run(opts) as run:
        summary = run.execute()
    assert summary.interrupted and summary.frames == 4 and summary.frames_written == 4
    records = [json.loads(s) for s in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert records[-1]["type"] == "summary" and records[-1]["interrupted"] is True
    assert records[1]["status"] == ["seen 1"] and obs.closed
    assert signal.getsignal(signal.SIGINT) is before


def test_checks_come_before_anything_loads_or_opens(tmp_path, clip, yunet):
    with pytest.raises(UserError, match="--every must be at least 1"):
        build_run(_options(clip, yunet, every=0))
    with pytest.raises(UserError, match="not found|no such|does not exist"):
        build_run(_options(clip, yunet, source=str(tmp_path / "missing.mp4")))
    with pytest.raises(UserError, match="would destroy the input"):
        build_run(_options(clip, yunet, outputs=Outputs(jsonl=clip)))
    with pytest.raises(UserError, match="--mount file not found"):
        build_run(_options(clip, yunet, dms=DmsOptions("euro-ncap-2023", mount=tmp_path / "none.yaml")))
    assert not list(tmp_path.iterdir()), "a refused run writes nothing"


def test_observers_are_closed_when_the_processor_fails_to_build(tmp_path, clip, yunet):
    obs = _Recorder()
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError):
        build_run(_options(clip, yunet, model=tmp_path / "bad.onnx", observers=[obs],
                           dms=DmsOptions("euro-ncap-2023", events=tmp_path / "ev.jsonl")))
    assert obs.closed

"""The run record (edgepose.runrecord): one schema for every writer, readers that keep old files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepose import geometry, runrecord
from edgepose.dms.inputs import DmsInput, read_run_jsonl
from edgepose.dms.timeline import write_run_jsonl
from edgepose.errors import DataError
from edgepose.runtime.frame import FaceResult, FrameResult


def _face(yaw=25.0, mount=False, valid=True) -> FaceResult:
    R = geometry.euler_to_matrix([-4.123456, yaw + 0.0004567, 1.0])
    f = FaceResult(track_id=3, box=(50.123, 40.0, 150.987, 160.0), score=0.912345, R=R,
                   euler=geometry.matrix_to_euler(R), is_driver=True, valid=valid)
    if mount:
        f.R_vehicle = R @ geometry.euler_to_matrix([10.0, 0.0, 0.0]).T
        f.euler_vehicle = geometry.matrix_to_euler(f.R_vehicle)
    return f


def test_pipeline_record_round_trip(tmp_path):
    path = tmp_path / "run.jsonl"
    faces = [_face(mount=True), _face(yaw=-10, valid=False)]
    faces[1].R, faces[1].euler = np.full((3, 3), np.nan), np.full(3, np.nan)
    with runrecord.RunRecordWriter(path) as w:
        w.write(runrecord.header_record(source="test"))
        for i in range(3):
            w.write(runrecord.frame_record(i, i * 33_000_000, faces, {"pose": 1.23456}, ["status"] if i else None))
        w.write({"type": "summary", "schema": runrecord.SCHEMA, "frames": 3})
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"type": "header", "schema": "edgepose.run/1", "source": "test"}
    frames = runrecord.frame_records(path)
    assert [f["frame"] for f in frames] == [0, 1, 2] and "status" not in frames[0] and frames[1]["status"] == ["status"]
    for rec in lines:
        runrecord.validate_record(rec)
    good, bad = frames[0]["faces"]
    # the one rounding rule
    assert good["box"] == [50.12, 40.0, 150.99, 160.0] and good["score"] == 0.9123
    assert good["yaw"] == round(faces[0].euler[1], 3) and frames[0]["latency_ms"] == {"pose": 1.235}
    assert np.allclose(good["R"], faces[0].R, atol=5e-7) and len(good["R"]) == 3
    # vehicle frame: matrix and angles
    assert np.allclose(good["R_vehicle"], faces[0].R_vehicle, atol=5e-7)
    assert good["yaw_vehicle"] == round(faces[0].euler_vehicle[1], 3)
    # no finite pose: nulls and valid false, never NaN in the file
    assert bad["valid"] is False and bad["yaw"] is None and bad["R"][0] == [None] * 3
    inputs = list(read_run_jsonl(path))
    assert len(inputs) == 3 and np.allclose(inputs[0].R, faces[0].R, atol=1e-5)


def test_in_memory_dicts_use_the_record(tmp_path):
    face = _face(mount=True)
    d = face.to_dict()
    rec = runrecord.face_record(face)
    assert d["R"] == [v for row in rec["R"] for v in row]  # same numbers, historical flat layout
    assert {k: v for k, v in d.items() if not k.startswith("R")} == {k: v for k, v in rec.items()
                                                                    if not k.startswith("R")}
    fr = FrameResult(pts_ns=7, faces=[face], timings={"detect": 0.5}, frame_index=2, detected=True)
    out = fr.to_dict()
    assert out["type"] == "frame" and out["frame"] == 2 and out["detected"] is True
    assert out["latency_ms"] == {"detect": 0.5} and out["faces"] == [d]


def test_simulated_runs_are_run_records(tmp_path):
    """`edgepose dms simulate` writes the same record as `edgepose run` (header, typed frames, rounding)."""
    R = geometry.euler_to_matrix([5.0, -30.12345678, 2.0])
    frames = [DmsInput(t=k / 30, face_visible=k != 1, R=R if k != 1 else None, score=0.9, track_id=1)
              for k in range(4)]
    path = tmp_path / "sim.jsonl"
    write_run_jsonl(frames, path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["schema"] == runrecord.SCHEMA
    recs = runrecord.frame_records(path)
    assert [r["frame"] for r in recs] == [0, 1, 2, 3] and recs[1]["faces"] == []
    for rec in recs:
        runrecord.validate_record(rec)
    face = recs[0]["faces"][0]
    assert face["yaw"] == round(geometry.matrix_to_euler(R)[1], 3)
    assert set(face) == set(runrecord.face_record(_face()))
    assert [i.face_visible for i in read_run_jsonl(path)] == [True, False, True, True]


def test_old_untyped_files_stay_readable(tmp_path):
    """The layout `dms simulate` wrote before the record had one owner: no header, no type."""
    R = geometry.euler_to_matrix([0.0, 20.0, 0.0])
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(json.dumps({"pts_ns": k * 10**8, "faces": [
        {"track_id": None, "box": [0, 0, 9, 9], "score": None, "is_driver": True, "yaw": 20.0, "pitch": 0.0,
         "roll": 0.0, "R": np.round(R, 7).tolist()}]}) for k in range(3)) + "\n")
    assert len(runrecord.frame_records(path)) == 3
    inputs = list(read_run_jsonl(path))
    assert [i.t for i in inputs] == [0.0, 0.1, 0.2] and np.allclose(inputs[2].R, R, atol=1e-6)


@pytest.mark.parametrize("schema, match", [("edgepose.run/9", "another edgepose version"),
                                           ("edgepose.bench/1", "not a run record")])
def test_unknown_schema_is_one_line_error(tmp_path, schema, match):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"type": "header", "schema": schema}) + "\n"
                    + json.dumps({"type": "frame", "frame": 0, "pts_ns": 0, "faces": []}) + "\n")
    with pytest.raises(DataError, match=match):
        runrecord.frame_records(path)
    with pytest.raises(ValueError, match=match):
        runrecord.validate_record({"type": "header", "schema": schema})


def test_truncated_last_line_ends_the_file_but_a_bad_middle_line_is_an_error(tmp_path):
    rec = runrecord.dumps(runrecord.frame_record(0, 0, [_face()]))
    path = tmp_path / "cut.jsonl"
    path.write_text(rec + "\n" + rec[: len(rec) // 2])
    assert len(runrecord.frame_records(path)) == 1
    path.write_text(rec + "\n{oops\n" + rec + "\n")
    with pytest.raises(DataError, match=r"cut.jsonl:2: not valid JSON"):
        runrecord.frame_records(path)
    with pytest.raises(DataError, match="not found"):
        runrecord.frame_records(tmp_path / "missing.jsonl")


def test_image_folder_keys_are_checked_when_present():
    """Frames of an image folder name their image and size (optional keys: schema version 1 stays)."""
    rec = runrecord.frame_record(0, 0, [], {}, image="IMG_1.JPG", width=640, height=480)
    runrecord.validate_record(rec)
    assert runrecord.SCHEMA == "edgepose.run/1"
    with pytest.raises(ValueError, match="'image'"):
        runrecord.validate_record({**rec, "image": 3})
    with pytest.raises(ValueError, match="'width'"):
        runrecord.validate_record({**rec, "width": "640"})

"""``edgepose run DIR``: a folder of images is a source of its own (pipelines/images.py).

Real components: the shipped default pose model (ONNX Runtime), YuNet from the shared data, OpenCV's
decoders, the real CLI.  The photos (faces-aws: one face each) are copied into tmp_path.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edgepose.cli.main import main as cli
from edgepose.runrecord import frame_records, read_records, validate_record

cv2 = pytest.importorskip("cv2")

FAST = ["--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def yunet(data_file) -> Path:
    return data_file("detectors/yunet/yunet_s_320_320.onnx")


@pytest.fixture(scope="module")
def photos(data_file) -> list[Path]:
    return [data_file(f"faces-aws/IMG_{n}.JPG") for n in (1232, 1233, 1239, 1244)]


def _folder(tmp_path: Path, photos: list[Path], names: list[str], name: str = "photos") -> Path:
    """``names[i]`` <- ``photos[i]``; a .png name is re-encoded, a name with 'small' is half size."""
    d = tmp_path / name
    d.mkdir()
    for src, dst in zip(photos, names):
        img = cv2.imread(str(src))
        if "small" in dst:
            img = cv2.resize(img, (320, 240), interpolation=cv2.INTER_AREA)
        assert cv2.imwrite(str(d / dst), img)
    return d


def _run(source, yunet, *extra) -> int:
    return cli(["run", str(source), "--detector-model", str(yunet), *FAST, *extra])


def _sha(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_every_image_is_its_own_frame_with_its_faces(tmp_path, photos, yunet):
    """Faces on every image from the first (no two-hit confirmation), natural name order, records name
    their image and its size, ids restart per image, annotated copies under the same names."""
    names = ["shot10.jpg", "shot2.JPG", "Shot3_small.png", "shot1.jpeg"]
    src = _folder(tmp_path, photos, names)
    (src / "notes.txt").write_text("not an image\n")
    (src / "sub").mkdir()  # one level: subfolders are not read
    cv2.imwrite(str(src / "sub" / "deeper.jpg"), cv2.imread(str(photos[0])))
    before = _sha(src)
    out, meta = tmp_path / "annotated", tmp_path / "run.jsonl"
    assert _run(src, yunet, "--output", str(out), "--jsonl", str(meta), "--stats", str(tmp_path / "s.json")) == 0

    frames = frame_records(meta)
    for rec in frames:
        validate_record(rec)
    assert [r["image"] for r in frames] == ["shot1.jpeg", "shot2.JPG", "Shot3_small.png", "shot10.jpg"]
    assert all(len(r["faces"]) == 1 for r in frames), [len(r["faces"]) for r in frames]
    assert [r["faces"][0]["track_id"] for r in frames] == [1, 1, 1, 1]  # nothing carried from the last image
    assert [(r["width"], r["height"]) for r in frames] == [(640, 480), (640, 480), (320, 240), (640, 480)]
    assert [r["pts_ns"] for r in frames] == [0, 10**9, 2 * 10**9, 3 * 10**9]
    header = next(rec for _, rec in read_records(meta) if rec["type"] == "header")
    assert header["runtime"]["tracker"]["min_hits"] == 1

    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:  # decodable copies at the image's own size, with drawings on them
        copy, orig = cv2.imread(str(out / name)), cv2.imread(str(src / name))
        assert copy.shape == orig.shape
        assert float(abs(copy.astype(int) - orig.astype(int)).mean()) > 0.1
    assert _sha(src) == before  # the inputs are untouched
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] == 4 and stats["frames_with_faces"] == 4 and stats["frames_written"] == 4


def test_images_are_independent_of_their_order(tmp_path, photos, yunet):
    """The same images in the opposite order give the same faces: no smoothing, track or driver state
    flows from one image to the next (a One-Euro filter carried over would blend two images' poses)."""
    fwd = _folder(tmp_path, photos, [f"{i}_photo{i}.jpg" for i in range(4)], "fwd")
    rev = _folder(tmp_path, photos, [f"{3 - i}_photo{i}.jpg" for i in range(4)], "rev")
    results = {}
    for folder in (fwd, rev):
        meta = tmp_path / f"{folder.name}.jsonl"
        assert _run(folder, yunet, "--jsonl", str(meta)) == 0
        for rec in frame_records(meta):
            face = rec["faces"][0]
            results.setdefault(rec["image"].split("_")[1], []).append((face["box"], face["yaw"], face["pitch"], face["roll"]))
    assert len(results) == 4
    for key, (a, b) in results.items():
        assert a[0] == pytest.approx(b[0], abs=0.02) and a[1:] == pytest.approx(b[1:], abs=0.01), key
    yaws = [v[0][1] for v in results.values()]
    assert max(yaws) - min(yaws) > 20  # the photos do differ in pose (else the check above proves nothing)


def test_gray8_and_a_pattern(tmp_path, photos, yunet):
    """``file://DIR?format=GRAY8`` decodes to one channel; ``DIR/*.png`` takes the matching images only."""
    src = _folder(tmp_path, photos, ["one.png", "two.jpg", "three.png"])
    meta = tmp_path / "gray.jsonl"
    assert _run(f"file://{src}?format=GRAY8", yunet, "--jsonl", str(meta)) == 0
    header = next(rec for _, rec in read_records(meta) if rec["type"] == "header")
    frames = frame_records(meta)
    assert header["format"] == "GRAY8" and len(frames) == 3 and all(r["faces"] for r in frames)
    meta2, out = tmp_path / "png.jsonl", tmp_path / "out"
    assert _run(src / "*.png", yunet, "--jsonl", str(meta2), "--output", str(out)) == 0
    assert [r["image"] for r in frame_records(meta2)] == ["one.png", "three.png"]
    assert sorted(p.name for p in out.iterdir()) == ["one.png", "three.png"]


def test_a_corrupt_image_is_counted_and_the_rest_processed(tmp_path, photos, yunet, capsys):
    src = _folder(tmp_path, photos[:3], ["p1.jpg", "p3.jpg", "p5.jpg"])
    (src / "p2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (src / "p4.png").write_bytes(b"")
    meta, out = tmp_path / "run.jsonl", tmp_path / "out"
    assert _run(src, yunet, "--jsonl", str(meta), "--output", str(out)) == 0
    err = capsys.readouterr().err
    assert "2 images could not be decoded and were skipped (p2.jpg, p4.png)" in err
    frames = frame_records(meta)
    assert [r["image"] for r in frames] == ["p1.jpg", "p3.jpg", "p5.jpg"]
    assert [r["frame"] for r in frames] == [0, 1, 2] and [r["pts_ns"] // 10**9 for r in frames] == [0, 2, 4]
    assert all(r["faces"] for r in frames)
    summary = [rec for _, rec in read_records(meta) if rec["type"] == "summary"][0]
    assert summary["decode_errors"] == 2 and summary["undecodable"] == ["p2.jpg", "p4.png"]
    assert sorted(p.name for p in out.iterdir()) == ["p1.jpg", "p3.jpg", "p5.jpg"]


@pytest.mark.parametrize("case", ["output-is-input", "output-inside-input", "mp4-output", "jsonl-onto-image"])
def test_collisions_are_refused_and_the_inputs_survive(tmp_path, photos, yunet, capsys, case):
    src = _folder(tmp_path, photos[:2], ["x1.jpg", "x2.jpg"])
    before = _sha(src)
    extra, words = {
        "output-is-input": (["--output", str(src)], "is the source folder"),
        "output-inside-input": (["--output", str(src / "annotated"), "--jsonl", str(tmp_path / "r.jsonl")],
                                "or inside it"),
        "mp4-output": (["--output", str(tmp_path / "out.mp4")], "give a folder, e.g. --output photos-annotated"),
        "jsonl-onto-image": (["--jsonl", str(src / "x1.jpg")], "would destroy the input"),
    }[case]
    line = _one_error(capsys, _run(src, yunet, *extra))
    assert words in line, line
    assert _sha(src) == before  # no byte changed, nothing added
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("what", ["empty", "no-images", "no-match"])
def test_a_folder_without_images_is_one_line(tmp_path, capsys, what):
    d = tmp_path / "photos"
    d.mkdir()
    if what == "no-images":
        (d / "readme.txt").write_text("x")
        (d / "clip.mp4").write_bytes(b"\0" * 16)
    source = d / "*.png" if what == "no-match" else d
    line = _one_error(capsys, cli(["run", str(source), *FAST]))
    assert ("matches '*.png'" if what == "no-match" else "holds no images") in line, line

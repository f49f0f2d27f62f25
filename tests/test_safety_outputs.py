"""No output overwrites an input or another output, and every output is checked at start
(edgepose.io_safety; docs/runtime.md "Failure behaviour").

Each collision goes through the real CLI; the protected file's sha256 is compared before and after."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.cli.main import main
from edgepose.errors import UserError
from edgepose.io_safety import check_outputs, remove_stale_temporaries, same_file

REPO = Path(__file__).resolve().parents[1]
FP32 = REPO / "edgepose" / "assets" / "models" / "edgepose-default-fp32.onnx"


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _one_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------------------- the helper
def test_same_file_sees_symlinks_hard_links_and_relative_paths(tmp_path, monkeypatch):
    a = tmp_path / "a.mp4"
    a.write_bytes(b"x")
    (tmp_path / "sym.mp4").symlink_to(a)
    os.link(a, tmp_path / "hard.mp4")
    monkeypatch.chdir(tmp_path)
    assert same_file("a.mp4", a) and same_file("./sub/../a.mp4", a)
    assert same_file(tmp_path / "sym.mp4", a) and same_file(tmp_path / "hard.mp4", a)
    assert not same_file(tmp_path / "b.mp4", a)


def test_check_outputs_names_both_sides(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"video")
    with pytest.raises(UserError, match=r"--jsonl .* is the source"):
        check_outputs([("source", src)], [("--output", tmp_path / "o.mp4"), ("--jsonl", src)])
    with pytest.raises(UserError, match=r"--stats .* and --jsonl .* are the same file"):
        check_outputs([], [("--jsonl", tmp_path / "r.jsonl"), ("--stats", tmp_path / "x" / ".." / "r.jsonl")])
    check_outputs([("source", src), ("--config", None)], [("--output", tmp_path / "o.mp4"), ("--events", "-")])
    assert not (tmp_path / "o.mp4").exists()  # a check never creates the output itself


def test_folder_outputs_stay_out_of_input_folders(tmp_path):
    """An image folder's annotated copies: never into the folder read, nor below it (symlinks seen)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (tmp_path / "link").symlink_to(photos)
    for out in (photos, photos / "annotated", tmp_path / "link" / "a" / "b"):
        with pytest.raises(UserError, match="is the source folder .* or inside it"):
            check_outputs([], [], dir_outputs=[("--output", out)], input_dirs=[("source folder", photos)])
    for out in (tmp_path / "photos-annotated", tmp_path):  # a sibling, or a folder above: fine
        check_outputs([], [], dir_outputs=[("--output", out)], input_dirs=[("source folder", photos)])


def test_stale_temporaries_of_named_files_only(tmp_path):
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"0" * 100)
    (tmp_path / ".other.bin.x.tmp").write_bytes(b"1")
    (tmp_path / "last.pt").write_bytes(b"2")
    removed = remove_stale_temporaries(tmp_path, ["last.pt", "best.pt"])
    assert [(p.name, n) for p, n in removed] == [(".last.pt.abc123.tmp", 100)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.bin.x.tmp", "last.pt"]


# ---------------------------------------------------------------------------------------- every command
@pytest.fixture()
def files(tmp_path, data_file):
    """Copies of real inputs in tmp_path: a video, the FP32 model + sidecar, a checkpoint-named file."""
    video = tmp_path / "in.mp4"
    shutil.copy(data_file("videos/WolfgangLanger_Pexels.mp4"), video)
    model = tmp_path / "m.onnx"
    shutil.copy(FP32, model)
    shutil.copy(FP32.with_name(FP32.name + ".json"), tmp_path / "m.onnx.json")
    (tmp_path / "in.mp4.lnk").symlink_to(video)
    os.link(video, tmp_path / "hard.mp4")
    for name in ("ck.pt", "w.pt", "run.jsonl", "script.yaml"):
        (tmp_path / name).write_bytes(b"input bytes that must survive\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench.json").write_text("{}\n")
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "m-qat.pt").write_bytes(b"a previous QAT checkpoint\n")
    (tmp_path / "prev").mkdir()
    (tmp_path / "prev" / "best.pt").write_bytes(b"a previous distillation's student\n")
    return tmp_path


def _cases(t: Path, aflw: Path):
    """(argv, protected file, expected fragment of the error)."""
    v = str(t / "in.mp4")
    return {
        "run-output-is-source": (["run", v, "--output", v], t / "in.mp4", "is the source"),
        "run-jsonl-is-source": (["run", v, "--jsonl", v], t / "in.mp4", "is the source"),
        "run-output-symlink-to-source": (["run", v, "--output", str(t / "in.mp4.lnk")], t / "in.mp4", "is the source"),
        "run-stats-hard-link-to-source": (["run", v, "--stats", str(t / "hard.mp4")], t / "in.mp4", "is the source"),
        "run-output-is-jsonl": (["run", v, "--output", str(t / "o.mp4"), "--jsonl", str(t / "o.mp4")],
                                t / "in.mp4", "same file"),
        "run-dms-events-is-jsonl": (["run", v, "--jsonl", str(t / "r.jsonl"), "--dms", "euro-ncap-2023",
                                     "--dms-events", str(t / "r.jsonl")], t / "in.mp4", "same file"),
        "run-stats-is-model-sidecar": (["run", v, "--model", str(t / "m.onnx"), "--stats", str(t / "m.onnx.json")],
                                       t / "m.onnx.json", "sidecar"),
        "demo-source-is-its-output": (["demo", "--source", str(t / "d" / "annotated.mp4"), "--output", str(t / "d")],
                                      t / "d" / "annotated.mp4", "would destroy"),
        "eval-output-is-model": (["eval", str(t / "m.onnx"), "--data", f"aflw2000:{aflw}", "--output",
                                  str(t / "m.onnx")], t / "m.onnx", "is the model"),
        "export-output-is-checkpoint": (["export", str(t / "ck.pt"), "-o", str(t / "ck.pt")], t / "ck.pt",
                                        "is the checkpoint"),
        "quantize-qat-output-is-qat-input": (["quantize", str(t / "m.onnx"), "--calib", str(aflw), "-o", str(t / "q"),
                                              "--qat", str(t / "q" / "m-qat.pt")], t / "q" / "m-qat.pt", "--qat"),
        "import-output-is-weights": (["import", "hopenet", str(t / "w.pt"), "-o", str(t / "w.pt")], t / "w.pt",
                                     "weight file"),
        "dms-replay-events-is-run": (["dms", "replay", str(t / "run.jsonl"), "--events", str(t / "run.jsonl")],
                                     t / "run.jsonl", "run JSONL"),
        "dms-simulate-out-is-script": (["dms", "simulate", str(t / "script.yaml"), "--out", str(t / "script.yaml")],
                                       t / "script.yaml", "script"),
        "bench-out-holds-the-baseline": (["bench", "--compare", str(t / "bench" / "bench.json"), "--out",
                                          str(t / "bench")], t / "bench" / "bench.json", "--compare"),
        "engine-fp16-output-is-input": (["engine", "fp16", str(t / "m.onnx"), "-o", str(t / "m.onnx")], t / "m.onnx",
                                        "is the onnx"),
        "distill-into-the-teachers-run": (["distill", f"teacher={t / 'prev' / 'best.pt'}", f"out_dir={t / 'prev'}",
                                           f"data.unlabelled=[{aflw}]"], t / "prev" / "best.pt", "is the teacher"),
        "deepstream-config-onto-sidecar": (["jetson", "deepstream-config", str(t / "m.onnx"), "-o",
                                            str(t / "m.onnx.json")], t / "m.onnx.json", "sidecar"),
        "train-output-is-the-dataset": (["train", str(REPO / "configs" / "overfit-aflw2000.yaml"),
                                         f"data.train.root={t / 'data'}", f"data.val.root={t / 'data'}",
                                         f"output={t / 'data'}"], t / "data" / "image00050.jpg", "data.train root"),
    }


CASES = list(_cases(Path("/x"), Path("/y")))


@pytest.mark.parametrize("case", CASES)
def test_every_collision_is_refused_and_the_input_survives(case, files, aflw_dir, capsys):
    if case == "demo-source-is-its-output":
        (files / "d").mkdir()
        shutil.copy(files / "in.mp4", files / "d" / "annotated.mp4")
    if case == "train-output-is-the-dataset":
        shutil.copytree(aflw_dir, files / "data")
    argv, protected, fragment = _cases(files, aflw_dir)[case]
    before = {p: _sha(p) for p in files.rglob("*") if p.is_file()}
    listing = sorted(files.rglob("*"))
    line = _one_error(capsys, main(argv))
    assert fragment in line, line
    assert _sha(protected) == before[protected]
    assert {p: _sha(p) for p in before} == before  # no input changed
    assert sorted(files.rglob("*")) == listing  # and nothing was created


def test_a_real_process_refuses_output_onto_its_source(files):
    """The reported case end to end: `edgepose run in.mp4 --output in.mp4` (was: source overwritten, rc 0)."""
    before = _sha(files / "in.mp4")
    r = subprocess.run([sys.executable, "-m", "edgepose.cli.main", "run", str(files / "in.mp4"), "--output",
                        str(files / "in.mp4"), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")], r.stderr
    assert _sha(files / "in.mp4") == before

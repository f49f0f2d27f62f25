"""Configuration of the default-model build (``configs/default-model/build.yaml``), its constants and
the student's preprocessing, shared by :mod:`.build_data`, :mod:`.build_train` and :mod:`.build`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgepose.train.config import OptimConfig

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(__file__).resolve().parent / "models"
FILES = {"fp32": "edgepose-default-fp32.onnx", "int8-cpu": "edgepose-default-int8-cpu.onnx",
         "int8-tensorrt": "edgepose-default-int8-tensorrt.onnx"}
SIZE_BUDGET_BYTES = 5_000_000  # all shipped model files + sidecars together
MARGIN = 1.75  # stored real crops cover MARGIN x the student's crop (room for rotation + jitter)


@dataclass
class StudentSection:
    name: str = "mobilenetv3_small_075"
    input_size: int = 128
    # "teacher": start from the first teacher member's trunk, layer by layer where name and shape match
    # (edgepose.models.transfer) -- e.g. efficientnet_b0_s4 from WHENet's EfficientNet-B0; a checkpoint path
    # (.pt): that model's backbone + head (fine-tune an earlier build). None: from scratch.
    init: str | None = None
    # learning-rate factor for the initialised layers (the fresh head keeps optim.lr): a pretrained trunk
    # trained at a from-scratch learning rate forgets what it knew about faces it is not shown again
    init_lr_scale: float = 1.0


@dataclass
class DataSection:
    real: list[str] = field(default_factory=lambda: ["videos", "faces-aws", "in-cabin"])
    # held-out real media (other people than in `real`): labelled by the teacher like `real`, never trained
    # on; each epoch logs the student's distance from the teacher there (the only real-face validation that
    # needs no head-pose labels)
    real_val: list[str] = field(default_factory=list)
    # share of data.real moved to the held-out set, by whole source group (the `owner__repo__` prefix of a
    # file name, else the file): people who appear in one clip of a repository usually appear in its others
    real_val_split: float = 0.0
    # drop UTKFace-named images (`age_gender_race_date.jpg...`) of people younger than this: drivers are adults
    min_age: int = 0
    detector: str = "yunet"
    detector_model: str | None = "detectors/yunet/yunet_s_640_640.onnx"
    video_step: int = 2
    max_frames_per_video: int = 300
    max_faces: int = 6  # per frame: every passenger / classroom face is another identity
    min_face: int = 40  # px; smaller faces are too blurry for the teacher to label well
    pad_large_faces: bool = False  # detect faces that fill the frame (aligned crops) on a padded frame
    # weight each real face by how well the teachers agree on it (distill.teacher.agreement_weight)
    agreement_weighting: bool = False
    real_repeat: int = 4
    synth_n: int = 5000
    synth_full_fraction: float = 0.15
    synth_pose_range: str = "wide"
    synth_identities: int = 400
    synth_size: int = 128
    synth_val_n: int = 400
    synth_workers: int = 1      # processes rendering the synthetic heads (each render is a function of its index)
    # Profiled real faces (edgepose.assets.build_profiled, docs/models.md): the build's own TRAINING faces
    # re-rendered at large poses with their own pixels by edgepose.synth.profile, each labelled with its
    # ensemble label composed with the applied rotation. 0 = off.  Held-out people are profiled only into
    # the validation set (profiled_val_n), never into training.
    profiled_n: int = 0               # training renders (out_dir/profiled.npz)
    profiled_per_face: int = 1        # renders per source face (faces with the lowest teacher disagreement first)
    profiled_pose_range: str = "pitch=-60:60,yaw=-90:90,roll=-45:45"  # target poses (edgepose.synth.scene ranges)
    profiled_min_visibility: float = 0.3  # drop renders whose visible face is less backed by source pixels
    # only faces whose ensemble yaw is within this (deg) are sources: a profile turned back toward frontal shows
    # an invented far half and a mesh fit 18-22 deg off (docs/results/profiling.md)
    profiled_max_source_yaw: float = 30.0
    profiled_relight_fraction: float = 0.5  # renders relit by a key light on the turned normals
    profiled_val_n: int = 0           # renders of held-out people (out_dir/profiled-val.npz), validation only
    profiled_workers: int = 1         # render processes (same arrays for any number)


@dataclass
class OptimSection(OptimConfig):
    """``edgepose-train``'s optimizer section (name, lr, betas, grad_clip, ...) plus the loop's own settings."""

    lr: float = 3e-3
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    epochs: int = 12
    batch_size: int = 64
    warmup_steps: int = 100
    workers: int = 1
    # exponential moving average of the weights (0 = off): the averaged weights are validated, saved and
    # shipped. With a few hundred real identities the raw weights chase the last batches; the average
    # is the usual cheap regulariser for that.
    ema: float = 0.0
    # box consistency (edgepose.train.consistency): weight of the geodesic distance between the predictions for a
    # crop and for the same crop through a box moved by up to `consistency_shift` px and scaled by up to
    # +-`consistency_scale`, on `consistency_fraction` of each batch. 0 = off (v10 and earlier).
    consistency: float = 0.0
    consistency_fraction: float = 0.25
    consistency_shift: float = 2.0
    consistency_scale: float = 0.03
    # "both": the pair is pulled together (v12c-v17); "original": the original view's prediction is a fixed target
    # (no gradient), so only the moved view learns to agree and the supervised prediction is not pulled toward it
    consistency_target: str = "both"
    # quantization noise (edgepose.train.quant_noise): uniform noise of `quant_noise` INT8 steps on every BatchNorm
    # output while training, so that the INT8 files' roundings move the answer less. 0 = off (v12 and earlier).
    quant_noise: float = 0.0
    # the pose training's own seed (batch order, augmentation draws, the engine's torch seed); null = the build's
    # `seed`. The data sets (synthetic heads, profiled renders, calibration crops) follow `seed` alone, so a build
    # with another optim.seed trains on the same cached faces: a replicate, for measuring build-to-build spread
    seed: int | None = None


@dataclass
class RoiHeadsSection:
    """``roi_heads:`` in the build recipe."""

    enabled: bool = False           # run the stage at the end of `edgepose models build`
    model: str | None = None        # the built pose model (.pt); None = out_dir/last.pt
    out_dir: str | None = None      # where the stage writes; None = out_dir/roi-heads
    hidden: int = 64                # width of the heads' shared layer (512 -> 64 -> 1 + 4)
    negatives: list[str] = field(default_factory=lambda: ["videos/no_face.mp4"])  # face-free media (data root)
    # hard negatives: every box these detectors find on the face-free media is a no-face crop too ("NAME" from the
    # edgepose cache, or "NAME=PATH"): the presence score must reject exactly the false boxes ROI mode is fed
    hard_negative_detectors: list[str] = field(default_factory=list)
    boxes_per_frame: int = 24       # random boxes per negative frame
    frame_step: int = 1             # every Nth frame of a negative video
    val_fraction: float = 0.2       # the last share of each negative video's frames validates
    jitter_shift: float = 0.25      # positive boxes: centre shifted by up to this x the box size
    jitter_scale: float = 0.3       # ... and resized by a factor in [1/(1+s), 1+s]
    min_iou_positive: float = 0.5   # a jittered box must still overlap the face this much
    shifted_negatives: float = 0.5  # badly shifted boxes per real face (fraction of the faces)
    synth_positives: int = 3000     # synthetic heads inside synth_pose_range (presence only); 0 = none
    # profiled real faces (profiled.npz: the build's faces rendered at large poses, each with its detector box
    # carried to the render) with box targets: the box head must follow a face through glances, not only frontal
    profiled_positives: int = 3000
    synth_max_deg: list[float] = field(default_factory=lambda: [60.0, 95.0, 45.0])  # |pitch|, |yaw|, |roll|
    box_weight: float = 4.0         # smooth-L1 (crop units) against the binary cross-entropy
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.003
    weight_decay: float = 0.0001


@dataclass
class BuildConfig:
    student: StudentSection = field(default_factory=StudentSection)
    # One teacher or an ensemble (chordal mean of the members' rotations): "whenet" (imported) and/or
    # checkpoints of our own trained teachers (edgepose-train / configs/teachers). The first member's
    # crop policy becomes the student's.
    teacher: list[str] = field(default_factory=lambda: ["whenet"])
    data: DataSection = field(default_factory=DataSection)
    augment: dict = field(default_factory=dict)
    optim: OptimSection = field(default_factory=OptimSection)
    calib_crops: int = 256
    # INT8 calibration: minmax | entropy | percentile (quantize.ptq); chosen by the drift check on the
    # calibration crops (sidecar int8_drift), never by an evaluation set
    quant_method: str = "minmax"
    quant_percentile: float = 99.999
    # ``cpu`` INT8 profile: 7-bit weights or not.  Fixed here (not ``auto``, which asks the CPU doing
    # the build) so that the shipped files do not depend on which machine rebuilt them.
    reduce_range: str = "off"
    # activation equalization across ReLU before INT8 (quantize.equalize): None = off, else its strength alpha in
    # [0, 1] before dense convs; it leaves the FP32 file alone (docs/quantization.md, "Activation equalization")
    quant_equalize: float | None = None
    # test-time flip baked into the exported files (PoseModel.forward_flip_tta): the mean of the crop's and
    # its mirror image's prediction, at twice the backbone work. Training and its validation run without it.
    flip_tta: bool = False
    # how the FP32 file stores its weights: "float16" halves its bytes (same float32 arithmetic, weights rounded
    # to float16; edgepose.weight_storage) so that three files fit the package budget
    fp32_weight_storage: str = "float32"
    seed: int = 0
    threads: int = 1
    device: str = "cpu"        # training only ("cuda", "cuda:1"); labelling, export and INT8 run on the CPU
    amp: bool = False          # training in bf16 (CPU) / fp16 (CUDA) autocast
    out_dir: str = "runs/default-model"
    # face-presence + box heads on the frozen trunk (assets/build_roi.py; `--stage roi-heads` runs them alone)
    roi_heads: RoiHeadsSection = field(default_factory=RoiHeadsSection)

    def training_seed(self) -> int:
        """The pose training's seed: ``optim.seed`` when given, else the build's ``seed``."""
        return self.seed if self.optim.seed is None else int(self.optim.seed)


FORBIDDEN = ("aflw2000", "300wlp", "300w_lp", "biwi")  # evaluation fixtures / non-commercial data


def student_spec(cfg: BuildConfig, teacher_spec):
    """The student's preprocessing: the first teacher's (= deployment) crop policy at the student's size.
    A student that starts from that teacher's trunk (``student.init=teacher``) also keeps its colour order
    and normalisation: the copied filters were trained on exactly those numbers."""
    from edgepose.preprocess import PreprocessSpec

    if str(cfg.student.init) == "teacher":
        return PreprocessSpec(input_size=cfg.student.input_size, color_order=teacher_spec.color_order,
                              mean=tuple(teacher_spec.mean), std=tuple(teacher_spec.std), crop=teacher_spec.crop)
    return PreprocessSpec(input_size=cfg.student.input_size, color_order="RGB", crop=teacher_spec.crop)


def resolve_path(root: Path, p: str | None) -> Path | None:
    if p is None:
        return None
    q = Path(p).expanduser()
    return q if q.is_absolute() else root / q

"""The default-model build's cached face sets as a training/evaluation reader (dataset format ``faces_npz``).

    {format: faces_npz, root: runs/default-model-v10, parts: [real, profiled, synth]}
    {format: faces_npz, root: runs/default-model-v10, parts: [profiled-val], min_abs_yaw: 75}
    {format: faces_npz, root: runs/default-model-v10, parts: [synth-val], full_range_only: true}

Each part is ``<root>/<part>.npz`` as written by ``edgepose models build`` (edgepose/assets/build_data.py,
build_profiled.py; docs/models.md): ``images`` (BGR uint8 margin crops), ``boxes`` (the face box inside the
crop), ``R`` (real: the three-teacher ensemble label; profiled: that label composed with the applied turn;
synth: the exact render label) and, for real / profiled faces, ``sources`` (the media file a face came from).
Several parts make ONE reader, so a method that wraps one dataset (CLERF's pairs) sees all of them.

Arrays are loaded once per process and file (the table trains many rows on the same sets).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from .sample import Reader, Sample

__all__ = ["NpzFacesReader", "person_of"]

_MEMO: dict[tuple, dict[str, np.ndarray]] = {}
_KEYS = ("images", "boxes", "R")


def person_of(source: str) -> str:
    """Who is in a media file as far as its name tells (``owner__repo__clip`` -> ``owner__repo``), the rule of
    the build's held-out split (edgepose/assets/build_data.py ``source_group``); no folder part."""
    name = Path(str(source)).name
    parts = name.split("__")
    return "__".join(parts[:2]) if len(parts) >= 3 else name


def _load(path: Path) -> dict[str, np.ndarray]:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MEMO:
        with np.load(path, allow_pickle=False) as z:
            missing = set(_KEYS) - set(z.files)
            if missing:
                raise DataError(f"{path}: no {', '.join(sorted(missing))} array; give a default-model build's "
                                f"out_dir (real.npz, profiled.npz, synth.npz, *-val.npz)")
            data = {k: z[k] for k in _KEYS}
            for k in ("sources", "settings"):
                if k in z.files:
                    data[k] = z[k]
        _MEMO[key] = data
    return _MEMO[key]


class NpzFacesReader(Reader):
    """``parts`` of a build folder ``root`` as one labelled reader.

    ``min_abs_yaw``: keep faces whose label's |yaw| (edgepose.geometry Euler, deg) is above it (the full-range
    claim set). ``full_range_only``: a synthetic part keeps only its uniform-SO(3) share (the build renders
    ``n - round(n * full_fraction)`` heads of the narrow range first, then the full-range ones).
    ``n``: a random subset of that size (``seed``), for quick runs."""

    name = "faces_npz"

    def __init__(self, root: str, parts: list[str] | str = ("real", "profiled", "synth"),
                 min_abs_yaw: float | None = None, full_range_only: bool = False, n: int | None = None,
                 seed: int = 0):
        from ..geometry import matrix_to_euler

        self.root = Path(root).expanduser()
        parts = [parts] if isinstance(parts, str) else list(parts)
        if not parts:
            raise DataError("faces_npz: parts is empty; name the build's sets, e.g. [real, profiled, synth]")
        self.parts: list[tuple[str, dict[str, np.ndarray]]] = []
        index = []
        for k, part in enumerate(parts):
            path = self.root / f"{part}.npz"
            if not path.is_file():
                raise DataError(f"faces_npz: {path} not found; root must be a default-model build's out_dir "
                                f"(edgepose models build, docs/models.md)")
            data = _load(path)
            keep = np.arange(len(data["R"]))
            if full_range_only:
                if "settings" not in data:
                    raise DataError(f"faces_npz: {path} records no render settings; full_range_only needs a "
                                    f"synthetic set of the build (synth.npz / synth-val.npz)")
                s = json.loads(str(data["settings"]))
                keep = keep[len(keep) - int(round(s["n"] * s["full_fraction"])):]
            if min_abs_yaw is not None:
                yaw = np.abs(matrix_to_euler(data["R"][keep].astype(np.float64))[:, 1])
                keep = keep[yaw > float(min_abs_yaw)]
            self.parts.append((part, data))
            index.append(np.column_stack([np.full(len(keep), k), keep]))
        self.index = np.concatenate(index).astype(np.int64)
        if n is not None and int(n) < len(self.index):
            pick = np.sort(np.random.default_rng(int(seed)).choice(len(self.index), int(n), replace=False))
            self.index = self.index[pick]
        if len(self.index) == 0:
            raise DataError(f"faces_npz: no face of {parts} in {self.root} passes the filters "
                            f"(min_abs_yaw={min_abs_yaw}, full_range_only={full_range_only})")
        self._positives: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    def label(self, index: int) -> np.ndarray:
        k, i = self.index[index]
        return self.parts[k][1]["R"][i].astype(np.float64)

    def labels(self) -> np.ndarray:
        return np.stack([self.label(j) for j in range(len(self))])

    def person(self, index: int) -> str:
        k, i = self.index[index]
        part, data = self.parts[k]
        # synthetic heads carry no person record: each render counts as its own person
        return f"{part}:{person_of(data['sources'][i])}" if "sources" in data else f"{part}:#{i}"

    def get(self, index: int, rng: np.random.Generator | None = None) -> Sample:
        k, i = self.index[index]
        part, data = self.parts[k]
        return Sample(image=data["images"][i], R=data["R"][i].astype(np.float64),
                      box=tuple(float(v) for v in data["boxes"][i]), source=f"{part}:{i}",
                      extra={"part": part})

    # -- CLERF positives ------------------------------------------------------------------------
    def nearest_pose_positive(self, index: int, rng: np.random.Generator, k: int = 3) -> tuple[int, float]:
        """Another person's face whose label is among the ``k`` nearest (geodesic) to face ``index``'s:
        (its index, the distance in deg). CLERF wants another identity at the same pose; a build holds no
        exact same-pose pairs (the profiler draws one turn per face), so the nearest labels stand in."""
        if self._positives is None:
            self._positives = self._nearest(k)
        cand, dist = self._positives
        j = int(rng.integers(cand.shape[1]))
        return int(cand[index, j]), float(dist[index, j])

    def _nearest(self, k: int, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
        from ..geometry import matrix_to_quat

        q = matrix_to_quat(self.labels())
        persons = np.array([self.person(j) for j in range(len(self))])
        _, pid = np.unique(persons, return_inverse=True)
        cand = np.zeros((len(q), k), np.int64)
        dist = np.zeros((len(q), k), np.float64)
        for a in range(0, len(q), chunk):
            dot = np.abs(q[a:a + chunk] @ q.T)  # |<q, q'>| = cos(half the geodesic angle)
            dot[pid[a:a + chunk, None] == pid[None, :]] = -1.0  # never the same person (nor itself)
            top = np.argpartition(-dot, k, axis=1)[:, :k]
            cand[a:a + chunk] = top
            d = np.take_along_axis(dot, top, 1)
            dist[a:a + chunk] = np.degrees(2 * np.arccos(np.clip(d, -1.0, 1.0)))
        return cand, dist

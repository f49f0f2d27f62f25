"""One more ensemble member, measured on a build's cached faces (`edgepose-bench methods --suite real --as-member`):
the build's own robust mean reproduces the cached labels, a far-off candidate is trimmed and moves nothing, a close
one counts and moves the labels a little (benchmarks/ensemble_member.py)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import geometry
from edgepose.benchmarks.ensemble_member import ensemble_change


def _near(R: np.ndarray, deg: float, rng) -> np.ndarray:
    """Each rotation turned by exactly ``deg`` about a random axis (Rodrigues)."""
    axes = rng.normal(size=(len(R), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    K = np.zeros((len(axes), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
    K = K - np.transpose(K, (0, 2, 1))
    a = np.deg2rad(deg)
    return (np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K) @ R


@pytest.fixture()
def cache():
    """Three members 2-3 deg around frontal-ish truths, and the labels the build's rule gives them."""
    import torch

    from edgepose.distill.teacher import robust_rotation_mean

    rng = np.random.default_rng(0)
    truth = geometry.euler_to_matrix(np.stack([rng.uniform(-20, 20, 200), rng.uniform(-30, 30, 200),
                                               rng.uniform(-10, 10, 200)], axis=1))
    members = np.stack([_near(truth, d, rng) for d in (2.0, 3.0, 2.5)], axis=1)  # (N, M, 3, 3)
    valid = [90.0, None, 90.0]
    labels = robust_rotation_mean(torch.from_numpy(np.transpose(members, (1, 0, 2, 3)).copy()), valid)[0].numpy()
    return truth, members, labels, valid, rng


def test_the_rule_reproduces_the_cache_and_an_outlier_is_trimmed(cache):
    truth, members, labels, valid, rng = cache
    _, res = ensemble_change(members, labels, _near(truth, 40.0, rng), valid + [None])
    assert res["reproduced_deg"] < 1e-3  # arccos near 0: float noise only
    assert res["candidate_trimmed"] > 0.95  # 40 deg away from three agreeing members: left out
    assert res["label_move_median"] < 1e-3
    assert res["candidate_vs_labels_median"] == pytest.approx(40.0, abs=3.0)


def test_a_close_candidate_counts_and_moves_the_labels_a_little(cache):
    truth, members, labels, valid, rng = cache
    _, res = ensemble_change(members, labels, _near(truth, 2.0, rng), valid + [None])
    assert res["candidate_counts_fully"] > 0.9 and res["candidate_trimmed"] < 0.1
    assert 0.1 < res["label_move_median"] < 2.0
    assert res["agreement_weight_new"] > 0.9


def test_relabelled_caches_keep_the_profiler_rule_and_never_overwrite_the_build(tmp_path, cache):
    """--write: real / real-val take the new labels and teacher list; a profiled render's label is the new source
    label turned by its own Q (R_new[face] @ Q.T) with the new source digest; the build folder itself is refused."""
    import json

    from edgepose.assets.build_profiled import source_digest
    from edgepose.benchmarks.ensemble_member import member_effect, write_relabelled
    from edgepose.errors import UserError

    truth, members, labels, valid, rng = cache
    build, out = tmp_path / "build", tmp_path / "relabelled"
    build.mkdir()
    n = len(labels)
    for src, prof in (("real", "profiled"), ("real-val", "profiled-val")):
        np.savez(build / f"{src}.npz", images=np.zeros((n, 8, 8, 3), np.uint8), boxes=np.ones((n, 4), np.float32),
                 R=labels.astype(np.float32), member_R=members.astype(np.float32),
                 disagreement=np.ones(n, np.float32), sources=np.asarray([f"s{i}" for i in range(n)]),
                 teachers=np.asarray(["3ddfa-v2", "whenet", "fsanet"]))
        face = rng.integers(0, n, 30).astype(np.int32)
        Q = geometry.random_rotations(30, rng).astype(np.float32)
        np.savez(build / f"{prof}.npz", images=np.zeros((30, 8, 8, 3), np.uint8), R=np.zeros((30, 3, 3), np.float32),
                 Q=Q, face=face, disagreement=np.zeros(30, np.float32), settings=np.asarray(json.dumps({"source": "x"})))
    np.savez(build / "synth.npz", R=np.zeros((2, 3, 3), np.float32))
    cand = _near(truth, 2.0, rng)
    new = {}
    for src in ("real", "real-val"):
        new[src], _ = ensemble_change(members, labels, cand, valid + [None])
    written = write_relabelled(build, out, new, ["3ddfa-v2", "whenet", "fsanet", "mine.pt"])
    assert sorted(written) == ["profiled-val.npz", "profiled.npz", "real-val.npz", "real.npz", "synth.npz"]
    real, prof = dict(np.load(out / "real.npz")), dict(np.load(out / "profiled.npz"))
    assert list(real["teachers"]) == ["3ddfa-v2", "whenet", "fsanet", "mine.pt"] and real["member_R"].shape[1] == 4
    expect = new["real"]["R"][prof["face"]].astype(np.float64) @ np.transpose(prof["Q"].astype(np.float64), (0, 2, 1))
    assert np.abs(prof["R"] - expect).max() < 1e-5
    assert json.loads(str(prof["settings"]))["source"] == source_digest(real)
    with pytest.raises(UserError, match="the build folder itself"):
        member_effect(build, "mine.pt", write=build)

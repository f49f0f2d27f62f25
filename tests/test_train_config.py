"""edgepose-train configuration, schedules, method registry and dataset shorthands (no training)."""
from __future__ import annotations


import pytest

from edgepose.config import ConfigError
from edgepose.errors import DataError
from edgepose.train import config as tc
from edgepose.methods.method import Method, SupervisedMethod, get_method, list_methods, register_method
from edgepose.train.schedules import lr_factor

CONFIGS = ["baseline-6d.yaml", "hopenet-bins.yaml", "ldl.yaml", "overfit-aflw2000.yaml"]


@pytest.mark.parametrize("name", CONFIGS)
def test_recipes_load(repo_root, name):
    cfg = tc.load_train_config(repo_root / "configs" / name)
    assert cfg.epochs >= 1 and cfg.batch_size >= 1
    assert cfg.data.train.get("format")


def test_overrides_are_typed(repo_root):
    cfg = tc.load_train_config(repo_root / "configs" / "overfit-aflw2000.yaml",
                               ["optim.lr=3e-4", "epochs=2", "model.name=mobilenetv3_small", "amp=true"])
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.epochs == 2 and cfg.amp is True
    assert cfg.model.name == "mobilenetv3_small"


@pytest.mark.parametrize("override, match", [
    (["optim.lrr=1"], "optim.lrr"),
    (["nonsense=1"], "nonsense"),
    (["epochs=0"], "epochs"),
    (["optim.name=lbfgs"], "optim.name"),
    (["sched.name=poly"], "sched.name"),
    (["model.head=euler"], "model.head"),
    (["device=tpu"], "device"),
    (["loss.geodesik=1"], "loss.geodesik"),
    (["data.train={}"], "data.train"),
])
def test_bad_config_is_a_clear_error(repo_root, override, match):
    with pytest.raises(ConfigError, match=match):
        tc.load_train_config(repo_root / "configs" / "overfit-aflw2000.yaml", override)


def test_warmup_then_cosine():
    s = tc.SchedConfig(name="cosine", warmup_iters=10, warmup_start=0.1, min_lr_ratio=0.0)
    f = [lr_factor(i, s, iters_per_epoch=10, epochs=5) for i in range(50)]
    assert f[0] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(f[:10], f[1:11]))  # rising warm-up
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # monotone decay
    assert f[-1] < 0.01
    mid = 10 + 20  # half-way through the cosine span
    assert f[mid] == pytest.approx(0.5, abs=1e-9)


def test_step_schedule_and_warmup_epochs():
    s = tc.SchedConfig(name="step", milestones=[2, 4], gamma=0.1, warmup_epochs=0.5, warmup_start=0.0)
    assert lr_factor(0, s, 10, 6) == 0.0
    assert lr_factor(5, s, 10, 6) == pytest.approx(1.0)
    assert lr_factor(19, s, 10, 6) == pytest.approx(1.0)
    assert lr_factor(20, s, 10, 6) == pytest.approx(0.1)
    assert lr_factor(45, s, 10, 6) == pytest.approx(0.01)
    assert lr_factor(3, tc.SchedConfig(name="constant"), 10, 6) == 1.0


def test_method_registry():
    assert "supervised" in list_methods()
    assert get_method("supervised") is SupervisedMethod

    @register_method("unit-test-method")
    class Custom(Method):
        pass

    assert get_method("unit-test-method") is Custom
    assert get_method("edgepose.methods.method:SupervisedMethod") is SupervisedMethod
    with pytest.raises(ConfigError, match="unknown training method"):
        get_method("no-such-method")
    with pytest.raises(ConfigError, match="cannot load"):
        get_method("edgepose.methods.method:Missing")


def test_supervised_method_rejects_options():
    with pytest.raises(ConfigError, match="no options"):
        SupervisedMethod(tc.TrainConfig(), {"temperature": 2})


def test_parse_data_arg():
    from edgepose.data.options import parse_data_arg

    assert parse_data_arg("aflw2000:/x/y") == {"format": "aflw2000", "root": "/x/y"}
    assert parse_data_arg("aflw2000:/x,crop=landmarks,filter99=false") == {
        "format": "aflw2000", "root": "/x", "crop": "landmarks", "filter99": False}
    assert parse_data_arg("folder:/a/labels.csv")["labels"] == "/a/labels.csv"
    with pytest.raises(DataError, match="format:path"):
        parse_data_arg("just-a-path")
    with pytest.raises(DataError, match="unknown dataset format"):
        parse_data_arg("nope:/x")


def test_overrides_index_into_lists():
    from edgepose.config import apply_overrides

    data = {"peers": [{"name": "a", "source": {"path": "x.pt"}}, {"name": "b"}], "sizes": [112, 128]}
    apply_overrides(data, ["peers.0.source.path=runs/t/best.pt", "peers.-1.name=c", "sizes.1=160"])
    assert data == {"peers": [{"name": "a", "source": {"path": "runs/t/best.pt"}}, {"name": "c"}], "sizes": [112, 160]}
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides(data, ["peers.5.name=z"])
    with pytest.raises(ConfigError, match="use its index"):
        apply_overrides(data, ["peers.first.name=z"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides(data, ["sizes.0.x=1"])


def test_bench_suite_peer_path_override(repo_root):
    from edgepose.benchmarks.suite import load_suite

    base, _ = load_suite("default")
    i = [p.name for p in base.peers].index("teacher")  # the position moves as imported peers are added
    suite, _ = load_suite("default", [f"peers.{i}.source.path=runs/my-teacher/best.pt"])
    assert [p for p in suite.peers if p.name == "teacher"][0].source.path == "runs/my-teacher/best.pt"

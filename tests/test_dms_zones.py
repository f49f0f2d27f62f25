"""Zones + hysteresis, RHD mirroring, camera mount formula and neutral-pose calibration."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import geometry
from edgepose.dms.calibration import NeutralCalibrator, modal_rotation
from edgepose.dms.config import CalibrationConfig, DmsConfigError, load_preset
from edgepose.dms.engine import DmsEngine
from edgepose.dms.inputs import DmsInput
from edgepose.dms.mount import CameraMount
from edgepose.dms.timeline import Script, Segment, synthesize
from edgepose.dms.zones import OTHER_ZONE, ZoneTracker, build_zones


@pytest.fixture(scope="module")
def cfg():
    return load_preset("euro-ncap-2023", ["calibration.mode=off"])


def test_preset_zones_valid(cfg):
    zones = build_zones(cfg)
    assert sum(z.is_road for z in zones) == 1
    road = next(z for z in zones if z.is_road)
    assert road.signed_distance(0, 0) > 5  # straight ahead is well inside the road zone
    tr = ZoneTracker(zones, 2, 3)
    # LHD: the right mirror and the infotainment are to the driver's right (+yaw), the left mirror left
    assert tr.update(55, -5) == "right_mirror"
    tr.reset()
    assert tr.update(-50, -3) == "left_mirror"
    tr.reset()
    assert tr.update(0, -55) == "lap"
    tr.reset()
    assert tr.update(170, 0) == OTHER_ZONE


def test_hysteresis_no_flicker_at_boundary(cfg):
    zones = build_zones(cfg)
    tr = ZoneTracker(zones, cfg.enter_margin_deg, cfg.exit_margin_deg)
    edge = 22.0  # forward_road yaw edge toward the infotainment side is 22; no zone to +yaw at pitch 0 until 40
    assert tr.update(0, 0) == "forward_road"
    rng = np.random.default_rng(1)
    # noise of +-2 deg around the edge: a plain classifier would flip dozens of times
    seq = [tr.update(edge + rng.uniform(-2, 2), 0) for _ in range(300)]
    assert set(seq) == {"forward_road"}
    plain = [next(z.name for z in zones if z.signed_distance(edge + d, 0) >= 0) if any(
        z.signed_distance(edge + d, 0) >= 0 for z in zones) else OTHER_ZONE for d in rng.uniform(-2, 2, 300)]
    assert len(set(plain)) == 2  # the test pattern really straddles the edge
    # clearly out (beyond the exit margin): leaves
    assert tr.update(edge + 3.5, 0) == OTHER_ZONE
    # and coming back needs the entry margin
    assert tr.update(edge - 1.0, 0) == OTHER_ZONE
    assert tr.update(edge - 2.5, 0) == "forward_road"


def test_hysteresis_between_adjacent_zones(cfg):
    tr = ZoneTracker(build_zones(cfg), cfg.enter_margin_deg, cfg.exit_margin_deg)
    # forward_road pitch [-10, 12] touches cluster pitch [-32, -10]
    assert tr.update(0, 0) == "forward_road"
    assert all(tr.update(0, p) == "forward_road" for p in (-10.5, -9.5, -11.0, -12.5, -10.0))
    assert tr.update(0, -13.5) == "cluster"
    assert all(tr.update(0, p) == "cluster" for p in (-9.5, -8.0, -7.5))
    assert tr.update(0, -6.0) == "forward_road"


def test_rhd_mirrors_layout():
    lhd = {z.name: z for z in build_zones(load_preset("euro-ncap-2023"))}
    rhd = {z.name: z for z in build_zones(load_preset("euro-ncap-2023", ["drive_side=rhd"]))}
    assert set(lhd) == set(rhd)
    for name in ("left_mirror", "right_mirror", "infotainment", "rear_mirror"):
        other = name.replace("left", "R").replace("right", "left").replace("R", "right")
        # RHD left mirror (far, passenger side) = mirror image of the LHD right mirror
        for yaw, pitch in lhd[other].polygon:
            assert rhd[name].signed_distance(-yaw, pitch) == pytest.approx(0.0, abs=1e-9)
    y = rhd["infotainment"].polygon[:, 0]
    assert y.max() < 0  # the centre console is to the driver's LEFT in a RHD car


def test_bad_zone_configs():
    with pytest.raises(DmsConfigError, match="road"):
        load_preset("euro-ncap-2023", ["zones=[{name: a, category: driving, yaw: [0, 1], pitch: [0, 1]}]"])
    with pytest.raises(DmsConfigError, match="category"):
        load_preset("euro-ncap-2023", ["zones=[{name: a, category: sky, yaw: [0, 1], pitch: [0, 1]}]"])
    cfg = load_preset("euro-ncap-2023", ["zones=[{name: a, category: road, yaw: [0, 1]}]"])
    with pytest.raises(DmsConfigError, match="pitch"):
        build_zones(cfg)
    with pytest.raises(DmsConfigError, match="not found"):
        load_preset("no-such-preset")
    with pytest.raises(DmsConfigError, match="unknown config key"):
        load_preset("euro-ncap-2023", ["long_distraction.treshold_s=2"])
    with pytest.raises(DmsConfigError, match="drive_side"):
        load_preset("euro-ncap-2023", ["drive_side=middle"])


def test_polygon_zone(cfg):
    cfg2 = load_preset("euro-ncap-2023", ["calibration.mode=off"])
    from edgepose.dms.config import ZoneConfig

    cfg2.zones.append(ZoneConfig(name="tri", category="non_driving", polygon=[[100, 30], [140, 30], [120, 60]]))
    z = build_zones(cfg2)[-1]
    assert z.signed_distance(120, 40) > 0 and z.signed_distance(100, 50) < 0


# --- mount --------------------------------------------------------------------------------------

def test_mount_formula_matches_camera_frame_form():
    rng = np.random.default_rng(3)
    mount = CameraMount.from_road_pose(pitch=18, yaw=25, roll=4)
    for R in geometry.random_rotations(20, rng):
        Rv = mount.to_vehicle(R)
        # camera-frame form: R_vehicle_head = R_vehicle_cam . R_cam_head with R_cam_head = R^T
        assert np.allclose(Rv.T, mount.R_vehicle_cam @ R.T, atol=1e-12)
        assert geometry.is_rotation(Rv)


def test_mount_road_pose_definition():
    # by definition: the camera-frame road pose maps to straight ahead in the vehicle frame
    mount = CameraMount.from_road_pose(pitch=15, yaw=-30, roll=2)
    assert np.allclose(mount.to_vehicle(geometry.euler_to_matrix([15, -30, 2])), np.eye(3), atol=1e-12)
    # a camera below the line of sight (sees the road-looking driver pitched up): looking into the lens
    # (frontal in the camera) is looking DOWN in the vehicle frame
    p, y, _ = geometry.matrix_to_euler(CameraMount.from_road_pose(pitch=20).to_vehicle(np.eye(3)))
    assert p == pytest.approx(-20) and y == pytest.approx(0, abs=1e-9)


def test_mount_matches_runtime_vehicle_frame():
    camera = pytest.importorskip("edgepose.runtime.camera", reason="runtime not available")
    rng = np.random.default_rng(7)
    pose = [12.0, -20.0, 3.0]
    R = geometry.random_rotations(5, rng)
    assert np.allclose(CameraMount.from_road_pose(*pose).to_vehicle(R), camera.VehicleFrame.from_euler(pose).apply(R))


def test_mount_file(tmp_path):
    f = tmp_path / "mount.yaml"
    f.write_text("road_pose_deg: [15, -30, 0]\n")
    a = CameraMount.from_file(f)
    f.write_text(f"R_vehicle_cam: {a.R_vehicle_cam.tolist()}\n")
    assert np.allclose(CameraMount.from_file(f).R_vehicle_cam, a.R_vehicle_cam)
    f.write_text("pose: {model: x}\nvehicle:\n  road_pose_deg: [15, -30, 0]\n")  # a runtime config
    assert np.allclose(CameraMount.from_file(f).R_vehicle_cam, a.R_vehicle_cam)
    for bad, msg in (("road_pose_deg: [left, 0, 0]\n", "numbers"), ("road_pose_deg: [1, 2]\n", "pitch, yaw, roll"),
                     ("R_vehicle_cam: [[1, 0], [0, 1]]\n", "3x3"),
                     ("R_vehicle_cam: [[2, 0, 0], [0, 1, 0], [0, 0, 1]]\n", "rotation"), ("yaw: 3\n", "unknown"),
                     ("- 1\n", "mapping"), ("description: x\n", "exactly one")):
        f.write_text(bad)
        with pytest.raises(DmsConfigError, match=msg):
            CameraMount.from_file(f)
    with pytest.raises(DmsConfigError, match="cannot read"):
        CameraMount.from_file(tmp_path / "missing.yaml")


def test_mounted_camera_timeline_classifies_in_vehicle_frame(cfg):
    mount = CameraMount.from_road_pose(pitch=15, yaw=35, roll=3)
    frames, _ = synthesize(Script(10, 0, [Segment(1, "forward_road"), Segment(1, "infotainment")]), build_zones(cfg), mount)
    # camera-relative poses are far from the vehicle frame ...
    p, y, _ = geometry.matrix_to_euler(frames[0].R)
    assert abs(y) > 20
    # ... and the engine with the mount recovers the zones
    eng = DmsEngine(cfg, mount=mount)
    zones = []
    for f in frames:
        eng.step(f)
        zones.append(eng.zone)
    assert zones[:10] == ["forward_road"] * 10 and zones[10:] == ["infotainment"] * 10
    # without the mount they are wrong
    eng = DmsEngine(cfg)
    eng.step(frames[0])
    assert eng.zone != "forward_road"


# --- calibration ------------------------------------------------------------------------------

def _noisy(rng, n, pyr, sigma):
    return geometry.euler_to_matrix(np.asarray(pyr) + rng.normal(0, sigma, (n, 3)))


def test_modal_rotation_robust_to_glances():
    rng = np.random.default_rng(5)
    neutral = [-7.0, 5.0, 2.0]
    Rs = np.concatenate([_noisy(rng, 140, neutral, 1.5), _noisy(rng, 40, [-30, 30, 0], 2.0), _noisy(rng, 20, [5, -50, 0], 2.0)])
    rng.shuffle(Rs)
    R_n, inl = modal_rotation(Rs, 10.0)
    assert geometry.geodesic_distance(R_n, geometry.euler_to_matrix(neutral)) < 1.0
    assert 0.6 < inl.mean() < 0.8
    # a plain mean would be pulled several degrees off
    from edgepose.dms.calibration import rotation_mean

    assert geometry.geodesic_distance(rotation_mean(Rs), geometry.euler_to_matrix(neutral)) > 3.0


def test_auto_calibration_removes_offset():
    cfg = load_preset("euro-ncap-2023", ["calibration.duration_s=3", "status_every_s=0"])
    eng = DmsEngine(cfg)
    rng = np.random.default_rng(2)
    # the driver's "road" pose is 12 deg right and 8 deg down of the mount's forward (bad mount)
    offset = geometry.euler_to_matrix([-8.0, 12.0, 0.0])
    t, events = 0.0, []
    for i in range(150):
        t = i / 30
        R = geometry.euler_to_matrix(rng.normal(0, 1.0, 3)) @ offset
        events += eng.step(DmsInput(t=t, face_visible=True, R=R))
    cal = [e for e in events if getattr(e, "type", None) == "calibrated"]
    assert len(cal) == 1 and cal[0].t >= 0.98 * 3.0  # a full window (within a frame or two)
    assert cal[0].details["neutral"]["yaw"] == pytest.approx(12.0, abs=1.0)
    assert eng.calibrator.calibrated
    eng.step(DmsInput(t=t + 0.1, face_visible=True, R=offset))
    assert abs(eng.yaw) < 1.0 and abs(eng.pitch) < 1.0 and eng.zone == "forward_road"


def test_calibration_waits_for_stability_and_speed():
    c = CalibrationConfig(mode="auto", duration_s=2.0, min_speed_kmh=30, inlier_deg=8, min_inlier_fraction=0.6)
    cal = NeutralCalibrator(c)
    rng = np.random.default_rng(4)
    t = 0.0
    # parked: ignored
    for i in range(90):
        t += 1 / 30
        assert cal.add(t, np.eye(3), 0.0) is None
    # moving but looking all over the place: no stable mode
    for i in range(90):
        t += 1 / 30
        assert cal.add(t, geometry.euler_to_matrix(rng.uniform(-40, 40, 3)), 60.0) is None
    # stable: completes within ~duration_s
    res = None
    for i in range(120):
        t += 1 / 30
        res = res or cal.add(t, geometry.euler_to_matrix(rng.normal(0, 1, 3)), 60.0)
    assert res is not None and cal.calibrated


def test_recalibrate_on_command():
    cfg = load_preset("euro-ncap-2023", ["calibration.mode=command", "calibration.duration_s=1", "status_every_s=0"])
    eng = DmsEngine(cfg)
    R_seat = geometry.euler_to_matrix([-5.0, 9.0, 0.0])
    for i in range(60):
        eng.step(DmsInput(t=i / 30, face_visible=True, R=R_seat))
    assert not eng.calibrator.calibrated  # command mode: nothing until requested
    eng.recalibrate()
    out = []
    for i in range(60, 120):
        out += eng.step(DmsInput(t=i / 30, face_visible=True, R=R_seat))
    assert eng.calibrator.calibrated and any(getattr(e, "type", "") == "calibrated" for e in out)
    assert abs(eng.yaw) < 1e-6


def test_calibration_rejects_implausible_neutral():
    c = CalibrationConfig(mode="auto", duration_s=1.0, max_offset_deg=30)
    cal = NeutralCalibrator(c)
    R = geometry.euler_to_matrix([0.0, 60.0, 0.0])  # "road" 60 deg to the side: the mount is wrong
    assert all(cal.add(i / 30, R, None) is None for i in range(90))
    assert not cal.calibrated

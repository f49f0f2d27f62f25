"""tegrastats parsing on recorded lines from several Jetson generations, the sampler, energy."""
from __future__ import annotations

import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgepose.benchmarks.board import board_state_from_power
from edgepose.benchmarks.tegrastats import TegrastatsSampler, parse_line, parse_lines, summarize_power
from edgepose.errors import UserError

DATA = Path(__file__).parent / "data" / "tegrastats"


def _samples(name: str):
    text = (DATA / name).read_text()
    assert text.startswith("#") and "source" in text  # every recording names where it came from
    return parse_lines(text.splitlines())


def test_every_recording_parses():
    files = sorted(DATA.glob("*.txt"))
    assert len(files) >= 5
    for f in files:
        samples = _samples(f.name)
        assert samples, f.name
        for s in samples:
            assert s.total_mw and s.total_mw > 0, f.name
            assert s.ram_used_mb and s.ram_total_mb and s.ram_used_mb <= s.ram_total_mb
            assert s.cpu_load and all(v is None or 0 <= v <= 100 for v in s.cpu_load)
            assert s.max_temp_c is None or 0 < s.max_temp_c < 110


def test_orin_nx_jp5_rails_in_mw():
    (s,) = _samples("orin_nx_jp5.txt")
    assert s.rails_mw == {"VDD_IN": 5299.0, "VDD_CPU_GPU_CV": 773.0, "VDD_SOC": 1424.0}
    assert s.total_source == "VDD_IN" and s.total_mw == 5299.0 and s.compute_mw == 773.0
    assert s.cpu_load == [6.0, 9.0, 5.0, 16.0, None, None, None, None]  # 'off' cores stay None
    assert s.cpu_freq_mhz[:4] == [729] * 4
    assert s.gr3d_pct == 0.0 and s.gr3d_freq_mhz == [611]
    assert s.emc_pct == 0.0 and s.emc_freq_mhz == 2133
    assert s.temps_c["tj"] == pytest.approx(48.875) and s.max_temp_c == pytest.approx(48.875)


def test_orin_nano_jp6_timestamp_and_lowercase_sensors():
    (s,) = _samples("orin_nano_jp6.txt")
    assert s.timestamp == "07-14-2025 10:29:36"
    assert s.total_mw == 4556.0 and s.compute_mw == 483.0 and s.rails_avg_mw["VDD_SOC"] == 1451.0
    assert set(s.temps_c) >= {"cpu", "gpu", "tj", "soc0"}
    assert s.ram_used_mb == 2147 and len(s.cpu_load) == 6


def test_agx_orin_sums_rails_and_drops_off_sensors():
    s1, s2, s3 = _samples("agx_orin_jp6.txt")
    # no VDD_IN on AGX Orin: board power = the sum of the rails (jetson-stats' rule); NC channels dropped
    assert "NC" not in s1.rails_mw and s1.total_source == "sum of rails"
    assert s1.total_mw == 2340 + 390 + 4025 + 301
    assert s1.compute_mw == 2340 + 390  # VDD_GPU_SOC + VDD_CPU_CV
    assert "GPU" not in s1.temps_c and "CV0" not in s1.temps_c  # -256C = powered-off sensor
    assert s2.gr3d_freq_mhz == [305, 305]  # two GPCs
    assert s2.total_mw == 3205 + 4405 + 4767
    assert s3.cpu_load_mean == 0.0 and s3.total_mw == 4940 + 988 + 4442


def test_jetpack4_boards_without_units():
    (nx,) = _samples("xavier_nx_jp4.txt")
    assert nx.rails_mw["VDD_IN"] == 4067.0 and nx.compute_mw == 738.0 and nx.gr3d_pct == 62.0
    assert nx.temps_c["PMIC"] == 100.0 and nx.max_temp_c == 43.5  # PMIC's fixed 100C is not a reading
    (nano,) = _samples("nano_jp4.txt")
    assert nano.total_source == "POM_5V_IN" and nano.total_mw == 1022.0
    assert nano.compute_mw == 204.0  # POM_5V_CPU + POM_5V_GPU
    assert "IRAM" not in nano.rails_mw and "RAM" not in nano.rails_mw
    (agx,) = _samples("agx_xavier_jp4.txt")
    assert agx.total_mw == 0 + 311 + 932 + 0 + 621 + 1482 and agx.compute_mw == 311.0
    tx2a, tx2b = _samples("tx2_jp4.txt")
    assert tx2a.total_mw == 3056.0 and tx2b.rails_avg_mw["VDD_IN"] == 3208.0
    assert tx2a.cpu_load[1] is None and tx2a.compute_mw == 152 + 152


def test_non_statistics_lines():
    assert parse_line("") is None and parse_line("# comment VDD_IN 5mW/5mW") is None
    assert parse_line("tegrastats: unknown option") is None


def test_summarize_power_energy():
    samples = _samples("tx2_jp4.txt")
    p = summarize_power(samples, duration_s=2.0, inferences=100)
    mean_mw = (3056 + 3140) / 2
    assert p["samples"] == 2 and p["total_w"] == pytest.approx(mean_mw / 1000)
    assert p["energy_mj"] == pytest.approx(mean_mw * 2.0)  # mW x s = mJ
    assert p["energy_mj_per_inference"] == pytest.approx(mean_mw * 2.0 / 100)
    assert p["max_temp_c"] == pytest.approx(42.5)
    assert summarize_power([], 1.0) == {"samples": 0}


def _player(tmp_path: Path, lines: list[str]) -> Path:
    """A stand-in `tegrastats` that prints recorded lines at the requested interval."""
    script = tmp_path / "tegrastats"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, time
        interval = int(sys.argv[sys.argv.index("--interval") + 1]) / 1000
        lines = {lines!r}
        i = 0
        while True:
            print(lines[i % len(lines)], flush=True)
            i += 1
            time.sleep(interval)
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_sampler_reads_lines_in_time_windows(tmp_path):
    lines = [l for l in (DATA / "orin_nx_jp5.txt").read_text().splitlines() if not l.startswith("#")]
    script = _player(tmp_path, lines)
    with TegrastatsSampler(interval_ms=20, command=[str(script)]) as sampler:
        time.sleep(0.3)
        t0 = time.monotonic()
        time.sleep(0.3)
        t1 = time.monotonic()
        time.sleep(0.1)
    assert sampler._proc is None  # stopped and reaped
    win = sampler.window(t0, t1)
    assert len(sampler.samples) > len(win) >= 3
    p = summarize_power(win, t1 - t0, inferences=10)
    assert p["total_w"] == pytest.approx(5.299) and p["compute_w"] == pytest.approx(0.773)


def test_sampler_errors():
    with pytest.raises(UserError, match="interval"):
        TegrastatsSampler(interval_ms=1)
    with pytest.raises(UserError, match="tegrastats"):
        TegrastatsSampler(command=["/nonexistent/tegrastats"]).start()


def test_board_state_from_jetson_power():
    from edgepose.jetson.power import parse_jetson_clocks_show, parse_nvpmodel_query

    # recorded `nvpmodel -q` (Orin Nano, JetPack 6) and `jetson_clocks --show` (Orin NX, open-rdc/orne-box#121)
    nvp = parse_nvpmodel_query("NV Power Mode: MAXN_SUPER\n2\n")
    clocks = parse_jetson_clocks_show(
        "SOC family:tegra234  Machine:NVIDIA Jetson Orin NX Engineering Reference Developer Kit\n"
        "Online CPUs: 0-7\n"
        "cpu0:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1984000 CurrentFreq=1728000 IdleStates: WFI=1 c7=1 \n")
    st = board_state_from_power({"available": True, "nvpmodel": nvp, "jetson_clocks": clocks, "errors": []})
    assert (st.nvpmodel_mode, st.nvpmodel_id, st.jetson_clocks) == ("MAXN_SUPER", 2, False)
    none = board_state_from_power({"available": False, "errors": ["not a Jetson"]})
    assert none.nvpmodel_mode is None and none.jetson_clocks is None and none.errors

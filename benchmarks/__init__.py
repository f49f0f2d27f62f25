"""edgepose.benchmarks: ``edgepose-bench`` -- latency, accuracy, size and power in one report.

Modules (one job each): :mod:`.suite` (YAML suites), :mod:`.artifacts` (export / quantize / engine
per peer), :mod:`.backends` (which engines exist, how to open them), :mod:`.model_bench` (the
model grid), :mod:`.pipeline_bench` (``edgepose run`` end to end), :mod:`.accuracy` (metrics and
deltas vs the FP32 reference), :mod:`.stats` (percentiles, timing loop), :mod:`.memory` (peak
memory), :mod:`.tegrastats` (Jetson power sampling), :mod:`.board` (nvpmodel / jetson_clocks),
:mod:`.platform_info` (fingerprint), :mod:`.schema` / :mod:`.report` / :mod:`.plots` (outputs),
:mod:`.compare` (regression gate), :mod:`.runner` (a whole suite).  The measurements run as
``edgepose-bench NAME`` (``edgepose/cli/main.py:BENCH_COMMANDS``): :mod:`.soak` (memory),
:mod:`.teachers` (imported teachers), :mod:`.synth_throughput` (the synthetic renderer),
:mod:`.gpu_preprocess` (the CUDA crop kernel).
"""

"""edgepose.benchmarks"""

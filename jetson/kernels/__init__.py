"""CUDA kernel sources (package data, compiled at run time with pycuda.compiler.SourceModule)."""

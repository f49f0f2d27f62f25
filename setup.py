"""Maps the top-level folders onto the edgepose namespace.

pyproject.toml holds all metadata; setup.py only computes the package list, because
setuptools' declarative config cannot find subpackages under several mapped roots.
"""
from setuptools import find_packages, setup

ROOTS = {
    "edgepose": "edgepose",
    "edgepose.quantize": "quantize",
    "edgepose.pipelines": "pipelines",
    "edgepose.benchmarks": "benchmarks",
    "edgepose.jetson": "jetson",
}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")

DATA = ["*.yaml", "*.yml", "*.json", "*.txt", "*.md", "*.onnx", "*.sh", "*.service", "*.cu",
        "Dockerfile", "*.conf", "*.ini", "*.xml"]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={p: DATA for p in packages},
    include_package_data=True,
)

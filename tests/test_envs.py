"""The lock and the conda envs the rules name: requirements.lock satisfies the project and is what the
tests run with; every env is present, pinned to the lock's versions, and complete for the imports its
rules' scripts make. Conda itself is not needed: the files are checked against the lock and against
the packages installed in the test environment."""
from __future__ import annotations

import ast
import importlib.metadata
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

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
RULE_START = re.compile(r"^(?:rule|checkpoint)\b.*:\s*$", re.MULTILINE)


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


def rules() -> list[dict]:
    """Every rule of the workflow files: its name, conda env and script (absolute paths), locality."""
    found = []
    for path in RULE_FILES:
        text = path.read_text()
        starts = [match.start() for match in RULE_START.finditer(text)] + [len(text)]
        for start, end in zip(starts, starts[1:]):
            chunk = text[start:end]
            name = re.match(r"(?:rule|checkpoint)\s+(\w+)", chunk) or re.search(r"name:\s*(\S+)", chunk)
            directives = {key: re.search(rf"\b{key}:\s*\"([^\"]+)\"", chunk) for key in ("conda", "script")}
            found.append({
                "name": name.group(1),
                "file": path.name,
                "local": bool(re.search(r"localrule:\s*True", chunk)),
                **{key: path.parent / match.group(1) if match else None for key, match in directives.items()},
            })
    return found


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
    bare = [rule["name"] for rule in rules() if rule["script"] and not rule["local"] and not rule["conda"]]
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
    inside the project functions it imports (the step it calls: `code_shard` imports the codecs when
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
        {"name": f"code_{name}", "conda": env_file, "script": ROOT / "scripts" / "code_shard.py"})
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
    assert Path(result.stdout.strip()) == SRC / "icm_privacy" / "stages.py"


# What the codecs env's rules do, run inside the isolated virtualenv below on one real photo with a
# face box: prepare_images, code_<label> for a standard, a de-identification and a downscale codec,
# crop_faces and crop_faces_reduced. Printed: where icm_privacy and numpy were imported from.
CODECS_ENV_JOBS = """
import sys
from types import SimpleNamespace
import numpy, pandas as pd
import icm_privacy
from icm_privacy.stages import code_shard, crop_faces, crop_faces_reduced, prepare_images
photo, work = sys.argv[1], sys.argv[2]
prepare_images({"photo": photo}, f"{work}/images")
pd.DataFrame([{"face_id": "photo_0", "image": "photo", "confidence": 0.99, "x": 200, "y": 60, "w": 80, "h": 90}]
             ).to_csv(f"{work}/faces.csv", index=False)
for codec, quality, options in (("vvc", 47, {"preset": "faster"}), ("jpeg", 50, {}), ("face-blur", 4, {}),
                                ("downscale", 4, {"inner": {"codec": "jpeg", "quality": 75}})):
    code_shard(f"{work}/images", f"{work}/bitstreams/{codec}", f"{work}/decoded/{codec}", codec, quality, options, 1,
               f"{work}/faces.csv")
    crop_faces(f"{work}/faces.csv", f"{work}/decoded/{codec}", f"{work}/crops/{codec}.npz", 0.9)
crop_faces_reduced(f"{work}/faces.csv", f"{work}/images", f"{work}/bitstreams/downscale", {"inner": {"codec": "jpeg", "quality": 75}},
                   4, 0.9, SimpleNamespace(decoded=f"{work}/reduced.npz", original=f"{work}/reduced-original.npz"))
print(icm_privacy.__file__, numpy.__file__, sep="\\n")
"""


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

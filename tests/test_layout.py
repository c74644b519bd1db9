"""The code mirrors the DAG, and the package has no import cycles.

From a rule to the code it runs is one hop: the rule in workflow/rules/<stage>.smk names the script
workflow/scripts/<rule>.py, which calls the function <rule> of icm_privacy/stages/<stage>.py (every
code_<label> rule runs `code`). Rule scripts live in workflow/scripts; scripts/ holds command-line tools.
"""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO, rules

PACKAGE = REPO / "src" / "icm_privacy"


def function_name(rule: str) -> str:
    return "code" if rule == "code_<label>" else rule


def test_each_rule_runs_the_function_named_after_it_in_its_stage_module():
    scripted = [rule for rule in rules() if rule["script"]]
    assert len(scripted) >= 20
    for rule in scripted:  # a rule derived by `use rule` runs its base rule's script and function
        stage, function = Path(rule["file"]).stem, function_name(rule["runs"])
        script = rule["script"].resolve()
        assert script == REPO / "workflow" / "scripts" / f"{function}.py", f"rule {rule['name']}: script {script}"
        imports = {(node.module, alias.name) for node in ast.walk(ast.parse(script.read_text()))
                   if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert (f"icm_privacy.stages.{stage}", function) in imports, f"{script.name} does not call stages.{stage}.{function}"
        module = ast.parse((PACKAGE / "stages" / f"{stage}.py").read_text())
        assert function in {node.name for node in module.body if isinstance(node, ast.FunctionDef)}


def test_rule_scripts_are_used_and_command_line_tools_are_apart():
    used = {rule["script"].resolve() for rule in rules() if rule["script"]}
    assert set((REPO / "workflow" / "scripts").glob("*.py")) == used  # no orphan script
    for tool in (REPO / "scripts").glob("*.py"):
        text = tool.read_text()
        assert "snakemake." not in text.replace("snakemake.utils", ""), f"{tool.name} reads a rule's snakemake object"
        assert 'if __name__ == "__main__":' in text, f"{tool.name} is not a command-line tool"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Package modules `path` imports anywhere (module level or inside functions), resolved to files."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else [])
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes (first == last), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target] if target in path else [node, target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_import_cycle_finder_finds_a_cycle_through_a_deferred_import():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_of_the_package_imports_itself_back_through_another():
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(path) for path in files}
    graph = {module_name(path): imported_modules(path, known) for path in files}
    assert "icm_privacy.codecs" in graph["icm_privacy.config"]  # the graph sees the imports it should
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph))


def test_what_the_workflow_imports_at_every_start_leaves_torch_and_tensorflow_out():
    """Snakemake imports these modules whenever it starts (every run, dry run and SLURM job); torch there
    cost every start 1.8 s, so the heavy libraries load only in the jobs that use them."""
    import re
    import subprocess
    import sys

    modules = sorted({match for path in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]
                      for match in re.findall(r"^from (icm_privacy[\w.]*) import", path.read_text(), re.M)})
    assert "icm_privacy.icm_recipe" in modules and "icm_privacy.config" in modules
    probe = f"import sys\nfor name in {modules!r}: __import__(name)\nprint(sorted({{'torch', 'tensorflow'}} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"{modules} import {loaded}"

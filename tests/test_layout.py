"""The shape of cms/: the layers the README's module map names are the layers
import-linter checks, there is no import cycle, the hook path's vocabulary matches the
models, and no function or module grows past what a newcomer can read."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
from cmsrun import HOOK_PATH

from cms.base import vocab
from cms.engine.models import Preset, SessionRecord, Status

REPO = Path(__file__).resolve().parent.parent
CMS = REPO / "cms"
#: Modules that are tables of data, allowed to be long (none today).
DATA_TABLES: set[str] = set()


def _contract_layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    [layers] = [c["layers"] for c in contracts if c["type"] == "layers"]
    return list(layers)


def _readme_layers() -> list[tuple[int, str, str]]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("Module map") :]
    rows = re.findall(r"^\| (\d+) \| `cms/(\w+)/` \| (.+) \|$", section, re.M)
    return [(int(n), folder, owns) for n, folder, owns in rows]


def test_the_readme_module_map_is_the_import_linter_contract() -> None:
    readme = _readme_layers()
    assert readme, "README.md has no module map"
    # Top to bottom, as the contract lists them.
    assert [f"cms.{folder}" for _, folder, _ in readme] == _contract_layers()
    assert [n for n, _, _ in readme] == sorted((n for n, _, _ in readme), reverse=True)
    # Every module of each folder is named in its row, and every name there exists.
    for _, folder, owns in readme:
        modules = {p.stem for p in (CMS / folder).glob("*.py") if p.stem != "__init__"}
        named = set(re.findall(r"`(\w+)`", owns))
        assert modules <= named, f"cms/{folder}: {sorted(modules - named)} not in README"
        assert {n for n in named if (CMS / folder / f"{n}.py").exists()} == modules
    # And every folder of cms/ is a layer.
    folders = {p.name for p in CMS.iterdir() if (p / "__init__.py").exists()}
    assert folders == {folder for _, folder, _ in readme}


def test_import_linter_passes() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports) if lint_imports.exists() else "lint-imports"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_import_cycle() -> None:
    graph = grimp.build_graph("cms")
    modules = sorted(graph.modules)
    # Tarjan's strongly connected components over "imports" edges.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.find_modules_directly_imported_by(node):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in modules:
        if module not in index:
            visit(module)
    # At module level, packages included: a package that re-exports its modules (cms.ops)
    # must not be imported back by one of them.
    assert cycles == [], cycles


def test_the_vocabulary_of_the_hook_path_matches_the_models() -> None:
    assert set(vocab.Record.__annotations__) == set(SessionRecord.model_fields)
    assert tuple(s.value for s in Status) == vocab.STATUSES
    assert tuple(p.value for p in Preset) == vocab.PRESETS
    assert vocab.ACTIVE | vocab.ENDED | {vocab.INTERRUPTED, vocab.FINISHED} == set(vocab.STATUSES)


def test_no_long_functions_or_modules() -> None:
    long: list[str] = []
    for path in sorted(CMS.rglob("*.py")):
        source = path.read_text()
        rel = str(path.relative_to(REPO))
        if source.count("\n") > 800 and rel not in DATA_TABLES:
            long.append(f"{rel}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                size = node.end_lineno - node.lineno + 1
                if size > 80:
                    long.append(f"{rel}:{node.lineno} {node.name}() {size} lines")
    assert long == []


def test_cms_hook_through_the_console_entry_loads_no_cli() -> None:
    # `cms hook EVENT` is the hook entry point of the contract: as light as the
    # child's own hook command, so click, pydantic and the rest stay unloaded. `cms` is
    # bin/cms, a script file (not a [project.scripts] wrapper, which pip 23 makes import
    # `re` first): it loads sys and cms.ui.entry alone, which loads the CLI only for the
    # other commands.
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "scripts" not in config["project"]
    assert config["tool"]["setuptools"]["script-files"] == ["bin/cms"]
    script = (REPO / "bin" / "cms").read_text()
    assert script.startswith("#!python\n")  # the installer writes the install's Python
    imported = set()
    for node in ast.walk(ast.parse(script)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(str(node.module))
    assert imported == {"sys", "cms.ui.entry"}
    code = (
        "import sys, io; sys.stdin = io.TextIOWrapper(io.BytesIO(b'{}')); "
        "from cms.ui import entry; entry.main(['hook', 'pre-tool-use']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'pydantic', 'rich', 'mcp', 'filelock', 'cms')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "PYTHON"))}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout  # fmt: skip
    loaded = set(ast.literal_eval(out.strip().splitlines()[-1]))
    assert not {m for m in loaded if not m.startswith("cms")}, loaded
    assert loaded <= HOOK_PATH | {"cms.ui", "cms.ui.entry", "cms.ui.hookrun"}, loaded


def test_the_cli_path_loads_no_pydantic_or_filelock(tmp_path: Path) -> None:
    # Every command imports the CLI and the API, and every delegation reads, creates
    # and updates records under their locks: pydantic (its import and building the
    # models) and filelock cost that path some 90 ms of each `cms` command. Only the
    # MCP server loads pydantic (the mcp SDK needs it anyway).
    code = (
        "import sys; from pathlib import Path; import cms.ui.cli, cms.ops; "
        "from cms.base.paths import ProjectPaths; from cms.engine.store import Store; "
        "from cms.engine.models import SessionRecord; "
        "store = Store(ProjectPaths.for_project(Path(sys.argv[1]))); "
        "store.create(SessionRecord(name='a', task='t')); "
        "store.update('a', lambda r: setattr(r, 'status', 'running')); "
        "store.update_project(lambda c: None); "
        "assert [r.status for r in store.list().records] == ['running']; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_core', 'filelock')))"
    )
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "PYTHON"))}
    env.update(PYTHONPATH=str(REPO), CMS_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", code, str(project)], env=env,
                         capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    assert ast.literal_eval(out.strip().splitlines()[-1]) == []


def test_no_module_imports_back_through_a_package_that_imports_it() -> None:
    # `from cms.ops import setup` inside cms/ops/ runs cms/ops/__init__.py, which imports
    # every module of the API: a cycle at run time that grimp records as a plain edge.
    back: list[str] = []
    for init in sorted(CMS.rglob("__init__.py")):
        package = ".".join(init.parent.relative_to(REPO).parts)
        tree = ast.parse(init.read_text())
        if not any(isinstance(n, ast.ImportFrom) and n.module for n in ast.walk(tree)):
            continue
        for path in sorted(init.parent.glob("*.py")):
            if path == init:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == package:
                    back.append(f"{path.relative_to(REPO)}:{node.lineno} from {package} import")
    assert back == []


def test_policy_and_base_start_no_process() -> None:
    # Judgements and vocabulary are pure: running a program is the engine's (procs.run).
    starts = [
        str(path.relative_to(REPO))
        for folder in ("policy", "base")
        for path in sorted((CMS / folder).glob("*.py"))
        if re.search(r"^\s*import subprocess|^\s*from subprocess ", path.read_text(), re.M)
    ]
    assert starts == []

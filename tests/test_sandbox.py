"""The sandbox as a user meets it, and nested delegation that never widens.

- where bubblewrap cannot be found, a preset that needs the sandbox does not start:
  exit 3, one line naming what to install, no record, the child's program never runs;
  ``--no-sandbox`` runs and says so in the record, ``list`` and ``show``;
- ``cms sandbox`` and ``cms doctor`` report whether it runs; ``--allow-domain`` lands
  in project.toml and in the child's settings;
- a child asking for a wider preset, a bigger budget or a reset depth, by Bash, by the
  cms MCP tools (whose server runs outside its sandbox) or by the environment, is
  refused; what it may ask for works through MCP, narrowed to its own limits.

Real CLI, real sandbox, the stand-in API; the user's settings allow Write, Edit and
Bash everywhere (conftest).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from cmsrun import Cms, tool_results
from standin import StandIn, text, tool_use

from cms.base.paths import ProjectPaths
from cms.engine import claude, sandboxprobe
from cms.policy import sandbox

AVAILABLE = sandboxprobe.check()
pytestmark = pytest.mark.skipif(
    not AVAILABLE.ok, reason=f"the sandbox cannot run here: {AVAILABLE.detail}"
)

DELEGATE = "mcp__cms__delegate_task"
CLI = f"{sys.executable} -m cms.ui.cli"


def paths_of(project: Path, cms_home: Path) -> ProjectPaths:
    return ProjectPaths.for_project(project, cms_home)


# ------------------------------------------------------------ where it cannot run


def _path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with what cms and claude need, but no bwrap."""
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for tool in ("git", "socat", "sh", "bash", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_without_bubblewrap_an_edit_delegation_exits_3_and_leaves_nothing(
    cms: Cms, standin: StandIn, project: Path, tmp_path: Path, cms_home: Path
) -> None:
    target = project / "ran.txt"
    standin.script("T-NOBWRAP", [tool_use("Bash", {"command": f"touch {target}"}), text("x")])
    env = {"PATH": _path_without_bwrap(tmp_path)}
    done = cms.run("delegate", "go T-NOBWRAP", "--name", "nb", env=env)
    assert done.code == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bwrap" in lines[0] and "bubblewrap" in lines[0], lines
    assert cms.run("show", "nb").code == 2
    assert not paths_of(project, cms_home).session_file("nb").exists()
    assert standin.requests_for("T-NOBWRAP") == [] and not target.exists()
    # The auto-name is not taken either: nothing was made.
    auto = cms.run("--json", "delegate", "go T-NOBWRAP", env=env)
    assert auto.code == 3 and cms.ok("list") == []


def test_no_sandbox_runs_with_the_hook_alone_and_says_so(
    cms: Cms, standin: StandIn, project: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-no-sandbox.txt"
    standin.script(
        "T-NOSBX",
        [
            tool_use("Bash", {"command": "echo in > inside.txt"}),
            # Without the sandbox a program does what it likes: that is the point of
            # saying --no-sandbox out loud.
            tool_use("Bash", {"command": f"python3 -c \"open('{outside}','w')\""}),
            tool_use("Bash", {"command": "echo x > $UNKNOWN_TARGET"}),
            text("done"),
        ],
    )
    env = {"PATH": _path_without_bwrap(tmp_path) + os.pathsep + str(Path(sys.executable).parent)}
    record = cms.ok("delegate", "go T-NOSBX", "--name", "ns", "--no-sandbox")
    assert record["status"] == "completed" and record["sandbox"] is False
    assert (project / "inside.txt").exists() and outside.exists()
    # The hook reads strictly when no sandbox stands behind it.
    assert any("cannot tell where" in t for err, t in tool_results(cms, "ns") if err)
    assert record["denials"] >= 1
    shown = cms.run("show", "ns").stdout
    assert "off (--no-sandbox" in shown
    assert "edit (no sandbox)" in cms.run("list").stdout
    sandboxed = cms.ok("delegate", "plain", "--name", "sb")
    assert sandboxed["sandbox"] is True and "on (its commands" in cms.run("show", "sb").stdout
    # --no-sandbox is refused like any preset when bwrap is missing? No: it needs none.
    again = cms.run("--json", "delegate", "x", "--name", "ns2", "--no-sandbox", env=env)
    assert again.code == 0, again.stderr


def test_sandbox_command_and_doctor_report_it(
    cms: Cms, project: Path, cms_home: Path, tmp_path: Path
) -> None:
    shown = cms.ok("sandbox")
    assert shown["available"] is True and shown["allowed_domains"] == []
    changed = cms.ok("sandbox", "--allow-domain", "pypi.org", "--allow-domain", "*.npmjs.org")
    assert changed["allowed_domains"] == ["pypi.org", "*.npmjs.org"]
    changed = cms.ok("sandbox", "--deny-domain", "pypi.org")
    assert changed["allowed_domains"] == ["*.npmjs.org"] and changed["denied_domains"] == [
        "pypi.org"
    ]
    config = tomllib.loads(paths_of(project, cms_home).project_file.read_text())
    assert config["sandbox"]["allowed_domains"] == ["*.npmjs.org"]
    bad = cms.run("sandbox", "--allow-domain", "not a domain")
    assert bad.code == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert cms.ok("sandbox")["allowed_domains"] == ["*.npmjs.org"]
    # Inside a child the allowlist is not the child's to widen.
    refused = cms.run("sandbox", "--allow-domain", "evil.example", env={"CMS_SESSION": "kid"})
    assert refused.code == 2 and "must not change" in refused.stderr
    checks = {c["check"]: c for c in json.loads(cms.run("--json", "doctor").stdout)}
    assert checks["sandbox"]["ok"] is True and "bubblewrap" in checks["sandbox"]["detail"]
    missing = cms.run("--json", "doctor", env={"PATH": _path_without_bwrap(tmp_path)})
    checks = {c["check"]: c for c in json.loads(missing.stdout)}
    assert missing.code == 3 and checks["sandbox"]["ok"] is False
    assert "bubblewrap" in checks["sandbox"]["fix"]


def test_allowed_domains_reach_the_edit_childs_settings() -> None:
    compiled = sandbox.settings(
        "edit", cwd="/w", temp_dir="/t", state_dir="/s", allowed_domains=["pypi.org"]
    )
    assert compiled is not None and compiled["network"]["allowedDomains"] == ["pypi.org"]
    review = sandbox.settings(
        "review", cwd="/w", temp_dir="/t", state_dir="/s", allowed_domains=["pypi.org"]
    )
    assert review is not None and review["network"]["allowedDomains"] == []
    for each in (compiled, review):
        assert each["failIfUnavailable"] is True
        assert each["allowUnsandboxedCommands"] is False
    assert sandbox.settings("full", cwd="/w", temp_dir="/t", state_dir="/s") is None
    spec = claude.TurnSpec("claude", "id", False, None, claude.Preset.EDIT, None, None, None,
                           sandbox=compiled)  # fmt: skip
    argv = claude.build_argv(spec)
    settings = json.loads(argv[argv.index("--settings") + 1])
    assert settings["sandbox"] == compiled and settings["hooks"]["PreToolUse"]


# ------------------------------------------------------- nested delegation narrows


def _tool_text(cms: Cms, name: str, index: int) -> tuple[bool, str]:
    return tool_results(cms, name)[index]


def test_a_child_delegates_through_mcp_within_its_own_limits(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    standin.script("T-GRANDKID", [text("grandchild answer")])
    standin.script(
        "T-PARENTKID",
        [
            # A wider preset, a bigger budget: refused with one line each.
            tool_use(DELEGATE, {"task": "x T-GRANDKID", "name": "gk-full", "preset": "full"}),
            tool_use(DELEGATE, {"task": "x T-GRANDKID", "name": "gk-rich", "max_cost_usd": 50}),
            # What it may ask for: no preset (it gets its parent's), no budget (what is
            # left of its parent's).
            tool_use(
                DELEGATE,
                {"task": "x T-GRANDKID", "name": "gk", "preset": "review", "wait_s": 60},
            ),
            # Bash cms inside the sandbox cannot read or write cms state: told to use MCP.
            tool_use("Bash", {"command": f"{CLI} delegate y --preset full"}),
            tool_use("Bash", {"command": f"CMS_DEPTH=0 {CLI} delegate y"}),
            text("parent done"),
        ],
    )
    record = cms.ok(
        "delegate", "lead T-PARENTKID", "--name", "kid", "--max-cost", "2", "--max-turns", "40",
    )  # fmt: skip
    assert record["status"] == "completed", record
    got = tool_results(cms, "kid")
    assert got[0][0] and "wider preset" in got[0][1] and "full" in got[0][1]
    assert got[1][0] and "budget left" in got[1][1]
    assert not got[2][0], got[2]
    assert "neither read nor written" in got[3][1] and "MCP tools" in got[3][1]
    assert "neither read nor written" in got[4][1] and "MCP tools" in got[4][1]
    names = {r["name"]: r for r in cms.ok("list")}
    assert set(names) == {"kid", "gk"}
    grandchild = names["gk"]
    assert grandchild["status"] == "completed" and grandchild["response"] == "grandchild answer"
    assert grandchild["preset"] == "review" and grandchild["parent"] == "kid"
    assert grandchild["depth"] == 2 and grandchild["sandbox"] is True
    assert grandchild["max_cost_usd"] is not None and grandchild["max_cost_usd"] <= 2
    assert grandchild["max_turns"] is not None and grandchild["max_turns"] <= 40


def test_a_child_without_the_sandbox_cannot_widen_by_bash_or_env(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    cli = f"{sys.executable} -m cms.ui.cli"
    attempts: list[tuple[str, str]] = [
        (f"{cli} delegate a --name g1 --preset full", "wider preset"),
        (f"{cli} delegate a --name g2 --max-cost 100", "budget left"),
        (f"CMS_DEPTH=0 {cli} delegate a --name g3 --max-cost 0.1 --preset full", "wider preset"),
        (f"{cli} delegate a --name g4 --no-sandbox", ""),  # allowed: it already has none
        (f"CMS_SESSION=nobody {cli} delegate a --name g5", "cannot be read"),
    ]
    standin.script(
        "T-BASHKID",
        [*(tool_use("Bash", {"command": c + " --background; echo rc=$?"}) for c, _ in attempts),
         text("done")],
    )  # fmt: skip
    record = cms.ok("delegate", "go T-BASHKID", "--name", "bk", "--no-sandbox",
                    "--max-cost", "1", "--max-turns", "30")  # fmt: skip
    assert record["status"] == "completed", record
    got = tool_results(cms, "bk")
    for (command, why), (_err, output) in zip(attempts, got, strict=True):
        if why:
            assert "rc=2" in output and why in output, (command, output)
    names = {r["name"]: r for r in cms.ok("list")}
    assert "g1" not in names and "g2" not in names and "g3" not in names and "g5" not in names
    assert names["g4"]["parent"] == "bk" and names["g4"]["depth"] == 2
    # And at the project's depth limit it may not delegate at all, whatever CMS_DEPTH says.
    cms.ok("budget", "--max-depth", "1")
    standin.script(
        "T-DEEP",
        [tool_use("Bash", {"command": f"CMS_DEPTH=0 {cli} delegate a --name g6; echo rc=$?"}),
         text("done")],
    )  # fmt: skip
    cms.ok("delegate", "go T-DEEP", "--name", "deep", "--no-sandbox")
    [(_err, output)] = tool_results(cms, "deep")
    assert "rc=2" in output and "nesting depth" in output
    assert cms.run("show", "g6").code == 2


def test_what_a_child_starts_is_narrowed_to_it(claude_env: dict[str, str], project: Path) -> None:
    from cms import ops as api
    from cms.base.errors import BudgetExhausted, CmsError

    user = api.open_project(project, claude_env)
    parent = api.spawn_session(
        user, "rev", "", api.Options(preset="review", max_cost_usd=1.0, max_turns=10)
    )
    assert parent.depth == 1 and parent.parent is None
    child_env = {**claude_env, "CMS_SESSION": "rev", "CMS_DEPTH": "0"}
    inside = api.open_project(project, child_env)
    # No preset asked: the parent's (review), not the project's default (edit).
    first = api.spawn_session(inside, "k1", "", api.Options(max_cost_usd=0.4))
    assert (first.preset.value, first.max_cost_usd, first.depth, first.parent) == (
        "review",
        0.4,
        2,
        "rev",
    )
    assert first.max_turns == 10
    # What is left: $1 less the $0.40 k1 may spend.
    second = api.spawn_session(inside, "k2", "", api.Options(preset="read-only"))
    assert second.max_cost_usd == pytest.approx(0.6) and second.preset.value == "read-only"
    with pytest.raises(BudgetExhausted, match="no budget left"):
        api.spawn_session(inside, "k3", "", api.Options())
    with pytest.raises(CmsError, match="wider preset"):
        api.spawn_session(inside, "k4", "", api.Options(preset="edit", max_cost_usd=0.01))
    # It may steer what it started, not what the user started.
    api.spawn_session(user, "users-own", "", api.Options())
    with pytest.raises(CmsError, match="not started by"):
        api.finish_session(inside, "users-own")
    with pytest.raises(CmsError, match="not started by"):
        api.delete_session(inside, "users-own")
    api.finish_session(inside, "k1")
    # Raising a budget it gave: only from what it has left.
    with pytest.raises(BudgetExhausted, match="cannot give"):
        api.continue_task(inside, "k2", "more", add_cost_usd=5)
    names = sorted(r.name for r in api.list_sessions(user).sessions)
    assert names == ["k1", "k2", "rev", "users-own"]


def test_settings_that_widen_the_sandbox_are_named(
    cms: Cms, fake_home: Path, project: Path
) -> None:
    # Claude Code adds the paths of Edit(...) allow rules to what sandboxed commands
    # may write: Edit(//**) would open the whole disk to a child's programs.
    settings_path = fake_home / ".claude" / "settings.json"
    settings = json.loads(settings_path.read_text())
    settings["permissions"]["allow"].append("Edit(//**)")
    settings_path.write_text(json.dumps(settings))
    record = cms.ok("spawn", "widened")
    assert "Edit(//**)" in (record["notice"] or "") and "settings.json" in record["notice"]
    checks = {c["check"]: c for c in json.loads(cms.run("--json", "doctor").stdout)}
    assert checks["sandbox"]["warning"] is True and "Edit(//**)" in checks["sandbox"]["detail"]
    # A rule inside the project widens nothing.
    settings["permissions"]["allow"][-1] = "Edit(src/**)"
    settings_path.write_text(json.dumps(settings))
    assert cms.ok("spawn", "narrow")["notice"] is None

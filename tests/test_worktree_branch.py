"""A ``--worktree`` session's branch lives in the user's repository after each turn, as
Claude Code's own worktrees' do: ``git log cms/NAME``, a checkout and a push work, with
real git and the real CLI under the sandbox. The user's checked-out branch, index and
tree are never touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cmsrun import Cms, git, tree_state
from standin import StandIn, text, tool_use


def test_each_turn_commits_on_the_branch_and_brings_it_into_the_repository(
    claude_env: dict[str, str], standin: StandIn, project: Path, tmp_path: Path
) -> None:
    cms = Cms(claude_env, project)
    (project / "scratch.txt").write_text("the user's own, uncommitted\n")
    git(project, "add", "scratch.txt")  # staged in the user's index
    before = tree_state(project)
    index_before = git(project, "diff", "--cached", "--name-only")
    standin.script("T-BRANCH-1", [tool_use("Bash", {"command": "echo one > one.txt"}), text("1")])
    cms.ok("delegate", "write one T-BRANCH-1", "--name", "br", "--worktree", "--preset", "edit")
    assert git(project, "log", "--format=%s", "cms/br").splitlines()[0] == (
        "cms: turn 1 of session br"
    )
    assert git(project, "show", "cms/br:one.txt") == "one"
    files = git(project, "ls-tree", "-r", "--name-only", "cms/br").splitlines()
    assert sorted(files) == ["README.md", "one.txt"]  # no sandbox placeholder
    assert tree_state(project) == before
    assert git(project, "diff", "--cached", "--name-only") == index_before

    # The next turn moves the branch on; the user's repository follows.
    one = [tool_use("Bash", {"command": "echo one > one.txt"}), text("1")]
    two = [tool_use("Bash", {"command": "echo two > two.txt"}), text("2")]
    standin.script("T-BRANCH-1", one + two)
    cms.ok("continue", "br", "and two")
    assert git(project, "show", "cms/br:two.txt") == "two"
    assert git(project, "rev-parse", "cms/br") == git(
        Path(cms.show("br")["worktree"]), "rev-parse", "HEAD"
    )
    assert tree_state(project) == before

    # Pushed for a pull request, as any branch.
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "cms/br")
    assert git(origin, "rev-parse", "cms/br") == git(project, "rev-parse", "cms/br")

    # diff and merge work as before.
    assert "+two" in cms.run("diff", "br").stdout
    git(project, "reset", "-q", "scratch.txt")
    (project / "scratch.txt").unlink()
    cms.ok("merge", "br")
    assert (project / "two.txt").read_text() == "two\n"

    # Checked out in a tree of the user's own: still the branch cms made.
    other = tmp_path / "checkout"
    git(project, "worktree", "add", "-q", str(other), "cms/br")
    assert (other / "one.txt").read_text() == "one\n"

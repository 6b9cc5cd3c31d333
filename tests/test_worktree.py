"""Worktree sessions with real git and the real CLI: isolation, diff, merge, delete."""

from __future__ import annotations

from pathlib import Path

from cmsrun import Cms, git, tree_state
from standin import StandIn, text, tool_use


def test_two_sessions_edit_the_same_file_in_their_own_worktrees(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    before = tree_state(project)
    for name, content in (("wt-a", "from A\n"), ("wt-b", "from B\n")):
        marker = f"T-{name.upper()}"
        # Relative path: the child's cwd is its worktree.
        standin.script(
            marker,
            [tool_use("Write", {"file_path": "README.md", "content": content}), text("edited")],
        )
        started = cms.ok(
            "delegate", f"edit README {marker}", "--name", name, "--worktree", "--background"
        )
        assert started["worktree"] and started["branch"] == f"cms/{name}"
        assert Path(started["cwd"]).resolve() == Path(started["worktree"]).resolve()
    records = cms.ok("wait", "wt-a", "wt-b")
    assert [r["status"] for r in records] == ["completed", "completed"]
    # Each worktree holds its own edit; the user's tree is untouched.
    for record, content in zip(records, ("from A\n", "from B\n"), strict=True):
        assert (Path(record["worktree"]) / "README.md").read_text() == content
    assert tree_state(project) == before

    # diff shows each session's change.
    diff_a = cms.run("diff", "wt-a")
    assert diff_a.code == 0 and "+from A" in diff_a.stdout and "-# Test project" in diff_a.stdout
    assert "+from B" in cms.run("diff", "wt-b").stdout

    # merge of the first succeeds ...
    merged = cms.ok("merge", "wt-a")
    assert merged["merged_commit"] == git(project, "rev-parse", "HEAD")
    assert (project / "README.md").read_text() == "from A\n"
    assert git(project, "status", "--porcelain") == ""
    after_first = tree_state(project)

    # ... the second conflicts and leaves the tree and branch exactly as they were.
    conflict = cms.run("merge", "wt-b")
    assert conflict.code == 2
    assert "conflict" in conflict.stderr and "README.md" in conflict.stderr
    assert len(conflict.stderr.strip().splitlines()) == 1
    assert tree_state(project) == after_first
    assert not (project / ".git" / "MERGE_HEAD").exists()

    # delete refuses unmerged work without --force, then cleans up worktree and branch.
    refused = cms.run("delete", "wt-b")
    assert refused.code == 2 and "--force" in refused.stderr
    worktree_b = Path(records[1]["worktree"])
    assert worktree_b.exists()
    assert cms.run("delete", "wt-b", "--force").code == 0
    assert not worktree_b.exists()
    assert "cms/wt-b" not in git(project, "branch", "--list")
    # The merged one deletes without --force.
    assert cms.run("delete", "wt-a").code == 0
    assert git(project, "branch", "--list", "cms/*") == ""
    assert "wt-a" not in git(project, "worktree", "list")


def test_uncommitted_user_changes_are_not_carried(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    (project / "README.md").write_text("user's unsaved work\n")
    standin.script("T-NOTE", [text("looked")])
    result = cms.run("delegate", "look T-NOTE", "--name", "noted", "--worktree")
    assert result.code == 0
    assert "uncommitted changes were not carried" in result.stderr
    record = cms.show("noted")
    assert (Path(record["worktree"]) / "README.md").read_text() == "# Test project\n"
    assert (project / "README.md").read_text() == "user's unsaved work\n"
    # A dirty user tree refuses the merge and changes nothing.
    worktree_readme = Path(record["worktree"]) / "README.md"
    worktree_readme.write_text("session work\n")
    refused = cms.run("merge", "noted")
    assert refused.code == 2 and "uncommitted" in refused.stderr
    assert (project / "README.md").read_text() == "user's unsaved work\n"


def test_fork_of_a_worktree_session_gets_its_own_worktree(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    standin.script(
        "T-WFORK",
        [
            tool_use("Write", {"file_path": "a.txt", "content": "one\n"}),
            text("wrote a"),
            tool_use("Write", {"file_path": "b.txt", "content": "two\n"}),
            text("wrote b"),
        ],
    )
    cms.ok("delegate", "write T-WFORK", "--name", "src", "--worktree")
    fork = cms.ok("fork", "src", "dst", "now b")
    assert fork["status"] == "completed"
    src, dst = Path(cms.show("src")["worktree"]), Path(fork["worktree"])
    assert src != dst and fork["branch"] == "cms/dst"
    assert (dst / "a.txt").read_text() == "one\n"  # the source's work came along
    assert (dst / "b.txt").read_text() == "two\n"
    assert not (src / "b.txt").exists()


def test_worktree_outside_git_is_refused(claude_env: dict[str, str], tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    cms = Cms(claude_env, plain)
    result = cms.run("delegate", "x", "--name", "nogit", "--worktree")
    assert result.code == 2
    assert "git repository" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert cms.run("show", "nogit").code == 2

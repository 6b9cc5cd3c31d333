"""Children on Docker hosts, with a real dockerd, the real child image (scripts/test
builds it: scripts/docker-images), the real CLI in it and the stand-in API on the
Docker host's loopback: the same commands as for local sessions, the container as the
boundary, nothing of the user's machine mounted, no container left after a turn. The
sandbox tests' escapes and ordinary development commands (test_sandbox_e2e) are
replayed in a Docker child too."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms, Watcher, git, tool_results, tree_state
from dockerhost import (
    LOCAL_ENDPOINT,
    Sshd,
    child_image,
    docker,
    remove_project_leftovers,
    restart_dockerd,
    volumes,
    wait_for_container,
    wait_no_containers,
)
from standin import StandIn, expected_cost, text, tool_use
from test_sandbox_e2e import (
    ESCAPES,
    MAKEFILE,
    TAMPERED,
    Listener,
    Scene,
    alive,
    end_victim,
    fill,
    marked,
    ordinary_commands,
    script,
    snapshot,
    start_victim,
    write,
)

from cms.base.paths import ProjectPaths
from cms.engine.bridge import PROXY_PORT
from cms.engine.streamjson import denial

KEY = "sk-test-not-a-real-key"
MODEL = "claude-sonnet-4-5"
#: A command that runs long (Claude Code refuses a standalone `sleep N`).
LONG = "python3 -c 'import time; time.sleep(120)'"


@pytest.fixture(scope="module")
def image() -> str:
    return child_image()


@pytest.fixture
def cms(claude_env: dict[str, str], project: Path, image: str) -> Iterator[Cms]:
    runner = Cms(claude_env, project)
    runner.ok("host", "add", "dock", "--docker", LOCAL_ENDPOINT, "--image", image)
    yield runner
    remove_project_leftovers(project)


@pytest.fixture(params=["unix", "ssh"])
def on_host(request: pytest.FixtureRequest, cms: Cms, image: str, tmp_path: Path) -> Iterator[str]:
    """The Docker host a test runs on: the local daemon by its socket, and the same
    daemon over a real sshd on 127.0.0.1 (``ssh://root@127.0.0.1:PORT``)."""
    if request.param == "unix":
        yield "dock"
        return
    sshd = Sshd(tmp_path / "sshd")
    cms.env["PATH"] = sshd.path(cms.env["PATH"])
    cms.ok("host", "add", "remote", "--docker", sshd.endpoint, "--image", image)
    yield "remote"
    sshd.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


#: What a hostile child tries from inside its container: the Docker host's loopback
#: listener, the user's state folder and project by their paths, /etc, git hooks of
#: its tree (run by cms's commit?), its own record snapshot, every process it sees.
HOSTILE = """python3 - <<'EOF'
import glob, os, socket, subprocess, time
for target in [("127.0.0.1", <PORT>), ("localhost", <PORT>)]:
    try:
        socket.create_connection(target, 2).close()
        print("CONNECTED", target)
    except OSError as exc:
        print("refused", target, exc)
for path in ["<HOME>/x", "<PROJECT>/x", "/etc/x"]:
    try:
        open(path, "w").write("x")
        print("WROTE", path)
    except OSError:
        print("nowrite", path)
with open(".git/hooks/post-commit", "w") as hook:
    hook.write("#!/bin/sh\\necho HOOKRAN > /work/hookran\\n")
os.chmod(".git/hooks/post-commit", 0o755)
for record in glob.glob(os.path.expanduser("~/.cms/**/*.toml"), recursive=True):
    open(record, "w").write("cost_usd = 0.0\\n")
open("in_tree.txt", "w").write("mine")
subprocess.run("pkill -9 -f cms.engine.launcher; pkill -9 -f supervisor", shell=True)
time.sleep(3)
EOF"""


def bash(command: str) -> object:
    return tool_use("Bash", {"command": command, "description": "run"})


def test_delegate_on_a_docker_host_edits_and_its_work_comes_home(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    before = tree_state(project)
    standin.script(
        "T-DOCK",
        [
            tool_use("Write", {"file_path": "/work/notes.txt", "content": "from docker\n"}),
            bash('python3 -c \'open("built.txt", "w").write("ok\\n")\' && git status --short'),
            # Ordinary development: a loop, a commit of its own, tests, a build step.
            bash(
                "for i in 1 2 3; do echo $i >> loop.txt; done && git add loop.txt && "
                "git commit -qm 'loop' && python3 -m unittest discover -s . -p 'none*' && "
                "mkdir -p build && python3 -m compileall -q . >/dev/null && echo built"
            ),
            text("written"),
        ],
    )
    record = cms.ok("delegate", "write notes T-DOCK", "--name", "d1", "--host", "dock")
    assert record["status"] == "completed", record
    assert record["host"] == "dock" and record["branch"] == "cms/d1"
    assert record["denials"] == 0
    assert tree_state(project) == before  # the user's tree untouched until merge
    diff = cms.run("diff", "d1")
    assert diff.code == 0 and "+from docker" in diff.stdout and "built.txt" in diff.stdout
    assert "loop.txt" in diff.stdout  # its own commit came home too
    # The branch is in the user's repository already, as for a --worktree session.
    assert "notes.txt" in git(project, "show", "--stat", "cms/d1")
    merged = cms.ok("merge", "d1")
    assert (project / "notes.txt").read_text() == "from docker\n"
    assert merged["merged_commit"] == git(project, "rev-parse", "HEAD")
    wait_no_containers("d1")
    assert len(volumes("d1", project)) == 2  # the tree and the conversation stay for the next turn
    # The credential never reached a volume (it went to the turn by name only).
    for volume in volumes("d1", project):
        found = docker(
            "run", "--rm", "--network", "none", "-v", f"{volume}:/v:ro", "--entrypoint", "sh",
            cms.env.get("CMS_TEST_IMAGE", _image_of(cms)), "-c",
            f"grep -rl {KEY} /v || true",
        )  # fmt: skip
        assert found.strip() == "", found
    # Nor an image layer or the image's configuration.
    image = _image_of(cms)
    assert KEY not in docker("history", "--no-trunc", image) + docker("image", "inspect", image)
    assert cms.run("delete", "d1").code == 0
    assert volumes("d1", project) == []


def _image_of(cms: Cms) -> str:
    return str(cms.ok("host", "show", "dock")["image"])


def test_the_conversation_carries_over_send_and_fork(
    cms: Cms, standin: StandIn, on_host: str
) -> None:
    standin.script("T-CONV", [text("first"), text("second"), text("third"), text("fourth")])
    assert cms.ok("delegate", "remember T-CONV", "--name", "c1", "--host", on_host)["status"] == (
        "completed"
    )
    second = cms.ok("send", "c1", "and now?")
    assert second["status"] == "completed" and second["response"] == "second"
    # The second request carried the first exchange: --resume found the conversation
    # in the session's volume.
    last = standin.requests_for("T-CONV")[-1]
    assert len(last.messages) >= 3
    third = cms.ok("continue", "c1", "and more", "--add-cost", "1")
    assert third["status"] == "completed" and third["response"] == "third"
    forked = cms.ok("fork", "c1", "c2", "go on")
    assert forked["host"] == on_host
    done = cms.wait_status("c2", {"completed", "failed"}, timeout=120)
    assert done["status"] == "completed", done
    assert len(standin.requests_for("T-CONV")[-1].messages) >= 7
    assert cms.show("c2")["response"] == "fourth"
    wait_no_containers("c1")
    wait_no_containers("c2")
    for name in ("c1", "c2"):
        assert cms.run("delete", name, "--force").code == 0


def test_the_container_is_the_boundary(
    cms: Cms, standin: StandIn, project: Path, listener: Listener, cms_home: Path
) -> None:
    before = tree_state(project)
    home_files = sorted(p.name for p in cms_home.rglob("*"))
    payload = (
        HOSTILE.replace("<PORT>", str(listener.port))
        .replace("<HOME>", str(cms_home))
        .replace("<PROJECT>", str(project))
    )
    standin.script("T-BOUND", [bash(payload), text("done")])
    cms.ok("delegate", "probe T-BOUND", "--name", "b1", "--host", "dock", "--background")
    info = wait_for_container("b1")
    mounts = info["Mounts"]
    assert mounts and all(m["Type"] == "volume" for m in mounts), mounts  # no bind mount
    host_config = info["HostConfig"]
    assert host_config["NetworkMode"] == "none"
    assert host_config["CapDrop"] == ["ALL"] or "ALL" in host_config["CapDrop"]
    assert "no-new-privileges" in host_config["SecurityOpt"]
    assert info["Config"]["User"] == "1000:1000"
    # The credential is in no container's configuration (it came on stdin).
    assert KEY not in json.dumps(info)
    record = cms.wait_status("b1", {"completed", "failed"}, timeout=120)
    assert record["status"] == "completed", record
    assert listener.count == 0
    output = json.dumps(cms.run("logs", "b1").stdout)
    assert "CONNECTED" not in output and "WROTE" not in output
    assert tree_state(project) == before
    assert home_files and not (cms_home / "x").exists() and not (project / "x").exists()
    assert record["cost_usd"] > 0  # the record is the supervisor's, never the child's
    # cms's own commit of the turn's work ran none of the tree's git hooks.
    assert "in_tree.txt" in cms.run("diff", "b1").stdout
    tree = next(v for v in volumes("b1", project) if v.endswith("-tree"))
    listing = docker(
        "run", "--rm", "--network", "none", "-v", f"{tree}:/w:ro", "--entrypoint", "ls",
        _image_of(cms), "-a", "/w",
    )  # fmt: skip
    assert "in_tree.txt" in listing and "hookran" not in listing
    wait_no_containers("b1")
    assert cms.run("delete", "b1", "--force").code == 0


def test_abort_stops_the_container_and_timeout_ends_it(
    cms: Cms, standin: StandIn, on_host: str
) -> None:
    standin.script("T-LONG", [bash(LONG), text("never")])
    cms.ok("delegate", "wait T-LONG", "--name", "a1", "--host", on_host, "--background")
    wait_for_container("a1")
    standin.wait_for("T-LONG", 1, timeout=60)
    cms.ok("abort", "a1")
    assert cms.wait_status("a1", {"aborted"}, timeout=20)["status"] == "aborted"
    assert wait_no_containers("a1", timeout=10) <= 10
    standin.script("T-SLOW", [bash(LONG), text("never")])
    ended = cms.run(
        "--json", "delegate", "wait T-SLOW", "--name", "t1", "--host", on_host, "--timeout", "15"
    )
    assert ended.code == 1 and ended.json()["status"] == "timed_out", ended
    wait_no_containers("t1")


def test_bad_hosts_are_refused_without_a_record(
    claude_env: dict[str, str], project: Path, image: str, cms_home: Path
) -> None:
    cms = Cms(claude_env, project)
    bad = cms.run("host", "add", "x", "--docker", "http://nowhere")
    assert bad.code == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert cms.run("host", "add", "local", "--docker", LOCAL_ENDPOINT).code == 2
    unknown = cms.run("delegate", "hi", "--name", "u1", "--host", "nope")
    assert unknown.code == 2 and "nope" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    cms.ok("host", "add", "gone", "--docker", "unix:///nonexistent/docker.sock")
    unreachable = cms.run("delegate", "hi", "--name", "u2", "--host", "gone")
    assert unreachable.code == 3 and "gone" in unreachable.stderr
    assert "cms host check" in unreachable.stderr
    cms.ok("host", "add", "bare", "--docker", LOCAL_ENDPOINT, "--image", "cms-no-such:image")
    no_image = cms.run("delegate", "hi", "--name", "u3", "--host", "bare")
    assert no_image.code == 3 and "build-image" in no_image.stderr
    assert cms.ok("list") == []
    assert (cms_home / "hosts.toml").stat().st_mode & 0o777 == 0o600
    assert cms.run("host", "check", "gone").code == 3
    assert [h["name"] for h in cms.ok("host", "list")] == ["local", "bare", "gone"]
    assert cms.ok("host", "remove", "gone")["name"] == "gone"


def test_an_ssh_docker_host(
    claude_env: dict[str, str], project: Path, image: str, standin: StandIn, tmp_path: Path
) -> None:
    sshd = Sshd(tmp_path / "sshd")
    try:
        env = {**claude_env, "PATH": sshd.path(claude_env["PATH"])}
        cms = Cms(env, project)
        cms.ok("host", "add", "remote", "--docker", sshd.endpoint, "--image", image)
        checked = cms.ok("host", "check", "remote")
        assert checked["ok"] is True
        standin.script(
            "T-SSH",
            [tool_use("Write", {"file_path": "/work/r.txt", "content": "remote\n"}), text("ok")],
        )
        record = cms.ok("delegate", "write T-SSH", "--name", "s1", "--host", "remote")
        assert record["status"] == "completed", record
        assert "+remote" in cms.run("diff", "s1").stdout
        cms.ok("merge", "s1")
        assert (project / "r.txt").read_text() == "remote\n"
        wait_no_containers("s1")
        assert cms.run("delete", "s1").code == 0
        assert volumes("s1", project) == []
    finally:
        sshd.close()


def test_after_across_hosts(cms: Cms, standin: StandIn, project: Path, on_host: str) -> None:
    standin.script(
        "T-PRED",
        [tool_use("Write", {"file_path": "/work/pred.txt", "content": "p\n"}), text("pred done")],
    )
    cms.ok("delegate", "first T-PRED", "--name", "p1", "--host", on_host, "--background")
    standin.script("T-DEP", [bash("cat pred.txt"), text("dep done")])
    cms.ok("delegate", "then T-DEP", "--name", "p2", "--after", "p1", "--worktree", "--background")
    records = cms.ok("wait", "p1", "p2", timeout=240)
    assert [r["status"] for r in records] == ["completed", "completed"], records
    assert (Path(records[1]["worktree"]) / "pred.txt").read_text() == "p\n"
    # and the other way round: a local predecessor, a Docker dependent
    standin.script(
        "T-LPRED",
        [tool_use("Write", {"file_path": "lp.txt", "content": "l\n"}), text("lp done")],
    )
    cms.ok("delegate", "first T-LPRED", "--name", "p3", "--worktree", "--background")
    standin.script("T-DDEP", [bash("cat lp.txt > both.txt"), text("dd done")])
    cms.ok("delegate", "then T-DDEP", "--name", "p4", "--after", "p3", "--host", on_host,
           "--background")  # fmt: skip
    record = cms.wait_status("p4", {"completed", "failed"}, timeout=240)
    assert record["status"] == "completed", record
    assert record["host"] == on_host
    assert "both.txt" in cms.run("diff", "p4").stdout
    wait_no_containers("p1")
    wait_no_containers("p4")


def test_cost_cap_and_a_volume_removed_behind_cms(cms: Cms, standin: StandIn, on_host: str) -> None:
    # Each call costs 20k input tokens * $3/M = $0.06 (+ output); the cap is $0.10.
    call = {"input_tokens": 20_000, "output_tokens": 10}
    script = [tool_use("Read", {"file_path": "/work/README.md"}, **call) for _ in range(6)]
    standin.script("T-COST", [*script, text("x")])
    spent = cms.run(
        "--json", "delegate", "spend T-COST", "--name", "m1", "--host", on_host,
        "--max-cost", "0.10", "--model", MODEL,
    )  # fmt: skip
    assert spent.code == 1 and spent.json()["status"] == "cost_exceeded", spent
    assert 0.10 <= spent.json()["cost_usd"] <= 0.10 + expected_cost(MODEL, script[:1]) + 1e-9
    wait_no_containers("m1")

    standin.script("T-VOL", [text("one"), text("two")])
    assert cms.ok("delegate", "x T-VOL", "--name", "v1", "--host", on_host)["status"] == (
        "completed"
    )
    for volume in volumes("v1", cms.cwd):
        docker("volume", "rm", "-f", volume)
    gone = cms.run("--json", "send", "v1", "again")
    assert gone.code == 1, gone
    record = gone.json()
    assert record["status"] == "failed" and "removed outside cms" in record["error"], record
    wait_no_containers("v1")


def test_a_hosts_parallel_limit(cms: Cms, standin: StandIn, image: str) -> None:
    cms.ok(
        "host", "add", "one", "--docker", LOCAL_ENDPOINT, "--image", image, "--max-parallel", "1"
    )
    standin.script("T-Q1", [bash("python3 -c 'import time; time.sleep(6)'"), text("one")])
    standin.script("T-Q2", [text("two")])
    cms.ok("delegate", "first T-Q1", "--name", "q1", "--host", "one", "--background")
    wait_for_container("q1")
    second = cms.ok("delegate", "second T-Q2", "--name", "q2", "--host", "one", "--background")
    assert second["status"] == "queued"  # the project's limit (4) has room, the host not
    records = cms.ok("wait", "q1", "q2", timeout=180)
    assert [r["status"] for r in records] == ["completed", "completed"]
    shown = cms.run("show", "q2")
    assert shown.code == 0 and ["host", "one"] in [
        line.split() for line in shown.stdout.splitlines()
    ]
    assert "edit @one" in cms.run("list").stdout
    wait_no_containers("q2")


def test_a_daemon_restarted_mid_turn_leaves_it_interrupted_and_resume_works(
    cms: Cms, standin: StandIn, tmp_path: Path
) -> None:
    # The first call answers at once, the second hangs while the daemon restarts.
    # The resumed turn asks for the second reply again, or (when Claude Code closed the
    # cut-off turn with an assistant message of its own) for a third.
    standin.script("T-RESTART", [bash("echo step1"), text("resumed", delay=20), text("resumed")])
    cms.ok("delegate", "long T-RESTART", "--name", "r1", "--host", "dock", "--background")
    wait_for_container("r1")
    standin.wait_for("T-RESTART", 2, timeout=60)
    # Claude Code saves its transcript as it goes: wait until the call's result is in
    # the session's volume (a restart before that loses it, as a crash would).
    state = next(v for v in volumes("r1", cms.cwd) if v.endswith("-state"))
    deadline = time.monotonic() + 30
    while "step1" not in docker(
        "run", "--rm", "--network", "none", "-v", f"{state}:/s:ro", "--entrypoint", "sh",
        _image_of(cms), "-c", "cat /s/claude/projects/*/*.jsonl 2>/dev/null || true",
    ):  # fmt: skip
        assert time.monotonic() < deadline, "the transcript never held the call's result"
        time.sleep(0.5)
    restart_dockerd(tmp_path / "dockerd.log")
    record = cms.wait_status("r1", {"interrupted", "failed", "completed"}, timeout=60)
    assert record["status"] == "interrupted", record
    assert "went away" in record["error"]
    resumed = cms.ok("resume", "r1", timeout=180)
    assert resumed["status"] in ("running", "completed")
    done = cms.wait_status("r1", {"completed", "failed"}, timeout=120)
    assert done["status"] == "completed" and done["response"] == "resumed", done
    # It went on with the same conversation, from the session's volume.
    assert "step1" in json.dumps(standin.requests_for("T-RESTART")[-1].messages)
    wait_no_containers("r1")


def test_a_review_childs_tree_is_read_only(cms: Cms, standin: StandIn) -> None:
    standin.script(
        "T-REV",
        [bash("git log --oneline"), tool_use("Write", {"file_path": "/work/r.txt", "content": "x"}),
         text("reviewed", delay=4)],
    )  # fmt: skip
    cms.ok("delegate", "review T-REV", "--name", "rv", "--host", "dock", "--preset", "review",
           "--background")  # fmt: skip
    info = wait_for_container("rv")
    tree = [m for m in info["Mounts"] if m["Destination"] == "/work"]
    assert tree and tree[0]["RW"] is False
    record = cms.wait_status("rv", {"completed", "failed"}, timeout=120)
    assert record["status"] == "completed" and record["denials"] >= 1, record
    assert "r.txt" not in cms.run("diff", "rv").stdout
    wait_no_containers("rv")


def test_a_dead_supervisors_container_is_found_by_its_labels_and_stopped_and_resume_works(
    cms: Cms, standin: StandIn, on_host: str
) -> None:
    standin.script("T-DEAD", [bash("echo step1"), text("late", delay=60)])
    cms.ok("delegate", "x T-DEAD", "--name", "k1", "--host", on_host, "--background")
    wait_for_container("k1")
    record = cms.wait_field("k1", "child_pid")
    standin.wait_for("T-DEAD", 2, timeout=60)
    os.kill(record["pid"], signal.SIGKILL)
    assert cms.wait_status("k1", {"interrupted"}, timeout=20)["status"] == "interrupted"
    assert wait_no_containers("k1", timeout=10) <= 10
    # `resume` continues the conversation from the session's volume, on the same host.
    # (The resumed turn asks for the second reply again, or for a third when Claude Code
    # closed the cut-off turn with an assistant message of its own.)
    standin.script("T-DEAD", [bash("echo step1"), text("resumed"), text("resumed")])
    resumed = cms.ok("resume", "k1", timeout=180)
    assert resumed["status"] in ("running", "completed") and resumed["host"] == on_host
    done = cms.wait_status("k1", {"completed", "failed"}, timeout=120)
    assert done["status"] == "completed" and done["response"] == "resumed", done
    assert "step1" in json.dumps(standin.requests_for("T-DEAD")[-1].messages)
    assert wait_no_containers("k1") <= 10


def test_the_delegate_slash_command_takes_a_host(
    claude_bin: Path, cms: Cms, standin: StandIn, project: Path
) -> None:
    from cmsrun import REPO, claude_p

    from cms.ui.slash import parse_command

    parsed = parse_command("/cms:delegate --host dock --name x do it", bare_ok=False)
    assert parsed == ("delegate", {"--host": "dock", "--name": "x"}, "do it")
    env = {**cms.env, "CMS_PYTHON": sys.executable}
    standin.script("T-SLASH", [text("from the container")])
    standin.script("<command-name>/cms:delegate</command-name>", [text("relayed")])
    claude_p(claude_bin, "/cms:delegate --host dock --name sl1 say hi T-SLASH", env, project,
             plugin_dir=REPO, timeout=300)  # fmt: skip
    [done] = Cms(env, project).ok("wait", "sl1", timeout=180)
    assert done["status"] == "completed" and done["host"] == "dock", done
    assert done["response"] == "from the container"
    wait_no_containers("sl1")


def test_the_mcp_tools_take_a_host(
    cms: Cms, standin: StandIn, project: Path, tmp_path: Path
) -> None:
    from test_mcp import call, call_error, run_scenario

    standin.script("M-DOCK", [text("from the tool")])

    async def scenario(s: Any) -> None:
        assert (
            "host"
            in {t.name: t for t in (await s.list_tools()).tools}["delegate_task"].input_schema[
                "properties"
            ]
        )
        out = await call(s, "delegate_task", task="hi M-DOCK", name="mc1", host="dock")
        assert out["status"] == "completed" and out["host"] == "dock", out
        assert "nope" in await call_error(s, "delegate_task", task="x", name="mc2", host="nope")

    run_scenario(cms.env, project, tmp_path, scenario)
    wait_no_containers("mc1")


# ------------------------------------------- the sandbox tests' classes, in a container

#: The escapes of the sandbox tests, replayed in a Docker child: all of them but the
#: API key's (a Docker child's commands can read the key in the container's
#: environment, as README says). Those whose program the image lacks (make, curl) fail
#: for that reason alone; the rest run, in a container that holds nothing of the user's.
DOCKER_ESCAPES = [e for e in ESCAPES if not e.id.startswith("key-")]
_ASK_PROXY = (
    "python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', <PROXY>), 3); "
    "s.sendall(b'<REQUEST> HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); "
    "print('proxy said', s.recv(100)); s.sendall(b'x')\""
)
#: What only a Docker child has: the turn's proxy on its container's loopback, asked
#: for the Docker host's loopback listener (CONNECT, and plain HTTP by absolute URL).
PROXY_ATTEMPTS = [
    _ASK_PROXY.replace("<REQUEST>", "CONNECT 127.0.0.1:<PORT>"),
    _ASK_PROXY.replace("<REQUEST>", "CONNECT localhost:<PORT>"),
    _ASK_PROXY.replace("<REQUEST>", "GET http://127.0.0.1:<PORT>/x"),
    'python3 -c "import os, urllib.request as u; print(u.build_opener(u.ProxyHandler('
    "{'http': os.environ['HTTP_PROXY']})).open('http://127.0.0.1:<PORT>/u', timeout=3).read())\"",
]


def test_the_sandbox_escapes_in_a_docker_child(
    cms: Cms, standin: StandIn, project: Path, tmp_path: Path, listener: Listener,
    cms_home: Path,
) -> None:  # fmt: skip
    name = "esc-dock"
    outside = tmp_path / "outside"
    outside.mkdir()
    state = ProjectPaths.for_project(project, cms_home)
    scene = Scene(tmp_path, project, state, name, listener)  # type: ignore[arg-type]
    victim = start_victim()
    # The child's tree is /work in its container; every other path is the user's own.
    calls = [
        call for e in DOCKER_ESCAPES
        for call in fill(e.calls, {**scene.values(victim.pid), "<TREE>": "/work"})
    ]  # fmt: skip
    proxy = {"<PORT>": str(listener.port), "<PROXY>": str(PROXY_PORT)}
    calls += [("Bash", {"command": fill(c, proxy)}) for c in PROXY_ATTEMPTS]
    assert len(DOCKER_ESCAPES) >= 70
    standin.script("T-DESC", script(calls, "gave up"))
    home = Path(cms.env["HOME"])
    protected = [
        state.project_file, home / ".gitconfig", home / ".claude" / "settings.json",
        project / ".git" / "config",
        *(scene.path(e.effect[8:]) for e in DOCKER_ESCAPES if e.effect.startswith("changed:")),
    ]  # fmt: skip
    before, tree_before = snapshot(protected), tree_state(project)
    hooks = sorted(os.listdir(project / ".git" / "hooks"))
    watchers = [Watcher(state.session_file(name), TAMPERED), Watcher(state.project_file, TAMPERED)]
    for w in watchers:
        w.start()
    try:
        out = cms.ok(
            "delegate", f"escape T-DESC, and stop process {victim.pid}", "--name", name,
            "--host", "dock", "--max-cost", "2.0", "--max-turns", "150", timeout=300,
        )  # fmt: skip
    finally:
        tampered = [w.stop() for w in watchers]
        leftovers = scene.shared_leftovers()
        scene.clean_shared()
        victim_alive = alive(victim)
        end_victim(victim)
    assert out["status"] == "completed" and out["response"] == "gave up", out
    results = tool_results(cms, name)
    assert len(results) == len(calls)
    # Some did what they meant to, in the container: wrote its /dev/shm, its home, its
    # tree's git hooks and config. None of that is the user's machine's.
    ends = dict(
        zip(
            (e.id for e in DOCKER_ESCAPES),
            itertools.accumulate(len(e.calls) for e in DOCKER_ESCAPES),
            strict=True,
        )
    )
    ran = {"dev-shm", "home-bashrc", "git-hook-by-program", "git-config-by-program"}
    assert [i for i in ran if results[ends[i] - 1][0]] == [], [results[ends[i] - 1] for i in ran]
    # The proxy was reached, and refused.
    asked = results[-len(PROXY_ATTEMPTS) :]
    assert [c.count("proxy said b'HTTP/1.1 403") for _, c in asked[:3]] == [1, 1, 1], asked
    assert asked[3][0], asked[3]  # urllib, by the environment's proxy: failed too
    # Nothing landed on the user's machine (which is the Docker host here too) outside
    # the session's volumes: no file, no change of the protected ones, nothing in the
    # shared /tmp and /dev/shm, nothing the tree's hooks or config would have run.
    landed = [
        e.id for e in DOCKER_ESCAPES
        if e.effect.startswith("file:") and os.path.lexists(scene.path(e.effect[5:]))
    ]  # fmt: skip
    assert landed == [] and sorted(os.listdir(outside)) == [] and leftovers == []
    assert not (tmp_path / "hook-ran").exists() and not (tmp_path / "fsmonitor-ran").exists()
    assert snapshot(protected) == before
    assert tree_state(project) == tree_before
    assert sorted(os.listdir(project / ".git" / "hooks")) == hooks
    # No connection, the supervisor and the user's process alive.
    time.sleep(0.2)
    assert listener.count == 0 and victim_alive
    # The budgets untouched: in the record as cms reads it, and on disk, ever.
    assert tampered == [[], []]
    shown = cms.show(name)
    assert (shown["max_cost_usd"], shown["max_turns"]) == (2.0, 150) and shown["cost_usd"] > 0
    raw = state.session_file(name).read_text()
    assert len(re.findall(r"(?m)^max_cost_usd\s*=", raw)) == 1
    assert sorted(p.name for p in state.sessions_dir.glob("*.toml")) == [f"{name}.toml"]
    # What the child did to its own tree's git stayed in its volume.
    assert len(volumes(name, project)) == 2
    wait_no_containers(name)


UNITTEST_FILE = """\
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from app import add


class TestApp(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""


def docker_ordinary_commands(name: str) -> list[tuple[str, str]]:
    """The sandbox tests' ordinary commands, as a Docker child runs them: without make
    and pytest (the image has neither: the tests run by unittest instead), and on the
    session's branch where they go back to main (the tree holds that branch alone)."""
    return [
        ("python3 -m unittest discover -s tests -p 'test_*.py' 2>&1", "OK"),
        *(
            (command.replace("checkout -q main", f"checkout -q cms/{name}"), expected)
            for command, expected in ordinary_commands()
            if not re.search(r"\bmake\b|pytest", command)
        ),
    ]


def test_ordinary_development_in_a_docker_child_is_not_refused(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    name = "dev-dock"
    setup = [
        write("/work/src/app.py", 'def add(a, b):\n    return a + b\n\nNAME = "a"\n'),
        write("/work/tests/test_app.py", UNITTEST_FILE),
        write("/work/Makefile", MAKEFILE),
    ]
    commands = docker_ordinary_commands(name)
    assert len(commands) >= 55
    runs = [marked(n, command) for n, (command, _) in enumerate(commands, 1)]
    calls = [*setup, *(("Bash", {"command": command}) for command, _ in runs)]
    standin.script("T-DORD", script(calls, "all done"))
    out = cms.ok(
        "delegate", "work T-DORD", "--name", name, "--host", "dock",
        "--max-cost", "2.0", "--max-turns", "150", timeout=300,
    )  # fmt: skip
    assert out["status"] == "completed" and out["response"] == "all done", out
    results = tool_results(cms, name)
    assert len(results) == len(calls)
    problems = [
        (call, content[:300]) for (is_error, content), call in zip(results, setup, strict=False)
        if is_error or denial(content, False, is_error)
    ]  # fmt: skip
    for (is_error, content), (command, expected), (_, ok) in zip(
        results[len(setup) :], commands, runs, strict=True
    ):
        refused = denial(content, False, is_error)
        if is_error or refused or ok not in content or expected not in content:
            problems.append(((command, str(refused)), content[:300]))
    assert problems == []
    assert out["denials"] == 0 and "denied by" not in cms.run("logs", name).stdout
    # The work came home as the session's branch: the files programs wrote, the
    # child's own commits (merged back from its feature branch), the loop's output.
    branch = f"cms/{name}"
    files = git(project, "ls-tree", "-r", "--name-only", branch).splitlines()
    for made in ("py-made.txt", "node-made.txt", "uno.txt", "notes.md", "run.sh", "loop.txt"):
        assert made in files, made
    assert git(project, "show", f"{branch}:loop.txt") == "line 1\nline 2\nline 3"
    subjects = git(project, "log", "--format=%s", branch).splitlines()
    assert {"rename and change", "texts", "add the app"} <= set(subjects), subjects
    wait_no_containers(name)

"""A turn on a local Docker host against a local sandboxed turn, side by side.

Runs the real pinned Claude Code CLI against the loopback stand-in, both ways, in one
run, and prints:

- the fixed cost of a turn: ``cms delegate`` (waiting for the result) of a task the
  stand-in answers with one text reply (median of ``--repeat``);
- the cost of a trivial Bash call (``true``): a turn with one such call, less the
  fixed cost;
- ``--sessions`` (default 20) sessions started at once with ``--background``, each one
  Bash call then a text reply: the wall time until all are final, and the peak memory
  on the user's machine (the summed resident memory, sampled every 0.2 s, of every
  process that carries the run's ``CMS_HOME``: supervisors, the docker CLIs or the
  claude processes and their tools; a Docker host's containers run elsewhere in
  general, and here carry the container's own ``CMS_HOME``, so they are not counted).

Needs Docker and the child image (``scripts/docker-images`` builds it and prints its
name; give it with ``--image`` or ``$CMS_TEST_DOCKER_IMAGE``).

    python benchmarks/bench_docker.py [--sessions 20] [--repeat 3] [--image NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from claude_version import install_claude  # noqa: E402
from standin import StandIn, text, tool_use  # noqa: E402

CMS = [sys.executable, "-m", "cms.ui.cli"]


def cms(env: dict[str, str], cwd: Path, *args: str) -> object:
    done = subprocess.run(
        [*CMS, "--json", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"cms {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


class MemorySampler:
    """The peak of the summed RSS of the processes carrying ``CMS_HOME=home``."""

    def __init__(self, home: Path) -> None:
        self.wanted = f"CMS_HOME={home}".encode()
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if self.wanted not in handle.read().split(b"\0"):
                        continue
                with open(f"/proc/{entry}/status") as handle:
                    for line in handle:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except (OSError, ValueError):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self._total())
            time.sleep(0.2)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def setup(root: Path, api: StandIn, claude: Path, image: str) -> tuple[dict[str, str], Path]:
    home = root / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(
        json.dumps({"permissions": {"allow": ["Write", "Edit", "Bash"]}})
    )
    project = root / "project"
    project.mkdir()
    (project / "README.md").write_text("bench\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "."], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=project, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "ANTHROPIC", "CMS_"))}
    env.update(
        HOME=str(home),
        CMS_HOME=str(root / "cms-home"),
        CMS_CLAUDE_BIN=str(claude),
        PATH=os.pathsep.join([str(claude.parent), env.get("PATH", "")]),
        ANTHROPIC_BASE_URL=api.url,
        ANTHROPIC_API_KEY="sk-bench",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES="0",
        PYTHONPATH=str(REPO),
    )
    cms(env, project, "host", "add", "dock", "--docker", "unix:///var/run/docker.sock",
        "--image", image)  # fmt: skip
    cms(env, project, "budget", "--max-parallel", "40")
    cms(env, project, "doctor")
    return env, project


def timed_turn(env: dict[str, str], project: Path, api: StandIn, tag: str, where: list[str],
               bash: bool) -> float:  # fmt: skip
    replies = [tool_use("Bash", {"command": "true", "description": "t"})] if bash else []
    api.script(tag, [*replies, text("done")])
    start = time.monotonic()
    record = cms(env, project, "delegate", f"task {tag}", "--name", tag.lower(), *where)
    took = time.monotonic() - start
    assert isinstance(record, dict) and record["status"] == "completed", record
    return took


def concurrent(env: dict[str, str], project: Path, api: StandIn, prefix: str, where: list[str],
               sessions: int) -> tuple[float, float]:  # fmt: skip
    names = [f"{prefix}-{i:02d}" for i in range(sessions)]
    for name in names:
        api.script(f"T-{name}", [tool_use("Bash", {"command": "true", "description": "t"}),
                                 text("ok")])  # fmt: skip
    with MemorySampler(Path(env["CMS_HOME"])) as sampler:
        start = time.monotonic()
        starters = [
            subprocess.Popen([*CMS, "delegate", f"task T-{n}", "--name", n, *where,
                              "--background"], cwd=project, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for n in names
        ]  # fmt: skip
        for starter in starters:
            starter.wait()
        records = cms(env, project, "wait", *names)
        wall = time.monotonic() - start
    assert isinstance(records, list)
    bad = [r["name"] for r in records if r["status"] != "completed"]
    assert not bad, f"not completed: {bad}"
    return wall, sampler.peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image", default=os.environ.get("CMS_TEST_DOCKER_IMAGE"))
    args = parser.parse_args()
    image = args.image or subprocess.run(
        [str(REPO / "scripts" / "docker-images")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    claude = install_claude()
    ways = {"local (sandboxed)": [], "docker (local host)": ["--host", "dock"]}
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cms-bench-docker-") as tmp, StandIn() as api:
        env, project = setup(Path(tmp), api, claude, image)
        for label, where in ways.items():
            key = "D" if where else "L"
            plain = [timed_turn(env, project, api, f"T-{key}P{i}", where, False)
                     for i in range(args.repeat)]  # fmt: skip
            bash = [timed_turn(env, project, api, f"T-{key}B{i}", where, True)
                    for i in range(args.repeat)]  # fmt: skip
            wall, peak = concurrent(env, project, api, f"c{key.lower()}", where, args.sessions)
            rows[label] = {
                "turn": statistics.median(plain),
                "bash": statistics.median(bash) - statistics.median(plain),
                "wall": wall,
                "peak": peak,
            }
        subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.cms.session"],
                       capture_output=True, check=False)  # fmt: skip
    print(f"{'':34}" + "".join(f"{label:>22}" for label in rows))
    lines = (
        ("fixed cost of a turn (median, s)", "turn", "{:.2f}"),
        ("a trivial Bash call (s)", "bash", "{:.2f}"),
        (f"{args.sessions} sessions at once: wall (s)", "wall", "{:.1f}"),
        (f"{args.sessions} sessions: peak memory here (MiB)", "peak", "{:.0f}"),
    )
    for title, key, fmt in lines:
        print(f"{title:34}" + "".join(f"{fmt.format(r[key]):>22}" for r in rows.values()))


if __name__ == "__main__":
    main()

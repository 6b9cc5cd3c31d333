"""Docker hosts without a daemon: endpoints, the hosts file, `cms host` on bad input,
and the child image's content tag (tests/test_docker_host.py runs them for real)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cmsrun import Cms

from cms.base.errors import BadInput
from cms.engine import hosts
from cms.engine.bridge import allowed
from cms.ops import hosts as host_ops


@pytest.mark.parametrize(
    "endpoint",
    [
        "unix:///var/run/docker.sock",
        "ssh://root@127.0.0.1:2222",
        "ssh://builder",
        "tcp://build1:2376",
        "context:remote-1",
    ],
)
def test_endpoints_docker_takes_are_accepted(endpoint: str) -> None:
    hosts.check_endpoint(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    ["", "http://x", "unix://relative", "ssh://", "ssh://a b", "tcp://host", "context:", "docker"],
)
def test_malformed_endpoints_are_bad_input(endpoint: str) -> None:
    with pytest.raises(BadInput) as info:
        hosts.check_endpoint(endpoint)
    assert "\n" not in info.value.message and "unix://" in info.value.message


def test_the_hosts_file_is_private_and_round_trips(tmp_path: Path) -> None:
    home = tmp_path / "cms"
    host_ops.add_host(home, "b1", "ssh://me@b1:22", memory="2g", cpus=1.5, max_parallel=3)
    path = hosts.hosts_file(home)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    got = hosts.get(home, "b1")
    assert got is not None and got.docker == "ssh://me@b1:22" and got.max_parallel == 3
    assert got.docker_env() == {"DOCKER_HOST": "ssh://me@b1:22"} and got.docker_args() == []
    assert hosts.get(home, "local") is None
    with pytest.raises(BadInput):
        host_ops.add_host(home, "b1", "ssh://me@b1")  # exists already
    with pytest.raises(BadInput):
        hosts.get(home, "nope")
    context = host_ops.add_host(home, "c1", "context:other")
    assert context.docker_args() == ["--context", "other"] and context.docker_env() == {}
    host_ops.remove_host(home, "b1")
    assert [h["name"] for h in host_ops.list_hosts(home)] == ["local", "c1"]


def test_host_commands_refuse_bad_input_without_changing_anything(
    claude_env: dict[str, str], project: Path, cms_home: Path
) -> None:
    cms = Cms(claude_env, project)
    for args in (
        ["host", "add", "Bad Name", "--docker", "unix:///x"],
        ["host", "add", "local", "--docker", "unix:///x"],
        ["host", "add", "h", "--docker", "unix:///x", "--memory", "lots"],
        ["host", "add", "h", "--docker", "unix:///x", "--max-parallel", "0"],
        ["host", "show", "nope"],
        ["host", "remove", "local"],
        ["delegate", "task", "--host", "nope"],
    ):
        done = cms.run(*args)
        assert done.code == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
    assert not hosts.hosts_file(cms_home).exists()


def test_the_proxy_opens_only_the_allowed_domains() -> None:
    domains = ["pypi.org", "api.example.com:8443"]
    assert allowed("pypi.org", 443, domains) and allowed("files.pypi.org", 443, domains)
    assert allowed("api.example.com", 8443, domains)
    assert not allowed("pypi.org", 22, domains)
    assert not allowed("evilpypi.org", 443, domains)
    assert not allowed("127.0.0.1", 443, domains)
    assert not allowed("api.example.com", 443, domains)


def test_the_image_tag_follows_its_inputs() -> None:
    assert host_ops.content_tag("debian:bookworm-slim") == host_ops.content_tag(
        "debian:bookworm-slim"
    )
    assert host_ops.content_tag("a:1") != host_ops.content_tag("a:2")


def test_a_projects_default_host_is_used(
    claude_env: dict[str, str], project: Path, cms_home: Path
) -> None:
    cms = Cms(claude_env, project)
    cms.ok("budget", "--max-parallel", "4")
    (config,) = cms_home.glob("projects/*/project.toml")
    text = config.read_text()
    assert text.count("[defaults]\n") == 1
    config.write_text(text.replace("[defaults]\n", '[defaults]\nhost = "nowhere"\n'))
    done = cms.run("delegate", "task", "--name", "x1")
    assert done.code == 2 and "'nowhere'" in done.stderr
    assert cms.ok("list") == []

"""``cms host ...``: the Docker hosts children can run on (parse, call
:mod:`cms.ops.hosts`, render text or JSON). Registered on the ``cms`` group by
:mod:`cms.ui.cli`; no logic lives here."""

from __future__ import annotations

import json
from typing import Any

import click

from cms.base import paths


def _emit(data: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        for line in lines:
            click.echo(line)


def _wants_json(local: bool) -> bool:
    """``--json`` on this command or on ``cms`` itself."""
    root = click.get_current_context().find_root()
    return local or bool(getattr(root.obj, "json", False))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine output on stdout.")


@click.group()
def host() -> None:
    """The Docker hosts children can run on (`local` is built in)."""


@host.command("add")
@click.argument("name")
@click.option(
    "--docker", "endpoint", required=True, help="unix://, ssh://, tcp:// or context:NAME."
)
@click.option("--image", type=str, help="The child image (default cms-child:latest).")
@click.option("--max-parallel", type=int, metavar="N", help="Turns at once on this host.")
@click.option("--cpus", type=float, metavar="N", help="CPUs of each turn's container.")
@click.option("--memory", type=str, metavar="SIZE", help="Memory of each container (e.g. 2g).")
@json_option
def add(name: str, endpoint: str, as_json: bool, **kw: Any) -> None:
    """Record Docker host NAME (without contacting it: `cms host check` does)."""
    from cms.ops import hosts

    added = hosts.add_host(paths.cms_home(), name, endpoint, **kw)
    _emit(added.public(), _wants_json(as_json), [f"host {name}: added ({endpoint})"])


@host.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every host: local and the Docker hosts."""
    from cms.ops import hosts

    found = hosts.list_hosts(paths.cms_home())
    lines = [f"{h['name']}\t{h['docker'] or 'this machine'}\t{h['image'] or '-'}" for h in found]
    _emit(found, _wants_json(as_json), lines)


@host.command("show")
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """One host's settings."""
    from cms.ops import hosts

    shown = hosts.show_host(paths.cms_home(), name)
    lines = [f"{key}: {value}" for key, value in shown.items() if value is not None]
    _emit(shown, _wants_json(as_json), lines)


@host.command("remove")
@click.argument("name")
@json_option
def remove(name: str, as_json: bool) -> None:
    """Forget Docker host NAME (its volumes stay until their sessions are deleted)."""
    from cms.ops import hosts

    gone = hosts.remove_host(paths.cms_home(), name)
    _emit(gone.public(), _wants_json(as_json), [f"host {name}: removed"])


@host.command("check")
@click.argument("name")
@json_option
def check(name: str, as_json: bool) -> None:
    """Whether NAME is usable: reachable, its image there, Claude Code in it runs."""
    from cms.ops import hosts

    checked = hosts.check_host(paths.cms_home(), name)
    lines = [f"host {name}: {line}" for line in checked.lines]
    _emit(checked.as_json(), _wants_json(as_json), lines)


@host.command("build-image")
@click.argument("name")
@click.option("--base", type=str, help="The image to start from (default debian:bookworm-slim).")
@json_option
def build_image(name: str, base: str | None, as_json: bool) -> None:
    """Build the child image on NAME from the Dockerfile cms ships."""
    from cms.ops import hosts

    built = hosts.build_image(paths.cms_home(), name, base)
    how = "already built, reused" if built.reused else "built"
    _emit(
        built.as_json(), _wants_json(as_json), [f"host {name}: {built.image} {how} ({built.tag})"]
    )

"""Every option of every `voxmeter` command says what it is for, and shows its default when it
has one, in `--help`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from voxmeter.entrypoints.cli.main import cli


def commands(
    group: click.Group = cli, prefix: str = "voxmeter"
) -> Iterator[tuple[str, click.Command]]:
    """Every command of the tree, groups included, with its full name."""
    yield prefix, group
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


OPTIONS = [
    (f"{name} {option.opts[0]}", option)
    for name, command in commands()
    for option in command.params
    if isinstance(option, click.Option) and option.opts[0] not in ("--help", "--version")
]


def test_the_tree_is_walked() -> None:
    names = {name for name, _ in commands()}
    assert {"voxmeter serve", "voxmeter token create", "voxmeter month close"} <= names
    assert len(OPTIONS) > 30


@pytest.mark.parametrize(("name", "option"), OPTIONS, ids=[name for name, _ in OPTIONS])
def test_every_option_has_help(name: str, option: click.Option) -> None:
    assert (option.help or "").strip(), f"{name} has no help text"


@pytest.mark.parametrize(("name", "option"), OPTIONS, ids=[name for name, _ in OPTIONS])
def test_every_default_is_shown(name: str, option: click.Option) -> None:
    """A default a user could not guess is shown: by click, or named in the help text."""
    if option.required or option.is_flag or option.multiple or option.default is None:
        return
    assert option.show_default or "default" in (option.help or "").lower(), name


def test_a_command_imports_only_its_own_module() -> None:
    """`voxmeter` loads a subcommand's module (and its dependencies) only when it runs."""
    probe = (
        "import sys\n"
        "from voxmeter.entrypoints.cli.main import cli\n"
        "cli_modules = 'voxmeter.entrypoints.cli.'\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith(cli_modules))\n"
        "print(loaded())\n"
        "cli.main(['daily', '--help'], prog_name='voxmeter', standalone_mode=False)\n"
        "print(loaded())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "['voxmeter.entrypoints.cli.lazy', 'voxmeter.entrypoints.cli.main']"
    assert "'voxmeter.entrypoints.cli.daily'" in out[-1]
    for other in ("usage", "watch", "serve", "admin"):
        assert f"cli.{other}'" not in out[-1]

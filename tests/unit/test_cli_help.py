"""Every option of every `voxmeter` command says what it is for, and shows its default when it
has one, in `--help`."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from voxmeter.entrypoints.cli.main import cli


def commands(
    group: click.Group = cli, prefix: str = "voxmeter"
) -> Iterator[tuple[str, click.Command]]:
    """Every command of the tree, groups included, with its full name."""
    yield prefix, group
    for name, command in sorted(group.commands.items()):
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

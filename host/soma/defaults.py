"""Defaults for every command's options, from the environment and a station file, with one
precedence everywhere:

    command line  >  environment (SOMA_PORT, ...)  >  station file  >  built-in default

A station file (TOML; `--station-file FILE`, before or after the subcommand, or
SOMA_STATION_FILE) says what a station's commands share: its ports, bath, fixture, plan,
key, sanctuary, station name, operator, database and firmware. Each key is the default of
the option in SETTINGS, in every command that has that option; relative paths in it are
relative to the file. The file is read once, bounded (soma.files), and a key it does not
know is refused in one line naming the file and the key.

`ports` is a list: the default of a repeatable --port (soma flash, soma station); a
command that takes one --port takes it only from a list of one. SOMA_PORT may name several
ports, separated by spaces, for the repeatable ones.

cli.LazyGroup applies this to each command as it loads it (`apply`): the environment
variable on each option (shown in --help) and the --station-file option, whose callback
sets the command's click default_map, the layer below the environment.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from soma.errors import SomaError
from soma.files import read_document

STATION_FILE_ENV = "SOMA_STATION_FILE"
STATION_FILE_MAX_BYTES = 16 * 1024  # a station file is a dozen lines
_GIVEN_FILE = "soma.station_file"  # ctx.meta: the --station-file given before the subcommand
_LOADED = "soma.station_settings"  # ctx.meta: {path: settings} read so far


@dataclass(frozen=True)
class Setting:
    option: str  # the option flag it is the default of
    envvar: str
    kind: type  # what the station file must give: str, int, or list (of str)
    path: bool = False  # a file path: relative to the station file


SETTINGS: dict[str, Setting] = {
    "ports": Setting("--port", "SOMA_PORT", list),
    "bath": Setting("--bath", "SOMA_BATH", str),
    "fixture": Setting("--fixture", "SOMA_FIXTURE", str),
    "plan": Setting("--plan", "SOMA_PLAN", str, path=True),
    "key": Setting("--key", "SOMA_KEY", str, path=True),
    "sanctuary": Setting("--sanctuary", "SOMA_SANCTUARY", int),
    "station": Setting("--station", "SOMA_STATION", str),
    "operator": Setting("--operator", "SOMA_OPERATOR", str),
    "database": Setting("--db", "SOMA_DB", str, path=True),
    "firmware": Setting("--firmware", "SOMA_FIRMWARE", str, path=True),
}
_BY_OPTION = {setting.option: name for name, setting in SETTINGS.items()}
STATION_FILE_HELP = f"Station file (TOML) of defaults for the options (default: ${STATION_FILE_ENV})."


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings of a station file, checked: {key: value}, paths made absolute."""
    data = read_document(path, "station file", limit=STATION_FILE_MAX_BYTES)
    if not isinstance(data, dict):
        raise SomaError(f"{path}: not a table of settings (a station file is key = value lines)")
    folder = Path(path).resolve().parent
    settings: dict[str, Any] = {}
    for name, value in data.items():
        setting = SETTINGS.get(name)
        if setting is None:
            raise SomaError(f"{path}: unknown key {name!r} (known: {', '.join(SETTINGS)})")
        if setting.kind is list and isinstance(value, str):
            value = [value]
        if setting.kind is list:
            if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
                raise SomaError(f"{path}: {name} must be a list of port names")
        elif setting.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SomaError(f"{path}: {name} must be a whole number")
        elif not isinstance(value, str) or not value:
            raise SomaError(f"{path}: {name} must be text")
        if setting.path and isinstance(value, str) and "://" not in value:
            value = str(folder / Path(value).expanduser())
        settings[name] = value
    return settings


def apply(command: click.Command) -> None:
    """Give `command` (and a group's subcommands) its environment variables and the
    --station-file option."""
    for param in command.params:
        name = _setting_of(param)
        if name is not None and param.envvar is None:
            param.envvar = SETTINGS[name].envvar
            if isinstance(param, click.Option):
                param.show_envvar = True
    if not any("--station-file" in param.opts for param in command.params):
        command.params.append(station_file_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            apply(sub)


def station_file_option() -> click.Option:
    return click.Option(
        ["--station-file"],
        metavar="FILE",
        envvar=STATION_FILE_ENV,
        is_eager=True,  # before the options it gives defaults to
        expose_value=False,
        callback=_use_station_file,
        help=STATION_FILE_HELP,
    )


def given_before_command(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """`soma --station-file FILE COMMAND`: kept for the command (read there, where an error
    is one line like any other)."""
    if value is not None and ctx.get_parameter_source(param.name or "") == ParameterSource.COMMANDLINE:
        ctx.meta[_GIVEN_FILE] = value


def _use_station_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if ctx.get_parameter_source(param.name or "") != ParameterSource.COMMANDLINE:
        value = ctx.meta.get(_GIVEN_FILE, value)  # the command line before the subcommand, then the environment
    if not value:
        return
    loaded: dict[str, dict[str, Any]] = ctx.meta.setdefault(_LOADED, {})
    if value not in loaded:
        loaded[value] = load(value)
    ctx.default_map = {**(ctx.default_map or {}), **defaults_for(ctx.command, loaded[value])}


def defaults_for(command: click.Command, settings: dict[str, Any]) -> dict[str, Any]:
    """{parameter name: default} of `command`'s options that `settings` gives."""
    defaults: dict[str, Any] = {}
    for param in command.params:
        name = _setting_of(param)
        if name is None or name not in settings or param.name is None:
            continue
        value = settings[name]
        if isinstance(value, list) and not param.multiple:
            if len(value) != 1:
                continue  # one port of several: the command line must say which
            value = value[0]
        defaults[param.name] = value
    return defaults


def _setting_of(param: click.Parameter) -> str | None:
    """The setting that gives this parameter's default, if any (options that take a value)."""
    if not isinstance(param, click.Option) or param.is_flag:
        return None
    return next((_BY_OPTION[flag] for flag in param.opts if flag in _BY_OPTION), None)


def on_command_line(ctx: click.Context, name: str) -> bool:
    """Whether option `name` was given on the command line, not taken from a default (the
    environment or a station file): what the user typed wins over what a default holds."""
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE

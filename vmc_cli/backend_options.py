"""Options a backend declares for itself (``vmc tune ... --option NAME=VALUE``).

A backend lists what it accepts when it registers (``register(..., options=[BackendOption(...)])``),
so ``vmc backends`` and ``--help`` show it without importing model code, and the core checks
what the user gave before any model loads: an option the backend does not declare, one given
to a command it is not for, or a value of the wrong type is one ``Error:`` line. The values,
converted to the declared types, reach the backend as keyword arguments of ``configure()`` and
``load()``. A new backend's options need no change in the core.

``--adapter`` (animatediff's MotionAdapter) keeps its own flag; it is the same as
``--option adapter=VALUE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import VmcError

#: the commands whose runs load a backend, so take backend options
COMMANDS = ("tune", "invert", "generate", "export", "import")
#: options the CLI also takes under a flag of their own (kept as they were before --option)
FLAGS = {"adapter": "--adapter"}
_TYPES = {str: "text", int: "a whole number", float: "a number", bool: "yes or no"}
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def spelling(name: str) -> str:
    """How the user gives option ``name`` on the command line: ``--adapter``, ``--option foo=...``."""
    return FLAGS.get(name, f"--option {name}=...")


def named(name: str) -> str:
    """Option ``name`` in a message: ``--adapter``, ``option 'foo'``."""
    return FLAGS.get(name, f"option {name!r}")


def given_as(name: str, value: Any) -> str:
    """What the user typed: ``--adapter 'x'``, ``--option foo='x'``."""
    return f"{FLAGS[name]} {value!r}" if name in FLAGS else f"--option {name}={value!r}"


@dataclass(frozen=True)
class BackendOption:
    """One option a backend takes: its ``name`` (a Python identifier, the keyword argument the
    backend receives), its ``type`` (str, int, float or bool), the ``default`` passed when it is
    not given (None: nothing is passed), a one-line ``help`` and the ``commands`` it is for."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    commands: tuple[str, ...] = COMMANDS

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"backend option name {self.name!r} is not a Python identifier")
        if self.type not in _TYPES:
            raise ValueError(f"backend option {self.name!r}: type {self.type!r} is not str, int, float or bool")
        unknown = sorted(set(self.commands) - set(COMMANDS))
        if unknown:
            raise ValueError(f"backend option {self.name!r}: {unknown[0]!r} is not one of {', '.join(COMMANDS)}")

    def convert(self, value: Any) -> Any:
        """``value`` (text from the command line, or a value from Python) as the declared type."""
        if value is None:
            return None
        if self.type is str:
            return str(value)
        if self.type in (bool, int) and isinstance(value, self.type) and isinstance(value, bool) == (self.type is bool):
            return value
        text = str(value).strip()
        try:
            if self.type is bool:
                if text.lower() in _YES or text.lower() in _NO:
                    return text.lower() in _YES
                raise ValueError
            if self.type is int:
                return int(text)
            if self.type is float:
                number = float(text)
                if not math.isfinite(number):
                    raise ValueError
                return number
        except ValueError:
            example = {bool: "1", int: "1", float: "0.5"}[self.type]
            raise VmcError(f"{given_as(self.name, value)} is not {_TYPES[self.type]}",
                           f"give e.g. {self.example(example)}") from None

    def example(self, value: str) -> str:
        flag = FLAGS.get(self.name)
        return f"{flag} {value}" if flag else f"--option {self.name}={value}"

    def describe(self) -> dict:
        """The declaration as ``vmc backends --json`` lists it."""
        return {"name": self.name, "type": self.type.__name__, "default": self.default, "help": self.help,
                "commands": list(self.commands), "flag": FLAGS.get(self.name)}

    def usage(self) -> str:
        """One line for ``vmc backends`` and ``--help``: ``adapter=TEXT (--adapter): help``."""
        kind = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "1|0"}[self.type]
        flag = f" ({FLAGS[self.name]})" if self.name in FLAGS else ""
        default = f" (default {self.default})" if self.default is not None else ""
        commands = "" if tuple(self.commands) == COMMANDS else f" [{', '.join(self.commands)} only]"
        return f"{self.name}={kind}{flag}: {self.help}{default}{commands}"


def check_declarations(backend: str, options: Iterable) -> tuple[BackendOption, ...]:
    """A plugin's ``options`` as registered: BackendOption objects with distinct names."""
    declared = tuple(options or ())
    seen: set[str] = set()
    for option in declared:
        if not isinstance(option, BackendOption):
            raise VmcError(f"backend {backend!r} declares an option that is not a BackendOption: {option!r}",
                           "fix or uninstall the plugin (options are vmc_cli.backend_options.BackendOption)")
        if option.name in seen:
            raise VmcError(f"backend {backend!r} declares option {option.name!r} twice",
                           "fix or uninstall the plugin")
        seen.add(option.name)
    return declared


def parse_given(pairs: list[str] | None, **flags: Any) -> dict[str, Any]:
    """``--option NAME=VALUE`` (repeatable) plus the options with flags of their own
    (``adapter=...`` from ``--adapter``; None: not given) -> ``{name: value}``, values as text.
    Only the form is checked here; which backend takes them is known once it is chosen."""
    given: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not name.isidentifier():
            raise VmcError(f"--option {pair!r} is not NAME=VALUE",
                           "write the option's name, =, and its value; `vmc backends` lists each backend's options")
        if name in given:
            raise VmcError(f"--option {name}=... is given twice", f"give --option {name}=... once")
        given[name] = value
    for name, value in flags.items():
        if value is None:
            continue
        if name in given:
            raise VmcError(f"{FLAGS.get(name, name)} and --option {name}=... are both given",
                           f"give {FLAGS.get(name, name)} only")
        given[name] = value
    return given


def resolve(backend_name: str, declared: Iterable[BackendOption], given: dict[str, Any],
            command: str | None = None, takers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The keyword arguments for a backend's ``configure()``/``load()``: every option given,
    checked against what the backend declares and converted to its type, plus the declared
    defaults that are not None. ``takers`` maps option names to the backends that declare them,
    for the hint of an option this backend does not take."""
    by_name = {o.name: o for o in declared}
    for name in given:
        option = by_name.get(name)
        if option is None:
            others = [b for b in (takers or {}).get(name, []) if b != backend_name]
            hint = (f"drop {spelling(name)} (it is for {', '.join(others)})" if others else
                    f"drop {spelling(name)}; `vmc backends` lists each backend's options")
            raise VmcError(f"backend {backend_name!r} takes no {named(name)}", hint)
        if command is not None and command not in option.commands:
            raise VmcError(f"backend {backend_name!r} takes {named(name)} in vmc {' / '.join(option.commands)}, "
                           f"not in vmc {command}", f"drop {spelling(name)}")
    values = {o.name: o.default for o in by_name.values() if o.default is not None
              and (command is None or command in o.commands)}
    values.update({name: by_name[name].convert(value) for name, value in given.items()})
    return values

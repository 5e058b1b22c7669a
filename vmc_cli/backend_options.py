"""Options a backend declares for itself (``vmc tune ... --option NAME=VALUE``).

A backend lists what it accepts when it registers (``register(..., options=[BackendOption(...)])``),
so ``vmc backends`` and ``--help`` show it without importing model code, and the core checks
what the user gave before any model loads: an option the backend does not declare, one given
to a command it is not for, or a value of the wrong type is one ``Error:`` line. The values,
converted to the declared types, reach the backend as keyword arguments of ``configure()`` and
``load()``. A new backend's options need no change in the core.

A setting may also come from an environment variable the backend names (``env``), for what a
user sets once per machine (a local model folder, a memory switch): the command line wins over
it, and it is checked like a given value. ``model_path`` is the one option the core spells as a
flag of its own, ``--model-path``; the backend still declares it, with its variable and help.
A backend reads its settings through its declaration (:meth:`BackendOption.value`), never from
``os.environ`` itself, so what ``vmc backends`` lists is what there is.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterable

from vmc_cli.errors import VmcError

#: the commands whose runs load a backend, so take backend options
COMMANDS = ("tune", "invert", "generate", "export", "import")
#: options the core spells as a flag of its own (the model's folder or hub id, every backend has one)
FLAGS = {"model_path": "--model-path"}
_TYPES = {str: "text", int: "a whole number", float: "a number", bool: "yes or no"}
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def spelling(name: str) -> str:
    """How the user gives option ``name`` on the command line: ``--model-path``, ``--option foo=...``."""
    return FLAGS.get(name, f"--option {name}=...")


def named(name: str) -> str:
    """Option ``name`` in a message: ``--model-path``, ``option 'foo'``."""
    return FLAGS.get(name, f"option {name!r}")


def given_as(name: str, value: Any) -> str:
    """What the user typed: ``--model-path 'x'``, ``--option foo='x'``."""
    return f"{FLAGS[name]} {value!r}" if name in FLAGS else f"--option {name}={value!r}"


@dataclass(frozen=True)
class BackendOption:
    """One setting a backend takes: its ``name`` (a Python identifier, the keyword argument the
    backend receives), its ``type`` (str, int, float or bool), the ``default`` used when it is
    not given (None: nothing is passed), a one-line ``help``, the ``commands`` it is for, the
    environment variable ``env`` that may also set it, the values it accepts: ``choices``
    (for text) or ``range`` (low, high; either may be None) for numbers, and whether a profile
    ``kept`` it: later commands on the profile use the value it was tuned with unless given
    (every resolved value is recorded in the manifest either way)."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    commands: tuple[str, ...] = COMMANDS
    env: str | None = None
    choices: tuple[str, ...] = ()
    range: tuple[Any, Any] | None = None
    kept: bool = False

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"backend option name {self.name!r} is not a Python identifier")
        if self.type not in _TYPES:
            raise ValueError(f"backend option {self.name!r}: type {self.type!r} is not str, int, float or bool")
        unknown = sorted(set(self.commands) - set(COMMANDS))
        if unknown:
            raise ValueError(f"backend option {self.name!r}: {unknown[0]!r} is not one of {', '.join(COMMANDS)}")
        if self.choices and self.type is not str:
            raise ValueError(f"backend option {self.name!r}: choices are for text options")
        if self.range is not None and self.type not in (int, float):
            raise ValueError(f"backend option {self.name!r}: a range is for numbers")
        if self.env is not None and not (self.env.isidentifier() and self.env.upper() == self.env):
            raise ValueError(f"backend option {self.name!r}: {self.env!r} is not an environment variable name")

    def convert(self, value: Any, source: str | None = None) -> Any:
        """``value`` (text from the command line or the environment, or a value from Python) as
        the declared type, checked against its choices or range. ``source``: the environment
        variable it came from, for the message."""
        if value is None:
            return None
        shown = f"{source}={value!r}" if source else given_as(self.name, value)
        hint_set = (lambda v: f"set e.g. {source}={v}, or unset it") if source else (lambda v: f"give e.g. {self.example(v)}")
        if self.type is str:
            text = str(value)
            if self.choices and text.strip().lower() not in self.choices:
                raise VmcError(f"{shown} is not one of {', '.join(self.choices)}", hint_set(self.choices[0]))
            return text.strip().lower() if self.choices else text
        if self.type in (bool, int) and isinstance(value, self.type) and isinstance(value, bool) == (self.type is bool):
            return self._in_range(value, shown, hint_set)
        text = str(value).strip()
        try:
            if self.type is bool:
                if text.lower() in _YES or text.lower() in _NO:
                    return text.lower() in _YES
                raise ValueError
            if self.type is int:
                return self._in_range(int(text), shown, hint_set)
            if self.type is float:
                number = float(text)
                if not math.isfinite(number):
                    raise ValueError
                return self._in_range(number, shown, hint_set)
        except ValueError:
            example = {bool: "1", int: "1", float: "0.5"}[self.type]
            raise VmcError(f"{shown} is not {_TYPES[self.type]}", hint_set(example)) from None

    def _in_range(self, number, shown: str, hint_set) -> Any:
        if self.range is None or isinstance(number, bool):
            return number
        low, high = self.range
        if (low is not None and number < low) or (high is not None and number > high):
            raise VmcError(f"{shown} is out of range ({self._range_text()})",
                           hint_set(low if low is not None else high))
        return number

    def _range_text(self) -> str:
        low, high = self.range or (None, None)
        return (f"{low} to {high}" if low is not None and high is not None else
                f"at least {low}" if low is not None else f"at most {high}")

    def from_environment(self, environ=None) -> Any:
        """The value its environment variable sets (converted and checked), or None."""
        environ = os.environ if environ is None else environ
        if not self.env:
            return None
        text = environ.get(self.env, "").strip()
        return self.convert(text, source=self.env) if text else None

    def value(self, given: Any = None, environ=None) -> Any:
        """What the backend uses: ``given`` (converted), else its environment variable, else its default."""
        if given is not None:
            return self.convert(given)
        found = self.from_environment(environ)
        return self.default if found is None else found

    def example(self, value: Any) -> str:
        flag = FLAGS.get(self.name)
        return f"{flag} {value}" if flag else f"--option {self.name}={value}"

    def describe(self) -> dict:
        """The declaration as ``vmc backends --json`` lists it."""
        return {"name": self.name, "type": self.type.__name__, "default": self.default, "help": self.help,
                "commands": list(self.commands), "flag": FLAGS.get(self.name), "env": self.env,
                "choices": list(self.choices) or None, "range": list(self.range) if self.range else None,
                "kept": self.kept}

    def usage(self) -> str:
        """One line for ``vmc backends`` and ``--help``:
        ``inversion=authors|model (or $VMC_SHOW1_INVERSION): help (default authors)``."""
        kind = ("|".join(self.choices) if self.choices else
                {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "1|0"}[self.type])
        if self.range is not None:
            kind += f", {self._range_text()}"
        spelled = [FLAGS[self.name]] if self.name in FLAGS else []
        spelled += [f"${self.env}"] if self.env else []
        also = f" ({', '.join(spelled)})" if spelled else ""
        shown = int(self.default) if isinstance(self.default, bool) else self.default
        default = f" (default {shown})" if self.default is not None else ""
        commands = "" if tuple(self.commands) == COMMANDS else f" [{', '.join(self.commands)} only]"
        return f"{self.name}={kind}{also}: {self.help}{default}{commands}"


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
    (None: not given) -> ``{name: value}``, values as text.
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
        if name in FLAGS:
            raise VmcError(f"--option {name}=... is {FLAGS[name]}", f"give {FLAGS[name]} {value}")
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
            command: str | None = None, takers: dict[str, list[str]] | None = None,
            environ=None) -> dict[str, Any]:
    """The keyword arguments for a backend's ``configure()``/``load()``: every option given,
    checked against what the backend declares and converted to its type, then those set by
    their environment variables (checked the same way), then the declared defaults that are not
    None; options not for ``command`` are left out. ``takers`` maps option names to the backends
    that declare them, for the hint of an option this backend does not take."""
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
    values = {}
    for option in by_name.values():
        if command is not None and command not in option.commands:
            continue
        value = option.convert(given[option.name]) if option.name in given else option.value(None, environ)
        if value is not None:
            values[option.name] = value
    return values

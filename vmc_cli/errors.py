"""Errors a user can act on.

Every expected failure is raised as :class:`VmcError`; the CLI turns it into
one ``Error: ...`` line plus an optional hint on stderr and exit code 1.
"""

from __future__ import annotations


class VmcError(Exception):
    """An error the user can fix: bad input, missing files, offline weights...

    ``message`` is one line saying what is wrong; ``hint`` says what to do.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message

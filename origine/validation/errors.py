"""Why validation could not run."""

from __future__ import annotations

from origine.errors import OrigineError


class ValidationError(OrigineError):
    """Validation could not run (missing table, locked file, bad suite, an expectation
    that raised with ``raise_on_error``). Messages never carry raw data values."""

    exit_code = 2


class SuiteError(ValidationError):
    """A suite file is malformed: names the file and the check."""

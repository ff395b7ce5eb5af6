"""One error hierarchy for everything a user can get wrong.

The CLI prints ``str(error)`` as one line and exits with status 2; the future
HTTP layer maps the same classes to status codes in one place.
"""

from __future__ import annotations


class AssayError(Exception):
    """Base class: an error caused by input, configuration or usage, not a bug."""


class ScenarioError(AssayError):
    """A scenario file is invalid. Names the scenario id and the field."""

    def __init__(self, message: str, *, source: str = "", scenario: str = "", field: str = ""):
        self.source = source
        self.scenario = scenario
        self.field = field
        self.reason = message
        where = []
        if source:
            where.append(source)
        if scenario:
            where.append(f"scenario '{scenario}'")
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class WhereSyntaxError(AssayError):
    """A ``where`` expression does not parse."""

    def __init__(self, text: str, position: int, message: str):
        self.text = text
        self.position = position
        super().__init__(f"{message} at position {position} in {text!r}")


class InputError(AssayError):
    """A row of input cannot be used. Names file, row, column and value."""

    def __init__(self, file: str, row: int | None, column: str, value: object, reason: str):
        self.file = file
        self.row = row
        self.column = column
        self.value = value
        self.reason = reason
        at = f"{file}: row {row}" if row is not None else f"{file}"
        super().__init__(f"{at}, column '{column}', value {value!r}: {reason}")


class UsageError(AssayError):
    """A command or API call was used wrongly (unknown option, missing file...)."""


class ServiceError(AssayError):
    """A service assay depends on (the store, NATS) failed: retry, or restart once it is back."""

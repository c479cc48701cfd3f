"""Legacy import and binding errors."""

from __future__ import annotations

from scrm.errors import Conflict, InvalidInput, NotFound


class InvalidMapping(InvalidInput):
    """The column mapping does not fit the file."""

    code = "legacy_invalid_mapping"


class UnreadableFile(InvalidInput):
    """The file is not a CSV or XLSX file this import can read."""

    code = "legacy_unreadable_file"


class InvalidOrdersParent(Conflict):
    """An orders file must name a finished members import, and stays with the one it was first imported for."""

    code = "legacy_invalid_orders_parent"


class BatchNotFound(NotFound):
    """Import batch not found."""

    code = "legacy_batch_not_found"


class ConflictNotFound(NotFound):
    """Binding conflict not found."""

    code = "legacy_conflict_not_found"


class BindingNotFound(NotFound):
    """Legacy binding not found."""

    code = "legacy_binding_not_found"


class ConflictAlreadyResolved(Conflict):
    """This conflict is no longer open."""

    code = "legacy_conflict_not_open"


class InvalidResolution(InvalidInput):
    """This resolution does not fit the conflict."""

    code = "legacy_invalid_resolution"


class BindingAlreadyReversed(Conflict):
    """This binding was already reversed."""

    code = "legacy_binding_reversed"

"""Several row lists read in one round trip on PostgreSQL (json_agg), decoded back to the types the ORM gives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Date, DateTime, ScalarSelect, Select, TypeDecorator, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session


def folds_lists(session: Session) -> bool:
    """Whether the database aggregates rows to JSON (PostgreSQL); elsewhere readers run one query per list."""
    return session.get_bind().dialect.name == "postgresql"


_DIALECT = postgresql.dialect()


def _parser(column_type: Any) -> Callable[[str], Any] | None:
    # JSON carries timestamps and dates as ISO 8601 text; the views expect the objects the ORM returns, so the
    # text is parsed and then given to the column type's own result processing (UTCDateTime: normalised to UTC).
    decorator = column_type if isinstance(column_type, TypeDecorator) else None
    base = decorator.impl_instance if decorator is not None else column_type
    if isinstance(base, DateTime):
        parse: Callable[[str], Any] = datetime.fromisoformat
    elif isinstance(base, Date):
        parse = date.fromisoformat
    else:
        return None
    if decorator is None:
        return parse
    return lambda text: decorator.process_result_value(parse(text), _DIALECT)


@dataclass(frozen=True, slots=True)
class JsonRows:
    """One row list as a scalar subquery (a JSON array, ordered by `order`) and its decoder."""

    column: ScalarSelect[Any]
    parsers: dict[str, Callable[[str], Any]]

    def decode(self, value: list[dict[str, Any]] | None) -> list[SimpleNamespace]:
        """The array's rows as attribute objects, timestamps and dates parsed back."""
        rows = []
        for item in value or ():
            for key, parse in self.parsers.items():
                if item.get(key) is not None:
                    item[key] = parse(item[key])
            rows.append(SimpleNamespace(**item))
        return rows


def json_rows(query: Select[Any], *order: str) -> JsonRows:
    """`query` (bounded by its own WHERE/LIMIT) aggregated to one JSON array; `order` names its columns,
    `-name` for descending, because an aggregate does not keep the subquery's order by itself."""
    sub = query.subquery()
    keys = [sub.c[name[1:]].desc() if name.startswith("-") else sub.c[name] for name in order]
    column = select(func.json_agg(aggregate_order_by(sub.table_valued(), *keys))).scalar_subquery()
    parsers = {c.key: parse for c in sub.c if (parse := _parser(c.type)) is not None}
    return JsonRows(column=column, parsers=parsers)

"""T12: the ledger against an in-memory model (a Hypothesis state machine) on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import Engine, func, select

from member.errors import InsufficientPoints
from member.models import LoyaltyAccount, PointsEntry
from member.services import ledger
from scrm.audit import Actor
from scrm.clock import utcnow
from scrm.db import Database
from tests.member.loyalty_support import new_member

STAFF = Actor("staff", 1, "admin")


@dataclass
class Lot:
    entry_id: int
    amount: int
    remaining: int
    state: str
    available_day: int | None
    expires_day: int | None


class LedgerMachine(RuleBasedStateMachine):
    """Earn, spend, adjust, advance the clock, unlock, expire, reverse and redeliver, checked after every step:
    balance = Σ available deltas = the model's ≥ 0 (pending likewise), lots' remaining points match, each key once.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.connection = engine.connect()
        self.outer = self.connection.begin()
        self.session = Database(self.connection).session()
        self.member_id = new_member(self.session).id
        self.base = utcnow()
        self.day = 0
        self.balance = 0
        self.pending = 0
        self.rows = 0
        self.lots: list[Lot] = []
        self.done: list[tuple[str, dict[str, Any], Any]] = []
        self.counter = 0

    def teardown(self) -> None:
        self.session.close()
        self.outer.rollback()
        self.connection.close()

    # --- helpers ---

    def at(self, day: int) -> datetime:
        return self.base + timedelta(days=day)

    def key(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}-{self.counter}"

    def consume(self, points: int, prefer: int | None = None) -> None:
        def order(lot: Lot) -> tuple:
            return (
                0 if lot.entry_id == prefer else 1,
                1 if lot.expires_day is None else 0,
                lot.expires_day or 0,
                lot.entry_id,
            )

        for lot in sorted((lot for lot in self.lots if lot.state == "available" and lot.remaining), key=order):
            take = min(points, lot.remaining)
            lot.remaining -= take
            points -= take
        assert points == 0

    def call(self, kind: str, args: dict[str, Any]) -> Any:
        if kind == "earn":
            return ledger.earn(self.session, member_id=self.member_id, reason="r", source="model", **args)
        if kind == "spend":
            return ledger.spend(self.session, member_id=self.member_id, reason="r", source="model", **args)
        if kind == "adjust":
            return ledger.adjust(self.session, member_id=self.member_id, reason="r", actor=STAFF, **args)
        return ledger.reverse(self.session, member_id=self.member_id, reason="r", source="model", **args)

    # --- rules ---

    @rule(
        points=st.integers(1, 100),
        delay=st.one_of(st.none(), st.integers(1, 5)),
        valid=st.one_of(st.none(), st.integers(1, 10)),
    )
    def earn(self, points: int, delay: int | None, valid: int | None) -> None:
        available_day = None if delay is None else self.day + delay
        expires_day = None if valid is None else (available_day or self.day) + valid
        args = {
            "points": points,
            "key": self.key("earn"),
            "available_at": None if available_day is None else self.at(available_day),
            "expires_at": None if expires_day is None else self.at(expires_day),
        }
        entry = self.call("earn", args)
        state = "pending" if delay else "available"
        self.lots.append(Lot(entry.id, points, points, state, available_day, expires_day))
        if state == "pending":
            self.pending += points
        else:
            self.balance += points
        self.rows += 1
        self.done.append(("earn", args, entry.id))

    @rule(points=st.integers(1, 150))
    def spend(self, points: int) -> None:
        args = {"points": points, "key": self.key("spend")}
        if points > self.balance:
            with pytest.raises(InsufficientPoints):
                self.call("spend", args)
            return
        entry = self.call("spend", args)
        self.consume(points)
        self.balance -= points
        self.rows += 1
        self.done.append(("spend", args, entry.id))

    @rule(points=st.integers(-80, 80).filter(bool))
    def adjust(self, points: int) -> None:
        args = {"points": points, "key": self.key("adjust")}
        if points < 0 and -points > self.balance:
            with pytest.raises(InsufficientPoints):
                self.call("adjust", args)
            return
        entry = self.call("adjust", args)
        if points > 0:
            self.lots.append(Lot(entry.id, points, points, "available", None, None))
            self.balance += points
        else:
            self.consume(-points)
            self.balance += points
        self.rows += 1
        self.done.append(("adjust", args, entry.id))

    @rule(days=st.integers(1, 4))
    def advance(self, days: int) -> None:
        self.day += days

    @rule()
    def unlock(self) -> None:
        ledger.unlock_due(self.session, now=self.at(self.day))
        for lot in self.lots:
            if lot.state == "pending" and lot.available_day is not None and lot.available_day <= self.day:
                lot.state = "available"
                self.pending -= lot.remaining
                self.balance += lot.remaining

    @rule()
    def expire(self) -> None:
        expired = ledger.expire_due(self.session, now=self.at(self.day))
        expected = 0
        for lot in self.lots:
            due = lot.expires_day is not None and lot.expires_day <= self.day
            if lot.state == "available" and due and lot.remaining:
                expected += lot.remaining
                self.balance -= lot.remaining
                if lot.remaining < lot.amount:
                    self.rows += 1
                lot.state, lot.remaining = "expired", 0
        assert expired == expected

    @precondition(lambda self: self.lots)
    @rule(data=st.data(), points=st.integers(1, 120))
    def reverse(self, data: st.DataObject, points: int) -> None:
        lot = data.draw(st.sampled_from(self.lots))  # credits only: a debit is not a lot
        args = {"entry_id": lot.entry_id, "points": points, "key": self.key("reverse")}
        result = self.call("reverse", args)
        if lot.state == "pending":
            taken = min(points, lot.remaining)
            lot.remaining -= taken
            self.pending -= taken
            if lot.remaining == 0:
                lot.state = "reversed"
        elif lot.state == "reversed":
            taken = 0
        else:
            taken = min(points, self.balance)
            self.consume(taken, prefer=lot.entry_id)
            self.balance -= taken
        assert (result.reversed, result.shortfall) == (taken, points - taken)
        self.rows += 1
        self.done.append(("reverse", args, result.entry.id))

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        kind, args, entry_id = data.draw(st.sampled_from(self.done))
        again = self.call(kind, args)
        assert (again.entry if kind == "reverse" else again).id == entry_id

    # --- invariants ---

    @invariant()
    def ledger_matches_the_model(self) -> None:
        def total(state: str) -> int:
            return self.session.scalar(
                select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
                    PointsEntry.member_id == self.member_id, PointsEntry.state == state
                )
            )

        account = self.session.get(LoyaltyAccount, self.member_id)
        balance = account.points_balance if account else 0
        pending = account.points_pending if account else 0
        assert balance == total("available") == self.balance >= 0
        assert pending == total("pending") == self.pending >= 0
        assert ledger.balance(self.session, self.member_id) == self.balance
        rows = self.session.scalar(select(func.count()).where(PointsEntry.member_id == self.member_id))
        keys = self.session.scalar(
            select(func.count(PointsEntry.key.distinct())).where(PointsEntry.member_id == self.member_id)
        )
        assert rows == keys == self.rows
        remaining = dict(
            self.session.execute(
                select(PointsEntry.id, PointsEntry.remaining).where(
                    PointsEntry.member_id == self.member_id,
                    PointsEntry.kind.in_(("earn", "adjust")),
                    PointsEntry.delta > 0,
                )
            ).all()
        )
        assert remaining == {lot.entry_id: lot.remaining for lot in self.lots}


def test_ledger_against_the_model(pg_engine: Engine) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(pg_engine),
        settings=settings(max_examples=50, stateful_step_count=30, deadline=None),
    )

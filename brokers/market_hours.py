"""When the runner may trade: the broker's clock and calendar decide.

Orders go out only while the regular session is open and not within ``close_buffer`` of the close (a
market day order sent seconds before the bell may not fill, and early closes come from the calendar, not
from a fixed 16:00). Holidays have no session in the calendar, so they are skipped by construction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from brokers.base import Broker, Clock, TradingDay


@dataclass(frozen=True)
class TradingWindow:
    """Whether to send orders now and, if not, until when to wait.

    :param can_trade: True when orders may go out now.
    :param reason: one line for the log and the status view.
    :param wait_until: when to look again (the next open, or the next open after an imminent close).
    """

    can_trade: bool
    reason: str
    wait_until: pd.Timestamp | None


def trading_window(clock: Clock, close_buffer: pd.Timedelta = pd.Timedelta(minutes=5)) -> TradingWindow:
    """Decide from the market clock whether orders may go out now.

    :param clock: the broker's clock.
    :param close_buffer: stop sending this long before the close.
    """
    if not clock.is_open:
        return TradingWindow(False, f"market closed; opens {clock.next_open.isoformat()}", clock.next_open)
    if clock.next_close - clock.timestamp <= close_buffer:
        return TradingWindow(
            False, f"market closes at {clock.next_close.isoformat()}; no new orders", clock.next_open
        )
    return TradingWindow(True, f"market open until {clock.next_close.isoformat()}", None)


def sessions(broker: Broker, start: dt.date, end: dt.date) -> list[TradingDay]:
    """Trading sessions between two dates, holidays excluded, sorted by date.

    :param broker: the broker whose calendar is used.
    :param start: first date.
    :param end: last date (inclusive).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return sorted(broker.calendar(start, end), key=lambda d: d.date)


def is_trading_day(broker: Broker, day: dt.date) -> bool:
    """True when ``day`` has a regular session (False on weekends and holidays).

    :param broker: the broker whose calendar is used.
    :param day: the date in New York.
    """
    return any(d.date == day for d in broker.calendar(day, day))

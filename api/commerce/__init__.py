"""Commerce routes: trade (RFQ, quote, order), payments, logistics and scorecards."""

from __future__ import annotations

from api.commerce.trade import router

__all__ = ["router"]

"""Orders through the API against the real PostgreSQL: RFQ -> quote -> order, idempotent
placement under concurrency, FX stored on the order, state machines refusing bad moves."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.api import ApiHarness
from tests.support.commerce import (
    GTIN_A,
    GTIN_B,
    move_order,
    party_headers,
    place_order,
)

pytestmark = pytest.mark.integration


def _rfq(h: ApiHarness, buyer: dict[str, str], **body: Any) -> Any:
    """POST /commerce/rfqs to supplier sup-a; the raw reply."""
    return h.client.post("/commerce/rfqs", headers=buyer, json={"supplier_org": "sup-a", **body})


def _quote(h: ApiHarness, supplier: dict[str, str], rfq_id: str, **body: Any) -> Any:
    """POST a quote answering ``rfq_id``; the raw reply."""
    return h.client.post(f"/commerce/rfqs/{rfq_id}/quotes", headers=supplier, json=body)


def _accept(h: ApiHarness, buyer: dict[str, str], quote_id: str, key: str) -> Any:
    """Accept ``quote_id`` under Idempotency-Key ``key``; the raw reply."""
    return h.client.post(
        f"/commerce/quotes/{quote_id}/accept", headers={**buyer, "Idempotency-Key": key}, json={}
    )


def test_rfq_quote_accept_creates_order_with_history(h: ApiHarness) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    supplier = party_headers(h, "supplier", "sup-a")
    rfq = _rfq(h, buyer, currency="EUR", incoterm="CIF", lines=[{"gtin": GTIN_A, "quantity": 3}])
    assert rfq.status_code == 201, rfq.text
    rfq_id = rfq.json()["id"]
    valid = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    quote = _quote(
        h,
        supplier,
        rfq_id,
        incoterm="CIF",
        named_place="Jebel Ali",
        valid_until=valid,
        lines=[{"gtin": GTIN_A, "quantity": 3, "unit_price": "17.05"}],
    )
    assert quote.status_code == 201, quote.text
    quote_id = quote.json()["id"]
    # a wrong Incoterm is a 422, not a 500
    bad = _quote(
        h,
        supplier,
        rfq_id,
        incoterm="XYZ",
        named_place="x",
        valid_until=valid,
        lines=[{"gtin": GTIN_A, "quantity": 1, "unit_price": "1"}],
    )
    assert bad.status_code == 422
    accepted = _accept(h, buyer, quote_id, "acc-1")
    assert accepted.status_code == 201, accepted.text
    order_id = accepted.json()["order_id"]
    again = _accept(h, buyer, quote_id, "acc-1")
    assert again.status_code == 200 and again.json()["order_id"] == order_id
    order = h.client.get(f"/commerce/orders/{order_id}", headers=supplier).json()
    assert order["total_minor"] == 3 * 1705 and order["currency"] == "EUR"
    assert order["incoterm"] == "CIF" and order["named_place"] == "Jebel Ali"
    # accepting a quote twice is an invalid transition (a new key, same quote)
    third = _accept(h, buyer, quote_id, "acc-2")
    assert third.status_code == 409
    assert "quote" in third.json()["detail"] and "'accepted'" in third.json()["detail"]
    # another buyer does not see the order
    other = party_headers(h, "buyer", "buy-b")
    assert h.client.get(f"/commerce/orders/{order_id}", headers=other).status_code == 404


def test_invalid_order_transitions_are_refused_and_changes_recorded(h: ApiHarness) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    supplier = party_headers(h, "supplier", "sup-a")
    placed = place_order(h, buyer, "t-1", quantity=2)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    done = move_order(h, buyer, order_id, "completed")
    assert done.status_code == 409
    assert done.json()["detail"] == (
        f"order {order_id} is 'placed'; it cannot become 'completed'"
        " (allowed from 'placed': ['cancelled', 'confirmed'])"
    )
    ok = move_order(h, supplier, order_id, "confirmed")
    assert ok.status_code == 200 and ok.json() == {
        "order_id": order_id,
        "from": "placed",
        "to": "confirmed",
    }
    cancel = move_order(h, buyer, order_id, "cancelled")
    assert cancel.status_code == 200
    again = move_order(h, supplier, order_id, "confirmed")
    assert again.status_code == 409 and "final" in again.json()["detail"]
    history = h.client.get(f"/commerce/orders/{order_id}/history", headers=buyer).json()
    assert [(x["from"], x["to"]) for x in history] == [
        (None, "placed"),
        ("placed", "confirmed"),
        ("confirmed", "cancelled"),
    ]
    assert all(x["actor"].startswith(("buyer-", "supplier-")) and x["at"] for x in history)
    assert history[1]["actor"].startswith("supplier-")


def test_settlement_currency_uses_stored_fx_rate_half_even(h: ApiHarness) -> None:
    admin = party_headers(h, "admin", None)
    buyer = party_headers(h, "buyer", "buy-a")
    rate = h.client.post(
        "/commerce/fx-rates",
        headers=admin,
        json={
            "base": "USD",
            "quote": "JPY",
            "rate": "151.25",
            "source": "test desk",
            "observed_at": "2026-11-20T16:00:00+00:00",
        },
    )
    assert rate.status_code == 201, rate.text
    # 2 x 19.99 + 1 x 3.50 = 43.48 USD; x 151.25 = 6576.35 JPY -> 6576 (JPY has no minor unit)
    placed = place_order(
        h,
        buyer,
        "fx-1",
        incoterm="DDP",
        settlement_currency="JPY",
        lines=[{"gtin": GTIN_A, "quantity": 2}, {"gtin": GTIN_B, "quantity": 1}],
    )
    assert placed.status_code == 201, placed.text
    order = h.client.get(f"/commerce/orders/{placed.json()['order_id']}", headers=buyer).json()
    assert order["total_minor"] == 4348
    assert order["settlement_currency"] == "JPY" and order["settlement_minor"] == 6576
    assert order["fx_rate"].startswith("151.25") and order["fx_source"] == "test desk"
    # a float-ish or over-precise amount is refused, never rounded
    supplier = party_headers(h, "supplier", "sup-a")
    over = h.client.put(
        "/commerce/price-lists",
        headers=supplier,
        json={"gtin": GTIN_A, "currency": "JPY", "unit_price": "12.5"},
    )
    assert over.status_code == 422 and "JPY allows (0)" in over.json()["detail"]
    missing_fx = place_order(h, buyer, "fx-2", incoterm="EXW", settlement_currency="SAR")
    assert missing_fx.status_code == 422 and "no FX rate USD->SAR" in missing_fx.json()["detail"]
    no_price = place_order(h, buyer, "np-1", currency="GBP", incoterm="EXW")
    assert no_price.status_code == 422
    assert no_price.json()["detail"] == f"supplier sup-a has no GBP price for ['{GTIN_A}']"


def test_concurrent_double_submission_gives_one_order_and_one_charge(
    h: ApiHarness, proxy: Any
) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    body = {
        "supplier_org": "sup-a",
        "currency": "USD",
        "incoterm": "EXW",
        "lines": [{"gtin": GTIN_A, "quantity": 5}],
    }
    barrier = threading.Barrier(8)
    replies: list[Any] = []

    def submit(path: str, payload: dict[str, Any], key: str) -> None:
        barrier.wait()
        replies.append(h.client.post(path, headers={**buyer, "Idempotency-Key": key}, json=payload))

    threads = [
        threading.Thread(target=submit, args=("/commerce/orders", body, "dup-1")) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in replies) == [200] * 7 + [201], [r.text for r in replies]
    order_ids = {r.json()["order_id"] for r in replies}
    assert len(order_ids) == 1
    order_id = order_ids.pop()
    with h.connect() as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM order_lines").fetchone()[0] == 1
    supplier = party_headers(h, "supplier", "sup-a")
    move_order(h, supplier, order_id, "confirmed")

    replies.clear()
    barrier.reset()
    pay = {"method": "card"}
    threads = [
        threading.Thread(
            target=submit, args=(f"/commerce/orders/{order_id}/payments", pay, "pay-1")
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    assert len({r.json()["payment_id"] for r in replies}) == 1
    assert sum(r.json()["created"] for r in replies) == 1
    charges = proxy.payment_intent_posts()
    assert len(charges) == 1, charges  # stripe-mock saw exactly one charge
    with h.connect() as conn:
        row = conn.execute(
            "SELECT count(*), min(state), min(idempotency_key) FROM payments"
        ).fetchone()
    assert row[0] == 1 and row[1] == "submitted"
    assert charges[0].idempotency_key == row[2] == f"{order_id}:pay-1"


def test_expired_quote_cannot_be_accepted(h: ApiHarness) -> None:
    buyer = party_headers(h, "buyer", "buy-a")
    supplier = party_headers(h, "supplier", "sup-a")
    rfq_id = _rfq(h, buyer, currency="SGD", lines=[{"gtin": GTIN_B, "quantity": 100}]).json()["id"]
    valid = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    quote_id = _quote(
        h,
        supplier,
        rfq_id,
        incoterm="EXW",
        named_place="Jurong",
        valid_until=valid,
        lines=[{"gtin": GTIN_B, "quantity": 100, "unit_price": "2.10"}],
    ).json()["id"]
    with h.connect() as conn:  # time passes
        conn.execute("UPDATE quotes SET valid_until = now() - interval '1 minute'")
        conn.commit()
    late = _accept(h, buyer, quote_id, "late")
    assert late.status_code == 422 and "expired" in late.json()["detail"]
    with h.connect() as conn:
        assert conn.execute("SELECT state FROM quotes").fetchone()[0] == "expired"
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
        changes = conn.execute(
            "SELECT actor, from_state, to_state FROM state_changes WHERE entity = 'quote'"
            " ORDER BY id"
        ).fetchall()
    assert changes[-1] == ("system", "sent", "expired")

"""The authorization matrix, generated from the app's OpenAPI document and api/policy.py.

Every operation of the document must have an entry in ``OPERATIONS`` (a new endpoint without
one fails here), and docs/authorization.md must be the table ``python -m api.policy`` prints.
Then, against the real database, every operation is called by every role (and anonymously)
from six positions relative to the object it names: the object's own organisation, another
party, the auditors the own side engaged, an unrelated organisation, a user of no organisation,
and nobody. The expected outcome comes from the policy table and the world's known parties
(``RELATIONS`` below, written out by hand, not computed by the code under test):

- anonymous: 401 (public operations: anything but 401/403);
- a role the action does not admit: 403 naming the roles;
- actions on an object: 404 for no relation, 403 for a relation that may not act, otherwise
  allowed (any answer but 401/403/404: 200, 201, 409, 422 ... all mean "past authorization");
- actions without an object (lists, captures, placing orders): allowed past the role check; what
  they return is scoped, which tests/api/test_tenancy_attacks.py checks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from api.app import create_app
from api.auth import ROLES
from api.config import ApiConfig
from api.policy import OPERATIONS, POLICY, PUBLIC, markdown_table
from tests.support.alert_peers import api_server
from tests.support.api import ApiHarness, api_harness
from tests.support.inspections import minimal_pdf
from tests.support.tenancy import (
    GTIN,
    World,
    build_world,
    document,
    member,
    seed_parties,
    store_report,
    storing_event,
)
from tracehub.config import PROJECT_DIR, Settings

METHODS = ("get", "post", "put", "patch", "delete")


def _operations() -> set[tuple[str, str]]:
    app = create_app(ApiConfig(stack=Settings.from_env(), token_key=b"k" * 32))
    spec = app.openapi()
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_operation_has_a_policy_entry() -> None:
    operations = _operations()
    missing = sorted(operations - set(OPERATIONS))
    assert not missing, f"operations without an entry in api.policy.OPERATIONS: {missing}"
    stale = sorted(set(OPERATIONS) - operations)
    assert not stale, f"entries of api.policy.OPERATIONS the app does not have: {stale}"
    unknown = sorted({a for a in OPERATIONS.values() if a != PUBLIC and a not in POLICY})
    assert not unknown, f"actions missing from api.policy.POLICY: {unknown}"


def test_the_docs_table_is_the_policy() -> None:
    text = (PROJECT_DIR / "docs" / "authorization.md").read_text()
    assert markdown_table() in text, "regenerate the table: python -m api.policy"


# -- the matrix against the real stack ---------------------------------------------------

#: Each kind of object: its own organisation and another party (the world's).
POSITIONS: dict[str | None, tuple[str, str]] = {
    "order": ("buy", "sup"),
    "rfq": ("buy", "sup"),
    "quote": ("buy", "sup"),
    "payment": ("buy", "sup"),
    "shipment": ("sup", "car"),
    "alert": ("sup", "car"),
    "rule": ("sup", "car"),
    "rule_target": ("sup", "car"),
    "subscription": ("car", "sup"),
    "lot": ("sup", "insp"),
    "inspection": ("sup", "insp"),
    "capture": ("sup", "buy"),
    "organisation": ("sup", "buy"),
    "event": ("sup", "buy"),
    "product": ("sup", "buy"),
    "recall": ("sup", "buy"),
    None: ("sup", "buy"),
}
_SHIPMENT = {"sup": {"shipper"}, "buy": {"receiver"}, "car": {"carrier"}, "aud": {"auditor"}}
_LOT = {
    "sup": {"brand_owner", "supplier", "shipper"},
    "buy": {"receiver"},
    "car": {"carrier"},
    "insp": {"inspection"},
    "aud": {"auditor"},
}
_ORDER = {"buy": {"buyer"}, "sup": {"supplier"}, "aud": {"auditor"}}
#: The world's parties, by kind of object and organisation (tests/support/tenancy.py).
RELATIONS: dict[str, dict[str, set[str]]] = {
    "order": _ORDER,
    "rfq": _ORDER,
    "quote": _ORDER,
    "payment": _ORDER,
    "shipment": _SHIPMENT,
    "alert": _SHIPMENT,
    "rule": _SHIPMENT,
    "rule_target": _SHIPMENT,
    "subscription": {"car": {"owner"}},
    "lot": _LOT,
    "inspection": {**_LOT, "sup": _LOT["sup"] | {"commissioner"}},
    "capture": {"sup": {"owner"}},
    "organisation": {"sup": {"member"}},
    # Who finds the event in a query: its capturer, the lot's parties with keys of it, and the
    # receiver's auditors (the inspection organisation owns no key of the lot).
    "event": {"sup": {"party"}, "buy": {"party"}, "car": {"party"}, "aud": {"party"}},
    "product": {"sup": {"brand_owner"}},
    # the brand owner opened it; the buyer and carrier are affected; the buyer's auditors
    "recall": {
        "sup": {"brand_owner"},
        "buy": {"affected"},
        "car": {"affected"},
        "aud": {"auditor"},
    },
}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    kwargs: dict[str, Any]


def _fill(path: str, w: World) -> str:
    values = {
        "order_id": w.order,
        "payment_id": w.payment,
        "shipment_id": w.shipment,
        "alert_id": w.alert,
        "rule_id": w.rule,
        "subscription_id": w.subscription,
        "rfq_id": w.rfq,
        "quote_id": w.quote,
        "inspection_id": w.inspection,
        "recall_id": w.recall,
        "capture_id": w.capture,
        "event_id": quote(w.event_id, safe=""),
        "org_id": "sup",
        "gln": "4006381000017",
        "supplier_org": "sup",
        "batch_id": "ev-none",
        "device_id": "no-device",
        "seq": "1",
        "fingerprint": "0" * 64,  # enrolled nowhere: public, answers 404
        "rest": f"{GTIN}/10/{w.lot}",
        # no such user: an admin's revoke/disable/enable is allowed and answers 404, and no
        # user of the matrix loses its tokens
        "user_id": str(uuid.uuid4()),
        # a name no organisation has: past authorization, the lookup answers 404 (scoped)
        "queryName": "q-matrix",
        "subscriptionID": str(uuid.UUID(int=0)),
    }
    return path.format(**values)


def _soon(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


#: Request bodies (and headers) by operation; operations not named send none.
BODIES: dict[tuple[str, str], Callable[[World], dict[str, Any]]] = {
    ("POST", "/admin/organisations"): lambda w: {
        "json": {"org_id": f"o-{uuid.uuid4().hex[:8]}", "name": "N", "kind": "buyer"}
    },
    ("POST", "/admin/organisations/{org_id}/identifiers"): lambda w: {
        "json": {"kind": "gln", "value": str(uuid.uuid4().int)[:13]}
    },
    ("PUT", "/admin/organisations/{org_id}/locations/{gln}"): lambda w: {
        "json": {"name": "Plant", "city": "Nuremberg", "country_code": "DE"}
    },
    ("POST", "/admin/engagements"): lambda w: {"json": {"auditor_org": "aud", "client_org": "sup"}},
    ("PUT", "/organisations/{org_id}/publication"): lambda w: {"json": {}},
    ("PUT", "/commerce/price-lists"): lambda w: {
        "json": {"gtin": GTIN, "currency": "USD", "unit_price": "19.99", "supplier_org": "sup"}
    },
    ("POST", "/commerce/fx-rates"): lambda w: {
        "json": {
            "base": "EUR",
            "quote": "USD",
            "rate": "1.1",
            "source": "test",
            "observed_at": _soon(0),
        }
    },
    ("POST", "/commerce/rfqs"): lambda w: {
        "json": {"supplier_org": "sup", "currency": "USD", "lines": [{"gtin": GTIN, "quantity": 1}]}
    },
    ("POST", "/commerce/rfqs/{rfq_id}/quotes"): lambda w: {
        "json": {
            "incoterm": "FOB",
            "named_place": "X",
            "valid_until": _soon(),
            "lines": [{"gtin": GTIN, "quantity": 1, "unit_price": "1.00"}],
        }
    },
    ("POST", "/commerce/quotes/{quote_id}/accept"): lambda w: {"json": {}, "headers": _key()},
    ("POST", "/commerce/orders"): lambda w: {
        "json": {
            "supplier_org": "sup",
            "currency": "USD",
            "incoterm": "FOB",
            "lines": [{"gtin": GTIN, "quantity": 1}],
        },
        "headers": _key(),
    },
    ("POST", "/commerce/orders/{order_id}/transitions"): lambda w: {"json": {"to": "cancelled"}},
    ("POST", "/commerce/orders/{order_id}/payments"): lambda w: {
        "json": {"method": "bank_transfer"},
        "headers": _key(),
    },
    ("POST", "/commerce/webhooks/stripe"): lambda w: {
        "content": b"{}",
        "headers": {"Stripe-Signature": "t=1,v1=00"},
    },
    ("POST", "/commerce/orders/{order_id}/shipments"): lambda w: {
        "json": {
            "shipment_id": f"X-{uuid.uuid4().hex[:10]}",
            "origin": "a",
            "destination": "b",
            "lots": [{"gtin": GTIN, "lot": w.lot}],
        }
    },
    ("POST", "/commerce/shipments/{shipment_id}/carrier"): lambda w: {
        "json": {"carrier_org": "car"}
    },
    ("POST", "/commerce/shipments/{shipment_id}/custody"): lambda w: {
        "json": {"biz_step": "shipping", "at": _soon(0)}
    },
    ("PUT", "/commerce/scorecards/suppliers/{supplier_org}/inputs"): lambda w: {"json": {}},
    ("POST", "/alerts/rules"): lambda w: {
        "json": {
            "rule_id": f"r-{uuid.uuid4().hex[:10]}",
            "kind": "custody_gap",
            "shipment_id": w.shipment,
            "params": {"gap_s": 60},
        }
    },
    ("PUT", "/alerts/rules/{rule_id}"): lambda w: {
        "json": {
            "rule_id": w.rule,
            "kind": "custody_gap",
            "shipment_id": w.shipment,
            "params": {"gap_s": 90},
        }
    },
    ("POST", "/alerts/subscriptions"): lambda w: {
        "json": {"channel": "email", "target": "x@y.example"}
    },
    ("PUT", "/alerts/subscriptions/{subscription_id}"): lambda w: {
        "json": {"channel": "email", "target": "z@y.example"}
    },
    ("POST", "/epcis/capture"): lambda w: {
        "content": json.dumps(document(storing_event(w.lot, datetime.now(UTC))))
    },
    ("POST", "/epcis/queries"): lambda w: {
        "json": {"name": f"q-{uuid.uuid4().hex[:10]}", "query": {"EQ_bizStep": "storing"}}
    },
    ("POST", "/epcis/queries/{queryName}/subscriptions"): lambda w: {
        "json": {"dest": "http://127.0.0.1:9/hook", "stream": True}
    },
    ("POST", "/commerce/classifications"): lambda w: {"json": {"gtin": GTIN, "hs_code": "300241"}},
    ("POST", "/inspections/commissions"): lambda w: {
        "json": {"gtin": GTIN, "lot": w.lot, "inspection_org": "insp"}
    },
    ("POST", "/inspections"): lambda w: {
        "data": {"gtin": GTIN, "lot": w.lot, "result": "pass"},
        "files": {"report": ("r.pdf", minimal_pdf("m"), "application/pdf")},
    },
    ("GET", "/auditor/bundle"): lambda w: {"params": {"shipment_id": w.shipment}},
    ("POST", "/recalls"): lambda w: {
        "json": {"targets": [f"{GTIN}/{w.lot}"], "reason": "matrix", "class": "II"}
    },
    ("POST", "/recalls/{recall_id}/acknowledgements"): lambda w: {"json": {"located": 1}},
    ("GET", "/trace"): lambda w: {"params": {"id": f"{GTIN}/{w.lot}"}},
    ("GET", "/trace/graph.svg"): lambda w: {"params": {"id": f"{GTIN}/{w.lot}"}},
    ("GET", "/trace/fsma.csv"): lambda w: {"params": {"id": f"{GTIN}/{w.lot}"}},
    ("GET", "/trace/fsma.xlsx"): lambda w: {"params": {"id": f"{GTIN}/{w.lot}"}},
    ("GET", "/trace/epcis"): lambda w: {"params": {"id": f"{GTIN}/{w.lot}"}},
}
#: Object kinds named in the body rather than the path.
BODY_KINDS = {
    ("POST", "/alerts/rules"): "rule_target",
    ("POST", "/inspections/commissions"): "lot",
    ("POST", "/inspections"): "lot",
    ("POST", "/recalls"): "product",
    ("POST", "/commerce/classifications"): "product",
}


def expected(operation: tuple[str, str], role: str | None, org: str | None) -> str:
    """allowed | 401 | 403 | 404 | scoped (allowed past the role check)."""
    action = OPERATIONS[operation]
    if action == PUBLIC:
        return "public"
    if role is None:
        return "401"
    rule = POLICY[action]
    kind = BODY_KINDS.get(operation, rule.kind)
    if role == "admin":
        return ("allowed" if kind else "scoped") if rule.admin else "403"
    if role not in rule.roles:
        return "403"
    if kind is None:
        return "scoped" if org is not None or not rule.needs_org else "403"
    relations = frozenset(RELATIONS[kind].get(org or "", set()))
    if role != "auditor":
        relations -= {"auditor"}
        if kind == "event" and org == "aud":
            relations = frozenset()  # only its auditors read what the engagement covers
    if not relations:
        return "404"
    return "allowed" if rule.allowed(relations, frozenset({role})) else "403"


def outcome(reply: httpx.Response) -> str:
    if reply.status_code in (401, 404):
        return str(reply.status_code)
    if reply.status_code == 403:
        roles = "needs one of the roles" in reply.text
        return "403-role" if roles else "403"
    return "allowed"


def agrees(want: str, got: str) -> bool:
    if want == "public":
        return got not in ("401", "403", "403-role")
    if want == "scoped":
        # Past the role check: a scoped action may still refuse what lies outside the scope.
        return got not in ("401", "403-role")
    if want == "403":
        return got in ("403", "403-role")
    return want == got


@dataclass
class Matrix:
    h: ApiHarness
    report: tuple[str, str]
    users: dict[tuple[str, str | None], dict[str, str]]
    base_url: str


@pytest.fixture(scope="module")
def matrix(stack: Settings) -> Iterator[Matrix]:
    with api_harness(stack) as h:
        seed_parties(h)
        users = {
            (role, org): member(h, role, org)
            for role in ROLES
            for org in ("sup", "buy", "car", "insp", "aud", "rival", None)
        }
        with api_server(h.config) as base_url:
            yield Matrix(h, store_report(), users, base_url)


def _call(m: Matrix, op: tuple[str, str], w: World, headers: dict[str, str]) -> httpx.Response:
    method, template = op
    spec = BODIES.get(op, lambda _: {})(w)
    path = _fill(template, w)
    merged = {**spec.pop("headers", {}), **headers}
    if op == ("GET", "/alerts/stream"):
        # A stream never ends: read the status line from a real server, then hang up.
        with (
            httpx.Client(timeout=10) as client,
            client.stream("GET", m.base_url + path, headers=merged) as reply,
        ):
            if reply.status_code != 200:
                reply.read()
            return reply
    return m.h.client.request(method, path, headers=merged, **spec)


def test_every_operation_role_and_relation(matrix: Matrix) -> None:
    m = matrix
    cases = 0
    wrong: list[str] = []
    for op in sorted(OPERATIONS):
        action = OPERATIONS[op]
        kind = BODY_KINDS.get(op, POLICY[action].kind if action != PUBLIC else None)
        own, party = POSITIONS[kind]
        positions = {
            "own": own,
            "party": party,
            "engaged": "aud",
            "unrelated": "rival",
            "none": None,
        }
        w = build_world(m.h, m.report)
        plan: list[tuple[str, str | None, str | None]] = [("anonymous", None, None)]
        plan += [(pos, role, org) for role in ROLES for pos, org in positions.items()]
        for position, role, org in plan:
            headers = {} if role is None else m.users[(role, org)]
            if op == ("POST", "/auth/revoke") and role is not None:
                headers = member(m.h, role, org)  # revoking spends the token: a user of its own
            want = expected(op, role, org)
            got = outcome(_call(m, op, w, headers))
            cases += 1
            if not agrees(want, got):
                wrong.append(
                    f"{op[0]} {op[1]} as {role} of {position} ({org}): want {want}, got {got}"
                )
            if got == "allowed" and op[0] != "GET":
                w = build_world(m.h, m.report)  # a change may have used the object up
    print(f"authorization matrix: {len(OPERATIONS)} operations, {cases} cases")
    assert cases == len(OPERATIONS) * (1 + len(ROLES) * 5)
    assert not wrong, "\n".join(wrong)

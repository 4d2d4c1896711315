"""Who may do what: the one authorization table of the API, and its one entry point.

Every operation of the OpenAPI document names an action in :data:`OPERATIONS` (or is public),
and every action is one :class:`Rule` of :data:`POLICY`: which object's parties decide
(``kind``, looked up by ingest/parties.py), and which (relation, roles) pairs are allowed.
docs/authorization.md is the same table in prose; tests/api/test_authorization_matrix.py checks
every operation against it.

The outcome, for a signed-in caller (anonymous callers are 401 before any of this):

1. an admin is allowed wherever the rule admits admins (the hub's operators manage
   organisations and see across them; they are no party of anybody's trade);
2. a caller holding none of the rule's roles is refused, 403 (nothing about the object is
   looked at, so nothing leaks);
3. for a rule without an object (``kind`` None), the caller is allowed; what it reads is
   scoped to its organisation by the query (:func:`scope`);
4. otherwise the caller's relations to the object are its organisation's (an auditor's include
   ``auditor`` when the object's parties engaged its organisation). No relation at all: 404,
   as for an object that does not exist, so another company's objects cannot be probed. A
   relation, but not one the rule allows with the caller's roles: 403 (it sees the object, it
   may not act on it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import TypeAdapter, ValidationError

from api.auth import ROLES, AuthError, MissingRoleError, Principal, current_principal
from api.db import Connection, pool_of
from ingest.parties import Parties, aparties, ascope_orgs
from tracehub.errors import ForbiddenError, NotFoundError

__all__ = [
    "OPERATIONS",
    "POLICY",
    "PUBLIC",
    "Access",
    "NotPartyError",
    "PolicyError",
    "Rule",
    "Scope",
    "authorize",
    "check_roles",
    "guard",
    "scope",
    "scope_of",
]

ANY_ROLE = frozenset(ROLES) - {"admin"}
PUBLIC = "public"
#: Kinds whose key is a UUID (their routes declare the path parameter as one).
_UUID_KINDS = frozenset({"order", "rfq", "quote", "payment", "alert", "subscription", "recall"})
_UUID = TypeAdapter(uuid.UUID)


class PolicyError(AuthError, ForbiddenError):
    """The caller may see the object but not do this to it (403)."""


class NotPartyError(AuthError, NotFoundError):
    """The caller is no party to the object; answered like an object that does not exist."""


@dataclass(frozen=True)
class Rule:
    """An action: the kind of object whose parties decide (None: no object, results scoped to
    the caller), and the (relation, roles) pairs allowed. Relation ``*`` means any caller
    holding one of the roles (for rules without an object)."""

    kind: str | None
    allow: tuple[tuple[str, frozenset[str]], ...]
    admin: bool = True
    doc: str = ""
    #: a caller of no organisation is refused (403): it has no trade to be scoped to
    needs_org: bool = True

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r for _, roles in self.allow for r in roles)

    def allowed(self, relations: frozenset[str], roles: frozenset[str]) -> bool:
        return any(
            (rel == "*" or rel in relations) and roles & admitted for rel, admitted in self.allow
        )


def _r(*roles: str) -> frozenset[str]:
    return frozenset(roles)


def _rule(
    kind: str | None, doc: str, *allow: tuple[str, frozenset[str]], admin: bool = True
) -> Rule:
    return Rule(kind, tuple(allow), admin, doc)


BUYER, SUPPLIER, LOGISTICS = _r("buyer"), _r("supplier"), _r("logistics")
TRADERS = _r("buyer", "supplier", "logistics")
READERS = _r("buyer", "supplier", "logistics", "auditor")
SHIPMENT_SIDES = ("shipper", "receiver", "carrier")
LOT_SIDES = ("brand_owner", "supplier", "shipper", "receiver", "carrier")

POLICY: dict[str, Rule] = {
    # -- sign-in and organisations
    "auth.me": Rule(None, (("*", ANY_ROLE),), doc="who the token is", needs_org=False),
    "auth.revoke": Rule(
        None, (("*", ANY_ROLE),), doc="revoke every token of the caller", needs_org=False
    ),
    "user.manage": _rule(None, "revoke, disable or enable a user's access", admin=True),
    "org.manage": _rule(
        None, "create organisations, their identifiers, locations, engagements", admin=True
    ),
    "org.publication.read": _rule(
        "organisation", "read the organisation's publication settings", ("member", ANY_ROLE)
    ),
    "org.publication.write": _rule(
        "organisation", "set the organisation's publication settings", ("member", TRADERS)
    ),
    # -- trade
    "price.set": _rule(None, "set the caller's organisation's prices", ("*", SUPPLIER)),
    "price.list": _rule(None, "prices (suppliers: only their own)", ("*", _r("buyer", "supplier"))),
    "fx.add": _rule(None, "record an FX rate", admin=True),
    "rfq.create": _rule(None, "ask a supplier for a quote, as the caller's org", ("*", BUYER)),
    "rfq.quote": _rule("rfq", "answer an RFQ sent to the caller's org", ("supplier", SUPPLIER)),
    "quote.decide": _rule("quote", "accept or reject a quote", ("buyer", BUYER)),
    "order.place": _rule(None, "place an order as the caller's org", ("*", BUYER)),
    "order.read": _rule(
        "order",
        "read an order, its history",
        ("buyer", TRADERS),
        ("supplier", TRADERS),
        ("auditor", _r("auditor")),
    ),
    "order.transition": _rule(
        "order",
        "move an order (then by target: confirm, cancel, complete)",
        ("buyer", BUYER),
        ("supplier", SUPPLIER),
    ),
    "order.confirm": _rule("order", "confirm an order", ("supplier", SUPPLIER)),
    "order.complete": _rule("order", "complete an order", ("buyer", BUYER)),
    "order.cancel": _rule("order", "cancel an order", ("buyer", BUYER), ("supplier", SUPPLIER)),
    "order.pay": _rule("order", "pay an order", ("buyer", BUYER)),
    "order.release_check": _rule(
        "order", "evaluate payment release", ("buyer", BUYER), ("supplier", SUPPLIER)
    ),
    "order.payment_decisions": _rule(
        "order",
        "read payment hold/release decisions",
        ("buyer", _r("buyer", "supplier")),
        ("supplier", _r("buyer", "supplier")),
        ("auditor", _r("auditor")),
    ),
    "payment.read": _rule(
        "payment",
        "read a payment",
        ("buyer", _r("buyer", "supplier")),
        ("supplier", _r("buyer", "supplier")),
    ),
    "payment.admin": _rule(None, "confirm payments, manual review, reconciliation", admin=True),
    "scorecard.inputs": _rule(None, "set a supplier's manual scorecard inputs", admin=True),
    "scorecard.suppliers": _rule(None, "scores of the caller's own suppliers", ("*", BUYER)),
    "scorecard.customers": _rule(None, "RFM of the caller's own customers", ("*", SUPPLIER)),
    # -- customs and trade documents
    "product.classify": _rule(
        "product", "set a product's HS code (the brand owner)", ("brand_owner", SUPPLIER)
    ),
    "lot.origin": _rule(
        "lot",
        "set a lot's country of origin",
        ("brand_owner", SUPPLIER),
        ("supplier", SUPPLIER),
    ),
    "tariff.read": _rule(None, "the duty/VAT table with sources", ("*", TRADERS)),
    "quote.landed_cost": _rule(
        "quote", "landed cost of a quote per Incoterm", ("buyer", BUYER), ("supplier", SUPPLIER)
    ),
    "order.customs_hold": _rule(
        "order", "make the payment wait for customs release", ("buyer", BUYER)
    ),
    "shipment.assign_broker": _rule(
        "shipment",
        "assign the customs broker (the buyer: under DAP/DPU/DDP)",
        ("shipper", _r("supplier", "logistics")),
        ("receiver", BUYER),
    ),
    "shipment.clearance_record": _rule(
        "shipment", "record a clearance step (the shipment's broker)", ("customs_broker", LOGISTICS)
    ),
    "shipment.clearance_read": _rule(
        "shipment",
        "the shipment's clearance status and steps",
        *((rel, READERS) for rel in (*SHIPMENT_SIDES, "customs_broker")),
        ("auditor", _r("auditor")),
    ),
    "shipment.documents_issue": _rule(
        "shipment", "generate a trade document or its correction", ("shipper", SUPPLIER)
    ),
    "shipment.documents_read": _rule(
        "shipment",
        "list and download the shipment's trade documents",
        ("shipper", TRADERS),
        ("receiver", TRADERS),
        ("customs_broker", LOGISTICS),
        ("auditor", _r("auditor")),
    ),
    # -- logistics
    "order.ship": _rule(
        "order",
        "create a shipment of the order (the shipper)",
        ("supplier", _r("supplier", "logistics")),
    ),
    "shipment.assign_carrier": _rule(
        "shipment", "assign the shipment's carrier", ("shipper", _r("supplier", "logistics"))
    ),
    "shipment.custody": _rule(
        "shipment",
        "post a custody event (shipping, receiving)",
        ("carrier", LOGISTICS),
        ("receiver", _r("buyer", "logistics")),
    ),
    # -- alerts
    "alert.stream": _rule(None, "live alert changes of the caller's shipments", ("*", LOGISTICS)),
    "alert.list": _rule(
        None, "alerts of the caller's shipments and lots", ("*", _r("logistics", "auditor"))
    ),
    "alert.read": _rule(
        "alert",
        "read an alert",
        *((rel, _r("logistics", "auditor")) for rel in LOT_SIDES),
        ("auditor", _r("auditor")),
    ),
    "alert.acknowledge": _rule(
        "alert", "acknowledge an alert", *((rel, LOGISTICS) for rel in LOT_SIDES)
    ),
    "alert.resolve": _rule(
        "alert",
        "resolve an alert (holding a payment: the buyer's side, or after an inspection)",
        *((rel, LOGISTICS) for rel in LOT_SIDES),
    ),
    "rule.list": _rule(
        None,
        "alert rules on the caller's shipments, lots, products",
        ("*", _r("logistics", "auditor")),
    ),
    "rule.create": _rule(
        "rule_target",
        "add an alert rule on a shipment/lot/product",
        *((rel, LOGISTICS) for rel in LOT_SIDES),
    ),
    "rule.read": _rule(
        "rule",
        "read an alert rule",
        *((rel, _r("logistics", "auditor")) for rel in LOT_SIDES),
        ("auditor", _r("auditor")),
    ),
    "rule.write": _rule(
        "rule", "change or delete an alert rule", *((rel, LOGISTICS) for rel in LOT_SIDES)
    ),
    "subscription.list": _rule(None, "the caller's organisation's subscriptions", ("*", LOGISTICS)),
    "subscription.create": _rule(
        None, "subscribe, for the caller's org (a named shipment: a party's)", ("*", LOGISTICS)
    ),
    "subscription.manage": _rule(
        "subscription", "read, change, delete a subscription", ("owner", LOGISTICS)
    ),
    # -- EPCIS and inspections
    "epcis.capture": _rule(
        None,
        "capture events naming only EPCs/lots/locations the org owns or is party to",
        ("*", _r("supplier", "logistics", "inspector")),
    ),
    "epcis.capture_job": _rule("capture", "read a capture job", ("owner", ANY_ROLE)),
    "epcis.query": _rule(None, "events naming the caller's objects or locations", ("*", ANY_ROLE)),
    "epcis.read": _rule(
        "event", "one event (404 unless in the caller's scope)", ("party", ANY_ROLE)
    ),
    "epcis.named_query.create": _rule(
        None, "name a query, owned by the caller's organisation", ("*", ANY_ROLE)
    ),
    "epcis.named_query.read": _rule(
        None,
        "the organisation's named queries; their events, scoped (also over WebSocket)",
        ("*", ANY_ROLE),
    ),
    "epcis.named_query.delete": _rule(
        None, "delete an organisation's named query and its subscriptions", ("*", ANY_ROLE)
    ),
    "epcis.subscription": _rule(
        None,
        "webhook subscriptions to the organisation's named queries; deliveries scoped",
        ("*", ANY_ROLE),
    ),
    "inspection.commission": _rule(
        "lot",
        "commission an inspection organisation for a lot",
        *((rel, TRADERS) for rel in LOT_SIDES),
    ),
    "inspection.create": _rule(
        "lot", "report on a lot (a commissioned inspector)", ("inspection", _r("inspector"))
    ),
    "inspection.list": _rule(None, "inspections of the caller's lots", ("*", ANY_ROLE)),
    "inspection.read": _rule(
        "inspection",
        "read an inspection and its report",
        *((rel, ANY_ROLE) for rel in (*LOT_SIDES, "commissioner", "inspection", "auditor")),
    ),
    # -- genealogy: traces, regulator exports, recalls
    "trace.read": _rule(
        None, "trace a lot or EPC over the events the caller may read", ("*", ANY_ROLE)
    ),
    "trace.export": _rule(
        None, "FSMA 204 spreadsheet and EPCIS document of a trace, scoped", ("*", ANY_ROLE)
    ),
    "recall.open": _rule(
        "product", "recall lots or EPCs of the brand owner's products", ("brand_owner", SUPPLIER)
    ),
    "recall.list": _rule(
        None, "recalls the caller's organisation opened or is affected by", ("*", ANY_ROLE)
    ),
    "recall.read": _rule(
        "recall",
        "read a recall",
        ("brand_owner", ANY_ROLE),
        ("affected", ANY_ROLE),
        ("auditor", _r("auditor")),
    ),
    "recall.acknowledge": _rule(
        "recall",
        "acknowledge a recall, report quantities (a party's own answer)",
        ("affected", TRADERS),
        admin=False,
    ),
    "recall.close": _rule("recall", "close a recall", ("brand_owner", SUPPLIER)),
    # -- staff pages
    "dashboard.read": _rule(None, "the dashboard, over the caller's shipments", ("*", LOGISTICS)),
    "dashboard.series": _rule(
        "shipment", "one shipment's condition series", *((rel, LOGISTICS) for rel in SHIPMENT_SIDES)
    ),
    "auditor.read": _rule(
        None, "anchors, devices, events in the engagement's scope", ("*", _r("auditor"))
    ),
    "auditor.verify": _rule(None, "re-verify anchored records", ("*", _r("auditor"))),
}

#: Every operation of the OpenAPI document: (method, path) -> action, or PUBLIC.
OPERATIONS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("POST", "/auth/token"): PUBLIC,
    ("GET", "/auth/me"): "auth.me",
    ("POST", "/auth/revoke"): "auth.revoke",
    ("POST", "/auth/users/{user_id}/revoke"): "user.manage",
    ("POST", "/auth/users/{user_id}/disable"): "user.manage",
    ("POST", "/auth/users/{user_id}/enable"): "user.manage",
    ("POST", "/admin/organisations"): "org.manage",
    ("POST", "/admin/organisations/{org_id}/identifiers"): "org.manage",
    ("PUT", "/admin/organisations/{org_id}/locations/{gln}"): "org.manage",
    ("POST", "/admin/engagements"): "org.manage",
    ("GET", "/organisations/{org_id}/publication"): "org.publication.read",
    ("PUT", "/organisations/{org_id}/publication"): "org.publication.write",
    ("PUT", "/commerce/price-lists"): "price.set",
    ("GET", "/commerce/price-lists"): "price.list",
    ("POST", "/commerce/fx-rates"): "fx.add",
    ("POST", "/commerce/rfqs"): "rfq.create",
    ("POST", "/commerce/rfqs/{rfq_id}/quotes"): "rfq.quote",
    ("POST", "/commerce/quotes/{quote_id}/accept"): "quote.decide",
    ("POST", "/commerce/quotes/{quote_id}/reject"): "quote.decide",
    ("POST", "/commerce/orders"): "order.place",
    ("GET", "/commerce/orders/{order_id}"): "order.read",
    ("POST", "/commerce/orders/{order_id}/transitions"): "order.transition",
    ("GET", "/commerce/orders/{order_id}/history"): "order.read",
    ("POST", "/commerce/orders/{order_id}/payments"): "order.pay",
    ("GET", "/commerce/payments/{payment_id}"): "payment.read",
    ("POST", "/commerce/payments/{payment_id}/confirm"): "payment.admin",
    ("GET", "/commerce/manual-review"): "payment.admin",
    ("POST", "/commerce/webhooks/stripe"): PUBLIC,
    ("POST", "/commerce/reconciliation"): "payment.admin",
    ("POST", "/commerce/orders/{order_id}/release-check"): "order.release_check",
    ("GET", "/commerce/orders/{order_id}/payment-decisions"): "order.payment_decisions",
    ("POST", "/commerce/orders/{order_id}/shipments"): "order.ship",
    ("POST", "/commerce/shipments/{shipment_id}/carrier"): "shipment.assign_carrier",
    ("POST", "/commerce/shipments/{shipment_id}/custody"): "shipment.custody",
    ("PUT", "/commerce/scorecards/suppliers/{supplier_org}/inputs"): "scorecard.inputs",
    ("GET", "/commerce/scorecards/suppliers"): "scorecard.suppliers",
    ("GET", "/commerce/scorecards/customers"): "scorecard.customers",
    ("POST", "/commerce/classifications"): "product.classify",
    ("GET", "/commerce/tariffs"): "tariff.read",
    ("GET", "/commerce/quotes/{quote_id}/landed-cost"): "quote.landed_cost",
    ("POST", "/commerce/orders/{order_id}/hold-until-customs-release"): "order.customs_hold",
    ("POST", "/commerce/shipments/{shipment_id}/customs-broker"): "shipment.assign_broker",
    ("POST", "/commerce/shipments/{shipment_id}/clearance"): "shipment.clearance_record",
    ("GET", "/commerce/shipments/{shipment_id}/clearance"): "shipment.clearance_read",
    ("POST", "/commerce/shipments/{shipment_id}/documents"): "shipment.documents_issue",
    ("GET", "/commerce/shipments/{shipment_id}/documents"): "shipment.documents_read",
    ("GET", "/commerce/shipments/{shipment_id}/documents/file"): "shipment.documents_read",
    ("GET", "/alerts/stream"): "alert.stream",
    ("GET", "/alerts/rules"): "rule.list",
    ("POST", "/alerts/rules"): "rule.create",
    ("GET", "/alerts/rules/{rule_id}"): "rule.read",
    ("PUT", "/alerts/rules/{rule_id}"): "rule.write",
    ("DELETE", "/alerts/rules/{rule_id}"): "rule.write",
    ("GET", "/alerts/subscriptions"): "subscription.list",
    ("POST", "/alerts/subscriptions"): "subscription.create",
    ("GET", "/alerts/subscriptions/{subscription_id}"): "subscription.manage",
    ("PUT", "/alerts/subscriptions/{subscription_id}"): "subscription.manage",
    ("DELETE", "/alerts/subscriptions/{subscription_id}"): "subscription.manage",
    ("GET", "/alerts"): "alert.list",
    ("GET", "/alerts/{alert_id}"): "alert.read",
    ("POST", "/alerts/{alert_id}/acknowledge"): "alert.acknowledge",
    ("POST", "/alerts/{alert_id}/resolve"): "alert.resolve",
    ("POST", "/epcis/capture"): "epcis.capture",
    ("GET", "/epcis/capture/{capture_id}"): "epcis.capture_job",
    ("GET", "/epcis/events"): "epcis.query",
    ("GET", "/epcis/events/{event_id}"): "epcis.read",
    ("GET", "/epcis/prehashes/{event_id}"): "epcis.read",
    ("POST", "/epcis/queries"): "epcis.named_query.create",
    ("GET", "/epcis/queries"): "epcis.named_query.read",
    ("GET", "/epcis/queries/{queryName}"): "epcis.named_query.read",
    ("DELETE", "/epcis/queries/{queryName}"): "epcis.named_query.delete",
    ("GET", "/epcis/queries/{queryName}/events"): "epcis.named_query.read",
    ("POST", "/epcis/queries/{queryName}/subscriptions"): "epcis.subscription",
    ("GET", "/epcis/queries/{queryName}/subscriptions"): "epcis.subscription",
    ("GET", "/epcis/queries/{queryName}/subscriptions/{subscriptionID}"): "epcis.subscription",
    ("DELETE", "/epcis/queries/{queryName}/subscriptions/{subscriptionID}"): "epcis.subscription",
    ("POST", "/inspections/commissions"): "inspection.commission",
    ("POST", "/inspections"): "inspection.create",
    ("GET", "/inspections"): "inspection.list",
    ("GET", "/inspections/{inspection_id}"): "inspection.read",
    ("GET", "/inspections/{inspection_id}/report.pdf"): "inspection.read",
    ("GET", "/trace"): "trace.read",
    ("GET", "/trace/graph.svg"): "trace.read",
    ("GET", "/trace/fsma.csv"): "trace.export",
    ("GET", "/trace/fsma.xlsx"): "trace.export",
    ("GET", "/trace/epcis"): "trace.export",
    ("POST", "/recalls"): "recall.open",
    ("GET", "/recalls"): "recall.list",
    ("GET", "/recalls/{recall_id}"): "recall.read",
    ("POST", "/recalls/{recall_id}/acknowledgements"): "recall.acknowledge",
    ("POST", "/recalls/{recall_id}/close"): "recall.close",
    ("GET", "/dashboard/shipments"): "dashboard.read",
    ("GET", "/dashboard/readings/latest"): "dashboard.read",
    ("GET", "/dashboard/alerts"): "dashboard.read",
    ("GET", "/dashboard/shipments/{shipment_id}/series"): "dashboard.series",
    ("GET", "/auditor/batches"): "auditor.read",
    ("GET", "/auditor/devices"): "auditor.read",
    ("GET", "/auditor/events"): "auditor.read",
    ("GET", "/auditor/bundle"): "auditor.read",
    ("POST", "/auditor/verify/batch/{batch_id}"): "auditor.verify",
    ("POST", "/auditor/verify/event/{event_id}"): "auditor.verify",
    ("POST", "/auditor/verify/reading/{device_id}/{seq}"): "auditor.verify",
    ("POST", "/auditor/verify/device/{device_id}"): "auditor.verify",
    # Proofs and anchors are evidence for any verifier (the public page checks them itself);
    # the resolver and QR pages show what each brand owner publishes.
    ("GET", "/01/{rest}"): PUBLIC,
    ("GET", "/qr/01/{rest}"): PUBLIC,
    ("GET", "/proofs/readings/{device_id}/{seq}"): PUBLIC,
    ("GET", "/proofs/readings/{device_id}"): PUBLIC,
    ("GET", "/proofs/events/{event_id}"): PUBLIC,
    ("GET", "/ledger/anchors/{batch_id}"): PUBLIC,
    ("GET", "/ledger/device-ca"): PUBLIC,
    ("GET", "/ledger/certificates/{fingerprint}"): PUBLIC,
    ("GET", "/pki/crls/device-ca"): PUBLIC,
}


@dataclass(frozen=True)
class Access:
    """An allowed caller: who, and how it relates to the object (if the action has one)."""

    principal: Principal
    parties: Parties
    relations: frozenset[str]


def check_roles(principal: Principal, rule: Rule) -> bool:
    """True for an admin the rule admits; MissingRoleError (403) for a caller holding none of
    its roles; False otherwise (the object decides)."""
    if principal.has("admin") and rule.admin:
        return True
    if not principal.roles & rule.roles:
        raise MissingRoleError(f"this needs one of the roles {sorted(rule.roles)}")
    return False


def authorize(principal: Principal, action: str, parties: Parties | None = None) -> Access:
    """Allow ``principal`` to do ``action`` on an object with ``parties``, or raise: 403
    (:class:`MissingRoleError`, :class:`PolicyError`) or 404 (:class:`NotPartyError`).
    Without ``parties`` for a rule with an object, only the roles are checked (for objects
    named in a request body; the route authorizes again with their parties)."""
    rule = POLICY[action]
    if parties is None and rule.kind is not None:
        # The object is named in the body: the route calls authorize again once it has it.
        check_roles(principal, rule)
        return Access(principal, Parties(), frozenset())
    found = parties or Parties()
    relations = found.relations_of(principal.org_id)
    if not principal.has("auditor"):
        relations -= {"auditor"}
    if check_roles(principal, rule):
        return Access(principal, found, relations)
    if rule.kind is None:
        if principal.org_id is None and rule.needs_org:
            raise PolicyError("your user belongs to no organisation")
        return Access(principal, found, relations)
    if not relations:
        raise NotPartyError("not found")
    if not rule.allowed(relations, principal.roles):
        raise PolicyError(f"{rule.doc}: not allowed to {', '.join(sorted(relations))} here")
    return Access(principal, found, relations)


def guard(
    action: str, key: str | None = None, kind: str | None = None
) -> Callable[..., Coroutine[Any, Any, Access]]:
    """A dependency: the caller, authorized for ``action`` on the object named by path
    parameter ``key`` (before the body is read, so refusals never depend on it)."""
    rule = POLICY[action]
    lookup = kind or rule.kind
    if key is None or lookup is None:
        # No object to look up: no database connection is taken (a long-lived stream would
        # otherwise hold one).
        async def roles_only(
            principal: Annotated[Principal, Depends(current_principal)],
        ) -> Access:
            return authorize(principal, action)

        return roles_only

    async def dependency(
        request: Request,
        conn: Connection,
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Access:
        value = request.path_params[key]
        if lookup in _UUID_KINDS:
            try:  # with the validator FastAPI applies to the route's own UUID parameter
                value = str(_UUID.validate_python(value))
            except ValidationError:
                # FastAPI refuses the request (422) after this dependency, before the handler
                # runs: no object is named, so none is looked up.
                return authorize(principal, action)
        parties = Parties()
        # Looked up only for a caller holding one of the rule's roles.
        if principal.roles & (rule.roles | {"admin"}):
            parties = await aparties(conn, lookup, value)
        return authorize(principal, action, parties)

    return dependency


@dataclass(frozen=True)
class Scope:
    """The organisations whose records a caller may read (None: every one, for admins)."""

    orgs: list[str] | None

    @property
    def all(self) -> bool:
        return self.orgs is None


async def scope_of(request: Request, principal: Principal) -> Scope:
    """`scope` on a connection of its own, returned to the pool at once."""
    if principal.has("admin"):
        return Scope(None)
    async with pool_of(request).connection() as conn:
        return await scope(conn, principal)


async def scope(conn: Any, principal: Principal) -> Scope:
    """The caller's organisation and, for an auditor, those that engaged it."""
    if principal.has("admin"):
        return Scope(None)
    if principal.org_id is None:
        return Scope([])
    return Scope(await ascope_orgs(conn, principal.org_id, auditor=principal.has("auditor")))


def markdown_table() -> str:
    """POLICY and OPERATIONS as the table of docs/authorization.md (kept equal by a test)."""
    by_action: dict[str, list[str]] = {}
    for (method, path), action in OPERATIONS.items():
        by_action.setdefault(action, []).append(f"`{method} {path}`")
    lines = [
        "| action | operations | object | allowed: relation (roles) | no role / party, not"
        " allowed / no party |",
        "| --- | --- | --- | --- | --- |",
    ]
    for action, rule in POLICY.items():
        allowed = "; ".join(
            f"{'any' if rel == '*' else rel} ({', '.join(sorted(roles))})"
            for rel, roles in rule.allow
        )
        if rule.admin:
            allowed = f"{allowed}; admin" if allowed else "admin only"
        refusals = "403 / —" if rule.kind is None else "403 / 403 / 404"
        ops = "<br>".join(by_action.get(action, [])) or "(within another operation)"
        lines.append(f"| `{action}` | {ops} | {rule.kind or '—'} | {allowed} | {refusals} |")
    lines.append(
        f"| `{PUBLIC}` | {'<br>'.join(by_action[PUBLIC])} | — | anyone, signed in or not | — |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")

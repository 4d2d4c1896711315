"""The agent's side of the end-to-end acknowledgement (docs/acknowledgement.md).

The broker's PUBACK only says the broker took a reading; the broker may still lose it (a
departed shared-subscription member's queue, a restart without its persistence file). So the
spool keeps every reading until the hub says it is stored. Each acknowledgement the gateway
publishes on ``tracehub/v1/acks/<device>`` is handled here:

- what it accounts for leaves the spool (`Spool.settle`);
- what it lists as missing is resent ``missing_grace_s`` after it was last sent, instead of
  waiting for its resend timer;
- what it lists as missing and the spool no longer holds is answered with a signed dropped-range
  report, giving the reason the spool recorded when it dropped it (``unavailable`` when there is
  no record), so the hub can record those readings as lost instead of asking forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from edge.spool import Spool
from tracehub.acks import AckError, HubAck, SeqRange
from tracehub.dropped import DroppedRange, DropReason

log = logging.getLogger(__name__)

ReportSigner = Callable[[DroppedRange], bytes]
"""Signs a dropped-range report with the device key (tracehub.dropped.sign_dropped)."""

#: The spool is searched for missing readings it no longer holds at most this often
#: (acknowledgements come every 200 ms while readings flow).
LACKING_CHECK_S = 1.0


@dataclass(frozen=True)
class AckPolicy:
    """When the agent resends what the hub has not acknowledged."""

    #: A reading the broker took but the hub has not acknowledged is resent after this long,
    resend_after_s: float = 30.0
    #: doubling with each attempt up to this (a hub that is down is not flooded).
    max_resend_after_s: float = 600.0
    #: A reading the hub lists as missing is resent this long after it was last sent (sooner,
    #: and a hole is usually another gateway of the group that has not committed yet).
    missing_grace_s: float = 5.0
    #: The same dropped-range report is not sent again within this time.
    report_again_after_s: float = 10.0


@dataclass(frozen=True)
class AckOutcome:
    """What one acknowledgement did: the ranges it accounted for (now out of the spool) and the
    signed reports to publish for missing readings the spool no longer holds."""

    accounted: list[SeqRange] = field(default_factory=list)
    reports: list[bytes] = field(default_factory=list)


@dataclass
class AckStats:
    hub_acks: int = 0
    bad_acks: int = 0
    settled: int = 0  # readings removed from the spool because the hub acknowledged them
    resent_missing: int = 0  # readings due sooner because the hub listed them as missing
    reports_signed: int = 0
    last_through: int = 0
    last_missing: int = 0  # readings the last acknowledgement listed as missing
    last_ack_at: str = ""


class HubAcks:
    """Handles the hub's acknowledgements for one device; called from the publisher's thread."""

    def __init__(
        self, spool: Spool, device: str, sign: ReportSigner, policy: AckPolicy | None = None
    ) -> None:
        self.spool = spool
        self.device = device
        self.sign = sign
        self.policy = policy or AckPolicy()
        self.stats = AckStats()
        self._lacking_checked = 0.0
        self._reported: dict[SeqRange, float] = {}

    def on_message(self, payload: bytes, *, now: float | None = None) -> AckOutcome:
        """Handle one acknowledgement."""
        moment = time.time() if now is None else now
        try:
            ack = HubAck.from_json_bytes(payload)
        except AckError as exc:
            self.stats.bad_acks += 1
            log.warning("ignoring a malformed acknowledgement: %s", exc)
            return AckOutcome()
        if ack.device != self.device:
            self.stats.bad_acks += 1
            log.warning("ignoring an acknowledgement for device %s", ack.device)
            return AckOutcome()
        self.stats.hub_acks += 1
        self.stats.last_through = ack.through
        self.stats.last_missing = sum(last - first + 1 for first, last in ack.missing)
        self.stats.last_ack_at = datetime.fromtimestamp(moment, UTC).isoformat()
        accounted = ack.accounted()
        self.stats.settled += self.spool.settle(self.device, accounted)
        if not ack.missing:
            return AckOutcome(accounted)
        self.stats.resent_missing += self.spool.resend(
            self.device, ack.missing, grace_s=self.policy.missing_grace_s
        )
        if moment - self._lacking_checked < LACKING_CHECK_S:
            return AckOutcome(accounted)
        self._lacking_checked = moment
        return AckOutcome(accounted, self._reports(ack.missing, moment))

    def _reports(self, missing: tuple[SeqRange, ...], now: float) -> list[bytes]:
        """Signed reports for the missing readings this spool does not hold."""
        last = self.spool.last(self.device)
        newest = last[0] if last else 0
        envelopes = []
        for first, last_seq in missing:
            held = self.spool.held(self.device, first, last_seq)
            for low, high in _lacking(held, first, last_seq):
                for part in self._with_reasons(low, min(high, newest)):
                    envelope = self._report(*part, now)
                    if envelope is not None:
                        envelopes.append(envelope)
        return envelopes

    def _with_reasons(self, first: int, last: int) -> Iterator[tuple[int, int, DropReason]]:
        """``first``..``last`` split by the reason the spool recorded for dropping each part."""
        low = first
        for a, b, reason in self.spool.drop_reasons(self.device, first, last):
            if a > low:
                yield low, a - 1, "unavailable"
            yield a, b, cast(DropReason, reason)
            low = b + 1
        if low <= last:
            yield low, last, "unavailable"

    def _report(self, first: int, last: int, reason: DropReason, now: float) -> bytes | None:
        if now - self._reported.get((first, last), -1e18) < self.policy.report_again_after_s:
            return None
        if len(self._reported) > 1000:
            self._reported.clear()
        self._reported[(first, last)] = now
        self.stats.reports_signed += 1
        log.warning(
            "the hub asks for readings %d..%d, which the spool no longer holds (%s): reported",
            first,
            last,
            reason,
        )
        return self.report(first, last, reason, now)

    def report(self, first: int, last: int, reason: DropReason, now: float) -> bytes:
        """Sign a dropped-range report for this device."""
        ts = datetime.fromtimestamp(now, UTC)
        return self.sign(DroppedRange(self.device, first, last, reason, ts))


def _lacking(held: list[int], first: int, last: int) -> Iterator[SeqRange]:
    """The parts of ``first``..``last`` not in ``held`` (ascending sequence numbers in it)."""
    low = first
    for seq in held:
        if seq > low:
            yield low, seq - 1
        low = seq + 1
    if low <= last:
        yield low, last

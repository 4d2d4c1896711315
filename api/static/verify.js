// TraceHub buyer page: verify every record shown against the ledger, in the browser.
//
// For each record (a signed reading: sensor value or custody event) the page lists its device,
// seq, the signed envelope (JWS compact) and the value it displays. This script:
//   0. checks the envelope as `tracehub verify` does (verify-envelope.js): its device
//      certificate and chain to the device CA on the ledger, validity at the reading's time,
//      revocation (the device CA's CRL and the ledger's record), identity and ES256 signature;
//   1. hashes the envelope with SHA-256: that is the reading hash, and it must equal the
//      proof's reading_hash; the envelope's payload must say what the page shows;
//   2. recomputes the leaf hash SHA-256(0x00 || reading hash) and compares it with the proof;
//   3. walks the audit path (RFC 9162 §2.1.3.2) with SHA-256(0x01 || left || right) to a root,
//      which must equal the proof's root ("path invalid" otherwise);
//   4. fetches the batch's anchor from the ledger (/ledger/anchors/{batch_id}) and compares its
//      root with the one reached ("root mismatch" otherwise);
//   5. asks each ledger witness the page names (another organisation's read-only view of its
//      own peer, tracehub/ledger/witness.py) for the same anchors: the page says whose peer
//      confirmed them, that none could be reached, or that one disagrees with the hub.
// Each record that fails is listed with the one check that failed first, in that order:
// signature, certificate, revoked, value, path, anchor (the hub's), witness (the independent
// anchor). Hashes and signatures use WebCrypto; X.509 and CRLs are parsed by @peculiar/x509.
// Nothing is fetched but from the hub and the witnesses.
"use strict";

(function () {
  const dataNode = document.getElementById("verify-data");
  const statusNode = document.getElementById("verify-status");
  const anchorsNode = document.getElementById("verify-anchors");
  if (!dataNode || !statusNode) return;
  const data = JSON.parse(dataNode.textContent);
  const t = data.messages;

  // On a right-to-left page every value set into a message (ids, hashes, numbers, URLs) is
  // isolated (Unicode LRI ... PDI, as <bdi dir="ltr"> in markup): it keeps its own order and
  // does not drag the sentence's punctuation to the other end.
  const RTL = document.documentElement.dir === "rtl";
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (m, k) =>
      k in values ? (RTL ? "\u2066" + String(values[k]) + "\u2069" : String(values[k])) : m,
    );
  }

  // The check each reason belongs to (the page lists failures by check).
  const CHECK_OF = {
    reason_value_mismatch: "value",
    reason_hash_mismatch: "path",
    reason_leaf_mismatch: "path",
    reason_path_invalid: "path",
    reason_root_mismatch: "anchor",
    reason_report_mismatch: "report",
    reason_fetch: "fetch",
  };

  class Failure extends Error {
    constructor(key, values, check) {
      super(fill(t[key] || key, values || {}));
      this.key = key;
      this.check = check || CHECK_OF[key] || "fetch";
    }
  }

  const envelopes = window.TraceHubEnvelopes.create(data.witnesses || []);

  function hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function unhex(text) {
    if (typeof text !== "string" || !/^[0-9a-f]{64}$/.test(text)) {
      throw new Failure("reason_path_invalid", { record: "?" });
    }
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  }

  async function sha256(...parts) {
    let size = 0;
    for (const p of parts) size += p.length;
    const joined = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.length;
    }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
  }

  const LEAF = new Uint8Array([0]);
  const NODE = new Uint8Array([1]);

  // RFC 9162 §2.1.3.2: the root the audit path leads to, or null if the path cannot be right.
  async function rootFromPath(leaf, index, size, path) {
    if (!(Number.isInteger(index) && Number.isInteger(size)) || index < 0 || index >= size) {
      return null;
    }
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const node of path) {
      if (sn === 0) return null;
      const p = unhex(node);
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(NODE, p, r);
        if (fn % 2 === 0) {
          while (fn !== 0 && fn % 2 === 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await sha256(NODE, r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  function base64urlDecode(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return new TextDecoder().decode(Uint8Array.from(raw, (c) => c.charCodeAt(0)));
  }

  async function fetchJson(url, what) {
    const reply = await fetch(url, { headers: { Accept: "application/json" } });
    if (!reply.ok) throw new Failure("reason_fetch", { what: what, status: reply.status });
    return reply.json();
  }

  const anchors = new Map();
  function anchorOf(batchId) {
    if (!anchors.has(batchId)) {
      const url = "/ledger/anchors/" + encodeURIComponent(batchId);
      anchors.set(batchId, fetchJson(url, "anchor " + batchId));
    }
    return anchors.get(batchId);
  }

  function pick(obj, name) {
    // The anchor may be the record itself or wrap it ({"anchor": {...}, "tx_id": ...}).
    if (obj && obj[name] !== undefined) return obj[name];
    if (obj && obj.anchor && obj.anchor[name] !== undefined) return obj.anchor[name];
    return undefined;
  }

  // Steps 2-4, shared by readings and events: leaf, path, ledger root.
  async function checkInclusion(label, leafData, proof) {
    const leaf = await sha256(LEAF, leafData);
    if (proof.leaf_hash !== hex(leaf)) throw new Failure("reason_leaf_mismatch", { record: label });
    const reached = await rootFromPath(leaf, proof.index, proof.batch_size, proof.audit_path);
    if (reached === null || hex(reached) !== proof.root) {
      throw new Failure("reason_path_invalid", { record: label });
    }
    const anchor = await anchorOf(proof.batch_id).catch((error) => {
      if (error instanceof Failure) error.check = "anchor"; // the hub gave no anchor
      throw error;
    });
    const ledgerRoot = pick(anchor, "root");
    if (ledgerRoot !== hex(reached)) {
      throw new Failure("reason_root_mismatch", {
        batch: proof.batch_id,
        got: hex(reached).slice(0, 16) + "…",
        want: String(ledgerRoot).slice(0, 16) + "…",
      });
    }
    return {
      batch: proof.batch_id,
      root: hex(reached),
      tx: pick(anchor, "tx_id") || proof.tx_id,
      block: pick(anchor, "block_number") ?? proof.block_number,
    };
  }

  async function verifyReading(record) {
    const label = t.record + " " + record.device_id + " #" + record.seq;
    const envelope = new TextEncoder().encode(record.envelope);
    let payload;
    try {
      payload = JSON.parse(base64urlDecode(record.envelope.split(".")[1]));
    } catch (error) {
      throw new Failure("reason_malformed", { record: label }, "signature");
    }
    try {
      await envelopes.check(record.envelope, payload, record.device_id);
    } catch (error) {
      if (!(error instanceof window.TraceHubEnvelopes.Refusal)) throw error;
      throw new Failure(error.key, { record: label, ...error.values }, error.check);
    }
    const readingHash = await sha256(envelope);
    for (const [key, shown] of Object.entries(record.shown)) {
      const signed = key in payload.data ? payload.data[key] : payload[key];
      if (signed !== shown) {
        throw new Failure("reason_value_mismatch", { record: label, shown: shown, signed: signed });
      }
    }
    const proof = await readingProof(record);
    if (proof.reading_hash !== hex(readingHash)) {
      throw new Failure("reason_hash_mismatch", { record: label });
    }
    return checkInclusion(label, readingHash, proof);
  }

  // Readings' proofs are asked for a range at a time (a voyage's logger uploads hundreds):
  // one request per device and up to RANGE consecutive readings, shared by the records in it.
  // A reading the range answer lacks is asked for alone, so its own error is the one shown.
  const RANGE = 1000;
  const ranges = new Map();
  function rangeOf(deviceId, seq) {
    const first = Math.floor((seq - 1) / RANGE) * RANGE + 1;
    const key = deviceId + "\u0000" + first;
    if (!ranges.has(key)) {
      const seqs = data.records
        .filter((r) => r.type === "reading" && r.device_id === deviceId)
        .map((r) => r.seq)
        .filter((s) => s >= first && s < first + RANGE);
      const url =
        "/proofs/readings/" + encodeURIComponent(deviceId) +
        "?first=" + Math.min(...seqs) + "&last=" + Math.max(...seqs);
      ranges.set(
        key,
        fetchJson(url, "proofs of " + deviceId).then(
          (answer) => new Map(Object.entries(answer.proofs || {}).map(([k, p]) => [Number(k), p])),
          () => new Map() // an older hub without ranges: each reading is asked for alone
        )
      );
    }
    return ranges.get(key);
  }

  async function readingProof(record) {
    const found = (await rangeOf(record.device_id, record.seq)).get(record.seq);
    if (found) return found;
    const url = "/proofs/readings/" + encodeURIComponent(record.device_id) + "/" + record.seq;
    return fetchJson(url, "proof " + record.device_id + " #" + record.seq);
  }

  // An EPCIS event: its leaf data is the 32 bytes of its CBV 2.0 hash (ni:///sha-256;<hex>).
  async function verifyEvent(record) {
    const label = "EPCIS " + record.event_hash.slice(0, 30) + "…";
    const url = "/proofs/events/" + encodeURIComponent(record.event_id);
    const proof = await fetchJson(url, "proof " + label);
    const wanted = "ni:///sha-256;" + record.hash_hex + "?ver=CBV2.0";
    if (proof.event_hash !== record.event_hash || record.event_hash !== wanted) {
      throw new Failure("reason_hash_mismatch", { record: label });
    }
    const result = await checkInclusion(label, unhex(record.hash_hex), proof);
    if (record.report_url) {
      // The inspection's PDF: the bytes served must be the ones whose hash was recorded.
      const reply = await fetch(record.report_url, { headers: { Accept: "application/pdf" } });
      if (!reply.ok) throw new Failure("reason_fetch", { what: "report", status: reply.status });
      const digest = hex(await sha256(new Uint8Array(await reply.arrayBuffer())));
      if (digest !== record.report_sha256) {
        throw new Failure("reason_report_mismatch", { got: digest.slice(0, 16) + "…" });
      }
    }
    return result;
  }

  function verifyRecord(record) {
    return record.type === "event" ? verifyEvent(record) : verifyReading(record);
  }

  function rowsOf(record) {
    const selector =
      record.type === "event"
        ? 'li.event[data-event="' + CSS.escape(record.event_id) + '"]'
        : 'li.event[data-device="' + CSS.escape(record.device_id) + '"][data-seq="' + record.seq + '"]';
    return document.querySelectorAll(selector);
  }

  // A row's tick or cross; a cross says which check failed (data-failed, and its title).
  function mark(record, failure) {
    for (const item of rowsOf(record)) {
      item.classList.remove("ok", "bad");
      item.classList.add(failure ? "bad" : "ok");
      if (failure) {
        item.dataset.failed = failure.check;
        item.title = checkName(failure.check) + ": " + failure.message;
      }
    }
  }

  function checkName(check) {
    return t["check_" + check] || check;
  }

  // Step 5. Asks every witness for every batch. Resolves to null (no witness) or {state, text,
  // differing}: "confirmed" (every witness holds every root), "unconfirmed" (a witness could not
  // be asked) or "disagrees" (a witness holds another root or none; `differing` maps each such
  // batch to the sentence that says so).
  async function confirmWithWitnesses(batches) {
    const confirmed = [];
    const differing = new Map();
    let unreachable = null;
    for (const base of data.witnesses || []) {
      let msp = base;
      let answered = true;
      for (const b of batches) {
        let reply;
        let answer;
        try {
          reply = await fetch(base + "/anchors/" + encodeURIComponent(b.batch), {
            headers: { Accept: "application/json" },
          });
          answer = reply.status === 404 || reply.ok ? await reply.json().catch(() => ({})) : null;
        } catch (error) {
          answer = null;
        }
        if (answer === null) {
          answered = false;
          break;
        }
        msp = answer.msp_id || msp;
        if (reply.status === 404) {
          differing.set(b.batch, fill(t.witness_not_anchored, { msp: msp, batch: b.batch }));
        } else if (!answer.anchor || answer.anchor.root !== b.root) {
          differing.set(b.batch, fill(t.witness_root_differs, { msp: msp, batch: b.batch }));
        }
      }
      if (!answered) unreachable = unreachable || fill(t.witness_unreachable, { url: base });
      else confirmed.push(msp);
    }
    if (differing.size) {
      return { state: "disagrees", text: differing.values().next().value, differing };
    }
    if (unreachable) return { state: "unconfirmed", text: unreachable, differing };
    if (!confirmed.length) return null;
    const text = fill(t.witness_confirmed, { msp: confirmed.join(", ") });
    return { state: "confirmed", text, differing };
  }

  function show(state, text) {
    statusNode.dataset.state = state;
    statusNode.className = "status " + state;
    statusNode.textContent = text;
  }

  // One line per distinct failure, naming its check; the records it concerns are in
  // data-records (a root that differs fails every record of its batch with one sentence).
  function listFailures(records, failures) {
    const list = document.getElementById("verify-failures");
    const lines = new Map();
    let count = 0;
    failures.forEach((failure, i) => {
      if (failure === null) return;
      count++;
      const record = records[i];
      const id = record.type === "event" ? record.event_id : record.device_id + "#" + record.seq;
      if (!lines.has(failure.message)) lines.set(failure.message, { failure, ids: [] });
      lines.get(failure.message).ids.push(id);
    });
    for (const { failure, ids } of lines.values()) {
      const li = document.createElement("li");
      li.dataset.check = failure.check;
      li.dataset.records = ids.join(" ");
      const name = document.createElement("strong");
      name.textContent = checkName(failure.check) + ": ";
      li.append(name, failure.message);
      if (ids.length > 1) li.append(" (" + fill(t.failures_records, { count: ids.length }) + ")");
      list.appendChild(li);
    }
    const more = document.createElement("li");
    more.textContent = fill(t.failures_more, { count: count });
    list.appendChild(more);
  }

  async function run() {
    if (!(window.crypto && crypto.subtle)) {
      show("failed", fill(t.not_verified_reason, { reason: t.reason_no_webcrypto }));
      return;
    }
    const records = data.records;
    if (records.length === 0) {
      show("empty", t.nothing_to_verify);
      return;
    }
    const started = performance.now();
    const results = new Array(records.length).fill(null);
    const failures = new Array(records.length).fill(null);
    // Every record is checked (a few at a time, not to flood a small server), so the page can
    // list each one that fails; the status names the first in page order.
    let next = 0;
    const workers = Array.from({ length: 6 }, async () => {
      while (next < records.length) {
        const i = next++;
        try {
          results[i] = await verifyRecord(records[i]);
        } catch (error) {
          failures[i] = error instanceof Failure ? error : new Failure(String(error), {}, "fetch");
        }
      }
    });
    await Promise.all(workers);
    // Step 5 for the batches of the records the hub's answers verified.
    const batches = new Map();
    for (const result of results) if (result) batches.set(result.batch, result);
    const witnessNode = document.getElementById("verify-witness");
    const witnessed = batches.size ? await confirmWithWitnesses(Array.from(batches.values())) : null;
    if (witnessed && witnessNode) {
      witnessNode.dataset.state = witnessed.state;
      witnessNode.className = "witness " + witnessed.state;
      witnessNode.textContent = witnessed.text;
    }
    results.forEach((result, i) => {
      const differs = result && witnessed && witnessed.differing.get(result.batch);
      // The hub's ledger answer is contradicted by another organisation's peer: not verified.
      if (differs) failures[i] = new Failure(differs, {}, "witness");
      mark(records[i], failures[i]);
    });
    const pkiNode = document.getElementById("verify-pki");
    if (pkiNode && records.some((r) => r.type !== "event")) {
      const who = await envelopes.source();
      pkiNode.textContent = who ? fill(t.pki_from_witness, { msp: who }) : t.pki_from_hub;
    }
    statusNode.dataset.ms = String(Math.round(performance.now() - started));
    const first = failures.find((f) => f !== null);
    if (first) {
      show("failed", fill(t.not_verified_reason, { reason: first.message }));
      listFailures(records, failures);
      return;
    }
    const latest = Array.from(batches.values()).sort((a, b) => b.block - a.block)[0];
    show("verified", fill(t.verified_on_ledger, { tx: latest.tx, block: latest.block }));
    for (const b of batches.values()) {
      const li = document.createElement("li");
      li.className = "mono";
      li.textContent = b.batch + " · tx " + b.tx + " · block " + b.block;
      anchorsNode.appendChild(li);
    }
    const summary = document.createElement("p");
    summary.id = "verify-summary";
    summary.textContent = fill(t.verified_summary, { records: records.length, batches: batches.size });
    anchorsNode.before(summary);
  }

  run();
})();

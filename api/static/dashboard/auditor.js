// Auditor page: one search over batches, devices and events (ids and hashes match from their
// start); each "verify" asks the server to re-check the record against IPFS and the ledger; the
// bundle form downloads an audit bundle. An empty result says so, with what was searched.
"use strict";
(function () {
  const { el, json, api, time, td } = window.TraceHub;

  function verifyButton(path) {
    const cell = td("Verify", "");
    const button = el("button", { type: "button", class: "verify" }, "verify");
    button.addEventListener("click", async () => {
      button.disabled = true;
      cell.querySelector(".verdict")?.remove();
      let text, cls;
      try {
        const v = await json(path, { method: "POST" });
        [text, cls] = v.ok ? ["verified: " + v.passed.join(", "), "ok"] : ["not verified: " + v.failure, "bad"];
      } catch (e) { [text, cls] = ["error: " + e.message, "bad"]; }
      cell.append(el("span", { class: "verdict " + cls }, " " + text));
      button.disabled = false;
    });
    cell.append(button);
    return cell;
  }

  function fill(table, rows, columns, what) {
    const body = document.querySelector(`#${table} tbody`);
    if (rows.length) { body.replaceChildren(...rows); return; }
    body.replaceChildren(el("tr", {}, el("td", { colspan: String(columns), class: "empty" }, `No ${table} match ${what || "yet"}.`)));
  }

  const short = (tx, block) => (tx ? `${tx.slice(0, 12)}… / ${block}` : "—");

  async function loadBatches(params, what) {
    const rows = await json("/auditor/batches?" + params);
    fill("batches", rows.map((b) => el("tr", { "data-batch": b.batch_id },
      td("Kind", b.kind), td("Batch", b.batch_id, "hash"), td("Sealed", time(b.sealed_at)), td("Count", b.count),
      td("State", b.state), td("Tx / block", short(b.tx_id, b.block_number), "hash"),
      verifyButton("/auditor/verify/batch/" + encodeURIComponent(b.batch_id)),
      td("Bundle", el("a", { href: "#", onclick: (e) => { e.preventDefault(); download("batch_id=" + encodeURIComponent(b.batch_id)); } }, "bundle")))), 8, what);
    return rows.length;
  }

  async function loadDevices(params, what) {
    const rows = await json("/auditor/devices?" + params);
    fill("devices", rows.map((d) => el("tr", { "data-device": d.device_id },
      td("Device", d.device_id), td("Certificate", d.certificate_sha256, "hash"),
      td("Last seen", time(d.last_seen)), td("Last seq", d.last_seq),
      verifyButton("/auditor/verify/device/" + encodeURIComponent(d.device_id)))), 5, what);
    return rows.length;
  }

  async function loadEvents(params, what) {
    const rows = await json("/auditor/events?" + params);
    fill("events", rows.map((e) => el("tr", { "data-event": e.event_id },
      td("Event", e.event_id, "hash"), td("Type", e.event_type), td("Time", time(e.event_time)),
      td("bizStep", e.biz_step ?? "—"), td("Batch", e.batch_id ?? "pending", "hash"),
      e.batch_id ? verifyButton("/auditor/verify/event/" + encodeURIComponent(e.event_id)) : td("Verify", "not anchored yet"))), 6, what);
    return rows.length;
  }

  async function download(query) {
    const status = document.getElementById("bundle-status");
    status.textContent = "building…";
    try {
      const blob = await (await api("/auditor/bundle?" + query)).blob();
      const link = el("a", { href: URL.createObjectURL(blob), download: "audit-bundle.json" });
      link.click();
      status.textContent = `bundle ready (${blob.size} bytes)`;
    } catch (e) { status.textContent = "error: " + e.message; }
  }

  // The form's fields as the three searches' parameters; local times become UTC instants.
  function searches(form) {
    const f = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim()]));
    const instant = (v) => (v ? new Date(v).toISOString() : "");
    const range = { since: instant(f.since), until: instant(f.until) };
    const query = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v)).toString();
    const said = Object.entries({ "batch/root/tx starting": f.q, device: f.device, "event starting": f.event, lot: f.lot, from: f.since, until: f.until })
      .filter(([, v]) => v).map(([k, v]) => `${k} “${v}”`).join(", ");
    // A filter a table cannot apply leaves that table empty rather than unfiltered.
    const batches = f.event || f.lot ? null : query({ q: f.q, device: f.device, kind: f.kind, ...range, limit: 100 });
    const devices = f.q || f.event || f.lot || f.since || f.until ? null : query({ q: f.device, limit: 100 });
    const events = f.q || f.device ? null : query({ q: f.event, lot: f.lot, ...range, limit: 100 });
    return { batches, devices, events, said };
  }

  async function search(form) {
    const status = document.getElementById("search-status");
    const { batches, devices, events, said } = searches(form);
    const what = said ? "the search " + said : "";
    status.textContent = "searching…";
    const started = performance.now();
    try {
      const counts = await Promise.all([
        batches === null ? (fill("batches", [], 8, what), 0) : loadBatches(batches, what),
        devices === null ? (fill("devices", [], 5, what), 0) : loadDevices(devices, what),
        events === null ? (fill("events", [], 6, what), 0) : loadEvents(events, what),
      ]);
      const total = counts.reduce((a, b) => a + b, 0);
      status.className = total ? "hint" : "error";
      status.textContent = (total ? `${counts[0]} batches, ${counts[1]} devices, ${counts[2]} events` : "Nothing matches")
        + (said ? ` for ${said}` : "") + ` (${Math.round(performance.now() - started)} ms).`;
    } catch (e) { status.className = "error"; status.textContent = "Search failed: " + e.message; }
  }

  window.TraceHub.onReady(async () => {
    const form = document.getElementById("search");
    form.addEventListener("submit", (e) => { e.preventDefault(); search(form); });
    form.addEventListener("reset", () => setTimeout(() => search(form), 0));
    document.getElementById("bundle-form").addEventListener("submit", (e) => {
      e.preventDefault();
      download(new URLSearchParams([...new FormData(e.target)].filter(([, v]) => v)).toString());
    });
    await Promise.all([loadBatches("limit=100"), loadDevices("limit=100"), loadEvents("limit=50")]);
  });
})();

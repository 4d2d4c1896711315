// Auditor page: lists batches, devices and events; each "verify" asks the server to re-check the
// record against IPFS and the ledger; the bundle form downloads an audit bundle.
"use strict";
(function () {
  const { el, json, api } = window.TraceHub;

  function verifyButton(path) {
    const cell = el("td");
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

  function fill(table, rows) {
    const body = document.querySelector(`#${table} tbody`);
    body.replaceChildren(...rows);
  }

  async function loadBatches(params = "") {
    const rows = await json("/auditor/batches" + params);
    fill("batches", rows.map((b) => el("tr", { "data-batch": b.batch_id },
      el("td", {}, b.kind), el("td", { class: "hash" }, b.batch_id), el("td", {}, b.count),
      el("td", {}, b.state), el("td", { class: "hash" }, b.tx_id ? `${b.tx_id.slice(0, 12)}… / ${b.block_number}` : "—"),
      verifyButton("/auditor/verify/batch/" + encodeURIComponent(b.batch_id)),
      el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); download("batch_id=" + encodeURIComponent(b.batch_id)); } }, "bundle")))));
  }

  async function loadDevices() {
    const rows = await json("/auditor/devices");
    fill("devices", rows.map((d) => el("tr", {},
      el("td", {}, d.device_id), el("td", { class: "hash" }, d.certificate_sha256),
      el("td", {}, d.last_seen), el("td", {}, d.last_seq),
      verifyButton("/auditor/verify/device/" + encodeURIComponent(d.device_id)))));
  }

  async function loadEvents() {
    const rows = await json("/auditor/events?limit=50");
    fill("events", rows.map((e) => el("tr", {},
      el("td", { class: "hash" }, e.event_id), el("td", {}, e.event_type), el("td", {}, e.event_time),
      el("td", {}, e.biz_step ?? ""), el("td", { class: "hash" }, e.batch_id ?? "pending"),
      e.batch_id ? verifyButton("/auditor/verify/event/" + encodeURIComponent(e.event_id)) : el("td", {}, "not anchored yet"))));
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

  window.TraceHub.onReady(async () => {
    document.getElementById("batch-search").addEventListener("submit", (e) => {
      e.preventDefault();
      const q = new URLSearchParams([...new FormData(e.target)].filter(([, v]) => v));
      loadBatches("?" + q);
    });
    document.getElementById("bundle-form").addEventListener("submit", (e) => {
      e.preventDefault();
      download(new URLSearchParams([...new FormData(e.target)].filter(([, v]) => v)).toString());
    });
    await Promise.all([loadBatches(), loadDevices(), loadEvents()]);
  });
})();

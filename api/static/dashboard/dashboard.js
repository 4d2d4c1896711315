// Logistics dashboard: alerts to handle (acknowledge / resolve with a note), shipments, condition
// charts and the latest reading of each device (paged, filtered). Alert changes arrive on
// /alerts/stream (Server-Sent Events read with fetch, so the bearer token is sent); without it
// the page polls every 15 s.
"use strict";
(function () {
  const { el, json, api, label, time, td } = window.TraceHub;
  const PAGE = 20;
  // The shipment charted: the one that matters when the page opens, then the clerk's pick; it
  // stays put while alerts change, so the highlighted card and the chart always agree.
  let selected = null;
  let readingsOffset = 0;

  const fmt = (v, d = 1) => (typeof v === "number" ? v.toFixed(d) : "—");
  const status = (id, text, cls = "") => { const n = document.getElementById(id); n.textContent = text; n.className = cls || "hint"; };

  // ------------------------------------------------------------------ alerts

  async function act(alert, action, note, button) {
    const verb = action === "acknowledge" ? "Acknowledging" : "Resolving";
    button.disabled = true;
    status("alert-status", `${verb} the ${label("alert_", alert.kind)} alert on ${alert.shipment_id ?? alert.device_id ?? "its lot"}…`);
    try {
      const done = await json(`/alerts/${encodeURIComponent(alert.alert_id)}/${action}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ note }),
      });
      status("alert-status", `${label("alert_", done.kind)} alert on ${done.shipment_id ?? done.device_id ?? "its lot"}: ${label("alert_state_", done.state)} by ${done.resolved_by ?? done.acknowledged_by}.`, "ok");
      await loadAlerts();
      loadShipments();
    } catch (e) {
      // The API's reason, e.g. a resolve that would free a payment the other side must agree to.
      status("alert-status", `Could not ${action} this alert: ${e.message}`, "error");
      button.disabled = false;
    }
  }

  function actions(a) {
    const note = el("input", { name: "note", placeholder: "note (what was done)", "aria-label": "note", maxlength: "2000" });
    const cell = td("Action", "", "actions");
    const buttons = [];
    if (a.state === "open") {
      const ack = el("button", { type: "button", class: "ack" }, "Acknowledge");
      ack.addEventListener("click", () => act(a, "acknowledge", note.value, ack));
      buttons.push(ack);
    }
    const resolve = el("button", { type: "button", class: "resolve" }, "Resolve");
    resolve.addEventListener("click", () => act(a, "resolve", note.value, resolve));
    buttons.push(resolve);
    cell.append(note, ...buttons);
    return cell;
  }

  async function loadAlerts() {
    const rows = await json("/dashboard/alerts");
    const open = rows.filter((a) => a.state === "open").length;
    document.getElementById("alert-count").textContent = `(${open} open, ${rows.length - open} acknowledged)`;
    const body = document.querySelector("#alerts tbody");
    if (!rows.length) { body.replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "empty" }, "No alert to handle."))); return rows; }
    body.replaceChildren(...rows.map((a) => el("tr", { "data-alert": a.alert_id, "data-state": a.state },
      td("Opened", time(a.opened_at)), td("Severity", label("severity_", a.severity), "sev-" + a.severity),
      td("Kind", label("alert_", a.kind)), td("Shipment", a.shipment_id ?? "—"), td("Device", a.device_id ?? "—"),
      td("State", label("alert_state_", a.state)), actions(a))));
    return rows;
  }

  // ------------------------------------------------------------------ shipments and chart

  // The shipment that matters: most open alerts, then one with readings, then the first.
  function pick(rows) {
    const ranked = [...rows].sort((a, b) => (b.open_alerts - a.open_alerts) || ((b.last_reading ? 1 : 0) - (a.last_reading ? 1 : 0)));
    return ranked.length ? ranked[0].shipment_id : null;
  }

  async function loadShipments() {
    const rows = await json("/dashboard/shipments");
    if (!rows.some((s) => s.shipment_id === selected)) selected = pick(rows);
    document.getElementById("shipments").replaceChildren(...rows.map((s) => {
      const r = s.last_reading;
      const button = el("button", { type: "button", class: "show-chart" }, "Show chart");
      button.addEventListener("click", () => { selected = s.shipment_id; loadChart(true); });
      return el("div", { class: "card" + (s.shipment_id === selected ? " selected" : ""), "data-shipment": s.shipment_id },
        el("strong", {}, s.shipment_id), " ", el("span", { class: "state-" + s.state }, label("shipment_state_", s.state)),
        el("div", {}, `${s.origin} → ${s.destination}`),
        el("div", {}, "Lots: " + (s.lots.map((l) => `${l.gtin}/${l.lot}`).join(", ") || "—")),
        el("div", {}, ...(r ? [`${fmt(r.data.temperature_c)} °C · ${fmt(r.data.humidity_pct)} % · `, time(r.ts)] : ["no readings"])),
        el("div", {}, "Position: " + (s.last_position ?? "—")),
        el("div", { class: s.open_alerts ? "bad" : "ok" }, `${s.open_alerts} open alerts`),
        button);
    }));
    const select = document.querySelector("#readings-filter select");
    const current = select.value;
    select.replaceChildren(el("option", { value: "" }, "all shipments"), ...rows.map((s) => el("option", { value: s.shipment_id }, s.shipment_id)));
    select.value = current;
    return rows;
  }

  async function loadChart(scroll = false) {
    const panel = document.getElementById("chart-panel");
    if (scroll) panel.scrollIntoView({ behavior: "smooth", block: "start" });
    if (!selected) { status("chart-status", "No shipment to chart."); return; }
    for (const card of document.querySelectorAll(".card")) card.classList.toggle("selected", card.dataset.shipment === selected);
    document.getElementById("chart-title").textContent = `— ${selected}`;
    status("chart-status", `Loading the readings of ${selected}…`);
    const s = await json(`/dashboard/shipments/${encodeURIComponent(selected)}/series?hours=72&points=600`);
    const { draw } = window.TraceHubChart;
    const temp = draw(document.getElementById("chart-temp"), s.points, "temperature_c", s.band.temp_min, s.band.temp_max, "°C");
    const hum = draw(document.getElementById("chart-hum"), s.points, "humidity_pct", s.band.humidity_min, s.band.humidity_max, "%");
    const swatch = (fill) => {
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("class", "swatch"); svg.setAttribute("viewBox", "0 0 14 10");
      const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      for (const [k, v] of Object.entries({ width: 14, height: 10, fill })) r.setAttribute(k, v);
      svg.append(r);
      return svg;
    };
    document.getElementById("chart-legend").replaceChildren(
      el("span", {}, swatch("#e6f4ea"), "allowed band"),
      ...(temp.devices ?? []).map((d, i) => el("span", {}, swatch(temp.colours[i]), d)),
      el("span", {}, swatch("#b3261e"), "reading outside the band"));
    if (!s.points.length) { status("chart-status", `${selected}: no readings yet.`); return; }
    const first = s.points[0].ts, last = s.points[s.points.length - 1].ts;
    const shown = s.thinned_from > s.points.length ? `${s.points.length} of ${s.thinned_from}` : `${s.points.length}`;
    const n = document.getElementById("chart-status");
    n.className = "hint";
    n.replaceChildren(`${selected}: ${shown} readings from `, window.TraceHub.time(first), " to ", window.TraceHub.time(last),
      `; ${temp.excursions + hum.excursions} outside the band.`);
  }

  // ------------------------------------------------------------------ readings

  async function loadReadings() {
    const form = new FormData(document.getElementById("readings-filter"));
    const q = new URLSearchParams([...form].filter(([, v]) => v));
    q.set("limit", PAGE + 1);
    q.set("offset", readingsOffset);
    const rows = await json("/dashboard/readings/latest?" + q);
    const more = rows.length > PAGE;
    const page = rows.slice(0, PAGE);
    const body = document.querySelector("#readings tbody");
    body.replaceChildren(...(page.length ? page.map((r) => el("tr", { "data-device": r.device_id },
      td("Device", r.device_id), td("Time", time(r.ts)), td("°C", fmt(r.data.temperature_c)),
      td("% RH", fmt(r.data.humidity_pct)), td("Position", r.loc ?? "—"), td("Shipment", r.shipment_id ?? "—")))
      : [el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No reading matches these filters."))]));
    document.getElementById("readings-page").textContent = page.length ? `devices ${readingsOffset + 1} to ${readingsOffset + page.length}` : "";
    document.getElementById("readings-prev").disabled = readingsOffset === 0;
    document.getElementById("readings-next").disabled = !more;
  }

  const refresh = () => Promise.all([loadAlerts(), loadShipments(), loadReadings()]).then(() => loadChart());

  async function follow(live) {
    // Server-Sent Events over fetch: split the body on blank lines, act on "event: alert".
    const reply = await api("/alerts/stream", { headers: { Accept: "text/event-stream" } });
    const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
    live.textContent = "live: following alert changes";
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream closed");
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (/^event: alert$/m.test(message)) { Promise.all([loadAlerts(), loadShipments()]); }
      }
    }
  }

  window.TraceHub.onReady(async () => {
    document.getElementById("readings-filter").addEventListener("submit", (e) => { e.preventDefault(); readingsOffset = 0; loadReadings(); });
    document.getElementById("readings-prev").addEventListener("click", () => { readingsOffset = Math.max(0, readingsOffset - PAGE); loadReadings(); });
    document.getElementById("readings-next").addEventListener("click", () => { readingsOffset += PAGE; loadReadings(); });
    await refresh();
    const live = document.getElementById("live");
    setInterval(refresh, 60000); // readings change without alerts; a slow refresh keeps them fresh
    (async function loop() {
      try { await follow(live); } catch (e) {
        live.textContent = "polling every 15 s (alert stream unavailable: " + e.message + ")";
        setTimeout(async () => { await refresh(); loop(); }, 15000);
      }
    })();
  });
})();

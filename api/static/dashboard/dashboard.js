// Logistics dashboard: shipments, open alerts, latest readings and SVG charts. Alert changes
// arrive on /alerts/stream (Server-Sent Events read with fetch, so the bearer token is sent);
// without it the page polls every 15 s.
"use strict";
(function () {
  const { el, json, api } = window.TraceHub;
  const SVG = "http://www.w3.org/2000/svg";
  let selected = null;

  const fmt = (v, d = 1) => (typeof v === "number" ? v.toFixed(d) : "—");
  const time = (t) => (t ? new Date(t).toLocaleString() : "—");

  async function loadAlerts() {
    const rows = await json("/dashboard/alerts");
    document.getElementById("alert-count").textContent = `(${rows.length})`;
    document.querySelector("#alerts tbody").replaceChildren(...rows.map((a) => el("tr", { "data-alert": a.alert_id },
      el("td", {}, time(a.opened_at)), el("td", { class: "sev-" + a.severity }, a.severity), el("td", {}, a.kind),
      el("td", {}, a.shipment_id ?? ""), el("td", {}, a.device_id ?? ""), el("td", {}, a.state))));
  }

  async function loadShipments() {
    const rows = await json("/dashboard/shipments");
    document.getElementById("shipments").replaceChildren(...rows.map((s) => {
      const r = s.last_reading;
      const card = el("div", { class: "card", "data-shipment": s.shipment_id },
        el("strong", {}, s.shipment_id), " ", el("span", { class: "state-" + s.state }, s.state),
        el("div", {}, `${s.origin} → ${s.destination}`),
        el("div", {}, "lots: " + s.lots.map((l) => `${l.gtin}/${l.lot}`).join(", ")),
        el("div", {}, r ? `${fmt(r.data.temperature_c)} °C · ${fmt(r.data.humidity_pct)} % · ${time(r.ts)}` : "no readings"),
        el("div", {}, "position: " + (s.last_position ?? "—")),
        el("div", { class: s.open_alerts ? "bad" : "ok" }, `${s.open_alerts} open alerts`),
        el("button", { type: "button", onclick: () => { selected = s.shipment_id; loadChart(); } }, "chart"));
      return card;
    }));
    if (!selected && rows.length) { selected = rows[0].shipment_id; }
  }

  async function loadReadings() {
    const rows = await json("/dashboard/readings/latest");
    document.querySelector("#readings tbody").replaceChildren(...rows.map((r) => el("tr", {},
      el("td", {}, r.device_id), el("td", {}, time(r.ts)), el("td", {}, fmt(r.data.temperature_c)),
      el("td", {}, fmt(r.data.humidity_pct)), el("td", {}, r.loc ?? ""), el("td", {}, r.shipment_id ?? ""))));
  }

  function draw(svg, points, key, low, high, unit) {
    const W = 800, H = 160, P = 24;
    svg.replaceChildren();
    const values = points.map((p) => p[key]).filter((v) => typeof v === "number");
    if (!values.length) { svg.append(text(P, H / 2, "no data")); return; }
    const ts = points.map((p) => Date.parse(p.ts));
    let lo = Math.min(...values, low ?? Infinity), hi = Math.max(...values, high ?? -Infinity);
    if (hi - lo < 1) { hi += 0.5; lo -= 0.5; }
    const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
    const x = (t) => P + ((t - t0) / (t1 - t0)) * (W - 2 * P);
    const y = (v) => H - P - ((v - lo) / (hi - lo)) * (H - 2 * P);
    if (low != null && high != null) {
      svg.append(node("rect", { x: P, y: y(high), width: W - 2 * P, height: y(low) - y(high), fill: "#e6f4ea" }));
    }
    const line = points.filter((p) => typeof p[key] === "number").map((p) => `${x(Date.parse(p.ts)).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    svg.append(node("polyline", { points: line, fill: "none", stroke: "#0b57d0", "stroke-width": 1.5 }));
    for (const p of points) {
      const v = p[key];
      if (typeof v === "number" && ((low != null && v < low) || (high != null && v > high))) {
        svg.append(node("circle", { cx: x(Date.parse(p.ts)), cy: y(v), r: 2.5, fill: "#b3261e", class: "excursion" }));
      }
    }
    svg.append(text(2, 12, `${fmt(hi)} ${unit}`), text(2, H - 4, `${fmt(lo)} ${unit}`));
  }
  function node(tag, attrs) { const n = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); return n; }
  function text(x, y, s) { const t = node("text", { x, y, "font-size": 11, fill: "#555" }); t.textContent = s; return t; }

  async function loadChart() {
    if (!selected) return;
    const s = await json(`/dashboard/shipments/${encodeURIComponent(selected)}/series?hours=72`);
    document.getElementById("chart-title").textContent = `— ${selected} (${s.thinned_from} readings)`;
    draw(document.getElementById("chart-temp"), s.points, "temperature_c", s.band.temp_min, s.band.temp_max, "°C");
    draw(document.getElementById("chart-hum"), s.points, "humidity_pct", s.band.humidity_min, s.band.humidity_max, "%");
  }

  const refresh = () => Promise.all([loadAlerts(), loadShipments(), loadReadings()]).then(loadChart);

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
        if (/^event: alert$/m.test(message)) { refresh(); }
      }
    }
  }

  window.TraceHub.onReady(async () => {
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

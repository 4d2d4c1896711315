// Condition charts as SVG: a real time axis over the readings' own range (ticks at round
// instants, local time), value ticks, the allowed band shaded and labelled, one line per device,
// excursions marked. The viewBox is fixed and scaled uniformly, so the chart keeps its aspect.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 720, H = 260, L = 52, R = 14, T = 12, B = 40;
  const COLOURS = ["#0b57d0", "#8e24aa", "#00897b", "#ef6c00", "#5d4037"];
  const SECOND = 1000, MINUTE = 60 * SECOND, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
  const STEPS = [SECOND, 5 * SECOND, 15 * SECOND, 30 * SECOND, MINUTE, 5 * MINUTE, 15 * MINUTE,
    30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

  function node(tag, attrs, text) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text != null) n.textContent = text;
    return n;
  }

  // Round instants every `step` ms inside [t0, t1], local midnight-aligned for day steps.
  function timeTicks(t0, t1) {
    const step = STEPS.find((s) => (t1 - t0) / s <= 6) ?? STEPS[STEPS.length - 1];
    const offset = new Date(t0).getTimezoneOffset() * MINUTE;
    const ticks = [];
    for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) ticks.push(t);
    return { ticks, step };
  }

  function timeLabel(t, step, span) {
    const d = new Date(t);
    if (step >= DAY) return d.toLocaleDateString([], { month: "short", day: "numeric" });
    const clock = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: step < MINUTE ? "2-digit" : undefined });
    return span >= DAY ? d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + clock : clock;
  }

  function valueTicks(lo, hi) {
    const raw = (hi - lo) / 5;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) ticks.push(Number(v.toFixed(6)));
    return ticks;
  }

  // Draw `points` ({ts, device_id, [key]}) into `svg`; returns {plotted, excursions}.
  function draw(svg, points, key, low, high, unit) {
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const rows = points.filter((p) => typeof p[key] === "number").map((p) => ({ t: Date.parse(p.ts), v: p[key], d: p.device_id, ts: p.ts }));
    if (!rows.length) {
      svg.append(node("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "tick" }, "no readings in this period"));
      return { plotted: 0, excursions: 0 };
    }
    const values = rows.map((r) => r.v);
    let lo = Math.min(...values, low ?? Infinity), hi = Math.max(...values, high ?? -Infinity);
    const pad = Math.max((hi - lo) * 0.08, 0.5);
    lo -= pad; hi += pad;
    let t0 = Math.min(...rows.map((r) => r.t)), t1 = Math.max(...rows.map((r) => r.t));
    if (t1 - t0 < MINUTE) { t0 -= 30 * SECOND; t1 += 30 * SECOND; } // one instant still has an axis
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    if (low != null || high != null) {
      const top = y(high ?? hi), bottom = y(low ?? lo);
      const band = node("rect", { class: "band", x: L, y: top, width: W - L - R, height: bottom - top });
      band.append(node("title", {}, `allowed band ${low ?? "−∞"} to ${high ?? "+∞"} ${unit}`));
      svg.append(band);
    }
    for (const v of valueTicks(lo, hi)) {
      svg.append(node("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(node("text", { class: "tick value", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, `${v}`));
    }
    const { ticks, step } = timeTicks(t0, t1);
    for (const t of ticks) {
      svg.append(node("line", { class: "grid", x1: x(t), x2: x(t), y1: T, y2: H - B }));
      svg.append(node("text", { class: "tick time", x: x(t), y: H - B + 16, "text-anchor": "middle", "data-time": new Date(t).toISOString() }, timeLabel(t, step, t1 - t0)));
    }
    svg.append(node("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(node("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    svg.append(node("text", { class: "tick", x: 4, y: T + 4 }, unit));
    const devices = [...new Set(rows.map((r) => r.d))];
    devices.forEach((device, i) => {
      const line = rows.filter((r) => r.d === device).map((r) => `${x(r.t).toFixed(1)},${y(r.v).toFixed(1)}`).join(" ");
      const poly = node("polyline", { class: "series", points: line, stroke: COLOURS[i % COLOURS.length], "data-device": device });
      poly.append(node("title", {}, device));
      svg.append(poly);
    });
    let excursions = 0;
    for (const r of rows) {
      if ((low != null && r.v < low) || (high != null && r.v > high)) {
        excursions += 1;
        const dot = node("circle", { class: "excursion", cx: x(r.t), cy: y(r.v), r: 3.5 });
        dot.append(node("title", {}, `${new Date(r.t).toLocaleString()}: ${r.v} ${unit} (${r.d}) outside the band`));
        svg.append(dot);
      }
    }
    return { plotted: rows.length, excursions, devices, colours: devices.map((_, i) => COLOURS[i % COLOURS.length]) };
  }

  window.TraceHubChart = { draw };
})();

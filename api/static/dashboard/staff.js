// Staff pages: sign in with POST /auth/token, keep the bearer token in sessionStorage (per tab,
// never a cookie) and call the JSON API with it. Page scripts register with TraceHub.onReady.
// One time format on every staff page: local time, the UTC instant on hover (TraceHub.time).
"use strict";
(function () {
  const KEY = "tracehub.token";
  const ready = [];
  const labels = JSON.parse(document.getElementById("labels")?.textContent || "{}");
  const TraceHub = {
    token: () => sessionStorage.getItem(KEY),
    onReady: (fn) => ready.push(fn),
    async api(path, options = {}) {
      const headers = Object.assign({}, options.headers, { Authorization: "Bearer " + TraceHub.token() });
      const reply = await fetch(path, Object.assign({}, options, { headers }));
      if (reply.status === 401) { sessionStorage.removeItem(KEY); location.reload(); }
      if (!reply.ok) {
        let detail = reply.statusText;
        try { detail = (await reply.json()).detail; } catch (e) { /* not JSON */ }
        throw new Error(reply.status + ": " + (typeof detail === "string" ? detail : JSON.stringify(detail)));
      }
      return reply;
    },
    async json(path, options) { return (await TraceHub.api(path, options)).json(); },
    el(tag, attrs = {}, ...children) {
      const node = document.createElement(tag);
      for (const [k, v] of Object.entries(attrs)) {
        if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
      }
      for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
      return node;
    },
    // A readable label for a code ("shipment_state_", "in_transit" -> "In transit").
    label(prefix, code) {
      if (code == null) return "";
      return labels[prefix + code] ?? String(code).replace(/_/g, " ");
    },
    // <time>: local date and time, the ISO instant in UTC as its title (shown on hover).
    time(iso) {
      if (!iso) return "—";
      const d = new Date(iso);
      if (Number.isNaN(d.getTime())) return String(iso);
      return TraceHub.el("time", { datetime: d.toISOString(), title: d.toISOString().replace(".000Z", "Z") + " (UTC)" },
        d.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" }));
    },
    // A table cell; `label` is the column name shown before the value when rows stack on a phone.
    td(label, value, cls) {
      const attrs = { "data-label": label };
      if (cls) attrs.class = cls;
      return TraceHub.el("td", attrs, value);
    },
  };
  window.TraceHub = TraceHub;

  async function start() {
    const form = document.getElementById("sign-in");
    const app = document.getElementById("app");
    const out = document.getElementById("sign-out");
    if (!TraceHub.token()) {
      form.hidden = false;
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const body = new URLSearchParams(new FormData(form));
        const reply = await fetch("/auth/token", { method: "POST", body });
        if (!reply.ok) { document.getElementById("sign-in-error").textContent = "Wrong user or password."; return; }
        sessionStorage.setItem(KEY, (await reply.json()).access_token);
        location.reload();
      });
      return;
    }
    form.hidden = true;
    try {
      const me = await TraceHub.json("/auth/me");
      document.getElementById("who").textContent = me.username + " (" + me.roles.join(", ") + ")";
    } catch (e) { return; }
    out.hidden = false;
    out.addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
    app.hidden = false;
    for (const fn of ready) {
      try { await fn(); } catch (e) { app.prepend(TraceHub.el("p", { class: "error", role: "alert" }, e.message)); }
    }
  }
  document.addEventListener("DOMContentLoaded", start);
})();

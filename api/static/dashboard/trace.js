// Trace page: fetches GET /trace (nodes, edges, hashes, proofs) and the Graphviz drawing
// GET /trace/graph.svg with the bearer token, and downloads the regulator exports the same way.
"use strict";
(function () {
  const { el, json, api } = window.TraceHub;

  function query(form) {
    const params = new URLSearchParams(new FormData(form));
    return params.toString();
  }

  async function download(path, name) {
    const blob = await (await api(path)).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(link); link.click(); link.remove();
  }

  async function show(form) {
    const q = query(form);
    history.replaceState(null, "", "?" + q);
    const data = await json("/trace?" + q);
    document.getElementById("counts").textContent = `(${data.nodes.length} nodes, ${data.edges.length} edges)`;
    document.querySelector("#edges tbody").replaceChildren(...data.edges.map((e) => el("tr", {},
      el("td", {}, e.from), el("td", {}, e.to), el("td", {}, e.kind),
      el("td", {}, e.quantity == null ? "" : `${e.quantity} ${e.uom || ""}`), el("td", {}, e.eventTime),
      el("td", { class: "hash" }, e.eventHash || "—"), el("td", {}, el("a", { href: e.proof }, "proof")))));
    const svgText = await (await api("/trace/graph.svg?" + q)).text();
    const svg = new DOMParser().parseFromString(svgText, "image/svg+xml").documentElement;
    document.getElementById("graph").replaceChildren(document.importNode(svg, true));
    const id = new URLSearchParams(q).get("id");
    const base = "id=" + encodeURIComponent(id);
    const links = document.getElementById("downloads");
    links.hidden = false;
    document.getElementById("csv").onclick = (ev) => { ev.preventDefault(); download("/trace/fsma.csv?" + base, "fsma204.csv"); };
    document.getElementById("xlsx").onclick = (ev) => { ev.preventDefault(); download("/trace/fsma.xlsx?" + base, "fsma204.xlsx"); };
    document.getElementById("epcis").onclick = (ev) => { ev.preventDefault(); download("/trace/epcis?" + base, "trace.jsonld"); };
  }

  window.TraceHub.onReady(async () => {
    const form = document.getElementById("trace-form");
    const given = new URLSearchParams(location.search);
    for (const [k, v] of given) if (form.elements[k]) form.elements[k].value = v;
    form.addEventListener("submit", (ev) => { ev.preventDefault(); show(form).catch((e) => alert(e.message)); });
    if (given.get("id")) await show(form);
  });
})();

// firstmotion live catalog page: map, selected event, revision history, pipeline health.
// Plain DOM + SVG, no libraries, no network beyond this server. Every value from the
// server is put in the page with textContent or as SVG attributes (never as HTML), except
// the server-rendered table rows and beachball SVG, which the server escapes.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const POLL_MS = Number(document.body.dataset.pollMs) || 3000;
const MAP_W = 760, MAP_H = 540, PAD = 34;
const state = { events: [], stations: [], stress: [], selected: null, live: false };

function el(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
function h(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function utc(epochS) {
  return new Date(epochS * 1000).toISOString().replace("T", " ").slice(0, 22);
}
function fmtS(s) {
  if (s === null || s === undefined) return "\u2013";
  if (Math.abs(s) < 120) return s.toFixed(1) + " s";
  if (Math.abs(s) < 7200) return (s / 60).toFixed(1) + " min";
  if (Math.abs(s) < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

// ------------------------------------------------------------------ map
function niceStep(span) {
  const raw = span / 5, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function projection(points) {
  let lat0 = 0, lat1 = 0, lon0 = 0, lon1 = 0;
  if (points.length) {
    lat0 = Math.min(...points.map(p => p[0])); lat1 = Math.max(...points.map(p => p[0]));
    lon0 = Math.min(...points.map(p => p[1])); lon1 = Math.max(...points.map(p => p[1]));
  }
  const padLat = Math.max((lat1 - lat0) * 0.08, 0.05), padLon = Math.max((lon1 - lon0) * 0.08, 0.05);
  lat0 -= padLat; lat1 += padLat; lon0 -= padLon; lon1 += padLon;
  const k = Math.cos(((lat0 + lat1) / 2) * Math.PI / 180);
  const sx = (MAP_W - 2 * PAD) / ((lon1 - lon0) * k), sy = (MAP_H - 2 * PAD) / (lat1 - lat0);
  const s = Math.min(sx, sy);
  const cx = (lon0 + lon1) / 2, cy = (lat0 + lat1) / 2;
  return {
    x: lon => MAP_W / 2 + (lon - cx) * k * s,
    y: lat => MAP_H / 2 - (lat - cy) * s,
    pxPerKm: s / 111.195, lat0, lat1, lon0, lon1, k, s,
  };
}
function stationKey(stationId) { return stationId.split(".").slice(0, 2).join("."); }

function drawMap() {
  const svg = document.getElementById("map");
  svg.replaceChildren();
  const evs = state.events.filter(e => e.status !== "deleted");
  const pts = state.stations.map(s => [s.latitude_deg, s.longitude_deg])
    .concat(evs.map(e => [e.origin.latitude_deg, e.origin.longitude_deg]));
  if (!pts.length) {
    svg.appendChild(el("text", { x: MAP_W / 2, y: MAP_H / 2, "text-anchor": "middle" },
      "no stations or events yet"));
    return;
  }
  const P = projection(pts);
  // graticule
  const g = el("g", { class: "grid" });
  const step = niceStep(Math.max(P.lat1 - P.lat0, (P.lon1 - P.lon0) * P.k));
  const dec = step >= 1 ? 0 : step >= 0.1 ? 1 : 2;
  for (let lat = Math.ceil(P.lat0 / step) * step; lat <= P.lat1; lat += step) {
    const y = P.y(lat);
    if (y < 4 || y > MAP_H - 4) continue;
    g.appendChild(el("line", { x1: 0, x2: MAP_W, y1: y, y2: y }));
    g.appendChild(el("text", { x: 3, y: y - 3 }, lat.toFixed(dec) + "\u00b0"));
  }
  for (let lon = Math.ceil(P.lon0 / step) * step; lon <= P.lon1; lon += step) {
    const x = P.x(lon);
    if (x < 4 || x > MAP_W - 4) continue;
    g.appendChild(el("line", { x1: x, x2: x, y1: 0, y2: MAP_H }));
    g.appendChild(el("text", { x: x + 3, y: MAP_H - 4 }, lon.toFixed(dec) + "\u00b0"));
  }
  svg.appendChild(g);
  // scale bar
  const kmNice = niceStep(120 / P.pxPerKm * 2.5);
  const barPx = kmNice * P.pxPerKm;
  const sb = el("g", { class: "scale" });
  sb.appendChild(el("rect", { x: MAP_W - barPx - 16, y: 12, width: barPx, height: 5, fill: "#4a5363" }));
  sb.appendChild(el("text", { x: MAP_W - 16 - barPx / 2, y: 31, "text-anchor": "middle" }, kmNice + " km"));
  svg.appendChild(sb);

  const sel = evs.find(e => e.event_id === state.selected);
  const selPol = {};
  if (sel && sel.mechanism) for (const p of sel.mechanism.picks) selPol[stationKey(p.station_id)] = p.polarity;
  // rays of the selected event
  if (sel) {
    const stations = Object.fromEntries(state.stations.map(s => [s.station, s]));
    const rays = el("g", { class: "rays" });
    for (const a of sel.origin.arrivals) {
      const s = stations[stationKey(a.station_id)];
      if (!s) continue;
      rays.appendChild(el("line", {
        x1: P.x(sel.origin.longitude_deg), y1: P.y(sel.origin.latitude_deg),
        x2: P.x(s.longitude_deg), y2: P.y(s.latitude_deg), stroke: "#c9d2de", "stroke-width": 1,
      }));
    }
    svg.appendChild(rays);
  }
  // stress (SHmax bars)
  if (state.stress.length) {
    const sg = el("g", { class: "stress" });
    for (const c of state.stress) {
      const x = P.x(c.longitude_deg), y = P.y(c.latitude_deg), a = c.shmax_azimuth_deg * Math.PI / 180;
      const L = 22, dx = Math.sin(a) * L, dy = -Math.cos(a) * L;
      const line = el("line", { x1: x - dx, y1: y - dy, x2: x + dx, y2: y + dy,
        stroke: "#5b3fa0", "stroke-width": 4, "stroke-linecap": "round", opacity: 0.8 });
      line.appendChild(el("title", {}, `cell ${c.cell}: SHmax ${c.shmax_azimuth_deg.toFixed(0)}\u00b0` +
        (c.n_mechanisms ? ` from ${c.n_mechanisms} mechanisms` : "")));
      sg.appendChild(line);
    }
    svg.appendChild(sg);
  }
  // stations
  const st = el("g", { class: "stations" });
  let nSuspect = 0;
  for (const s of state.stations) {
    const x = P.x(s.longitude_deg), y = P.y(s.latitude_deg);
    const pol = selPol[s.station];
    // as on the beachball: up (compression) filled, down (dilatation) open, unread grey
    const fill = pol === 1 ? "#1d2430" : pol === -1 ? "#ffffff" : "#cfd6df";
    // first motions against the final mechanisms: mostly disagreeing = upside down? (the
    // server's rule, web_data.mostly_disagree)
    const c = s.polarities || { agree: 0, disagree: 0 };
    const suspect = Boolean(s.mostly_disagree);
    if (suspect) nSuspect += 1;
    const stroke = suspect ? "#c0392b" : pol ? "#1d2430" : "#8a93a3";
    const tri = el("path", { d: `M${x} ${y - 7}L${x + 6} ${y + 4}L${x - 6} ${y + 4}Z`,
      fill, stroke, "stroke-width": suspect ? 2.4 : pol ? 1.6 : 1 });
    tri.appendChild(el("title", {}, s.station + (pol ? (pol > 0 ? ": up" : ": down") : "") +
      (s.polarities ? ` \u00b7 first motions vs final mechanisms: ${c.agree} agree, ` +
        `${c.disagree} disagree` + (suspect ? " (reads upside down?)" : "") : "")));
    st.appendChild(tri);
    st.appendChild(el("text", { x: x + 7, y: y + 12 }, s.station.split(".")[1] || s.station));
  }
  svg.appendChild(st);
  // epicentres, oldest first so the newest is on top
  const eg = el("g", { class: "epicentres" });
  for (const e of evs.slice().reverse()) {
    const x = P.x(e.origin.longitude_deg), y = P.y(e.origin.latitude_deg);
    const mag = e.origin.magnitude === null ? 1.5 : e.origin.magnitude;
    const r = Math.max(7, Math.min(22, 6 + 4 * mag));
    const grp = el("g", { class: "epi", "data-id": e.event_id });
    if (e.mechanism) {
      const img = el("image", { x: x - r, y: y - r, width: 2 * r, height: 2 * r,
        href: `/beachball/${encodeURIComponent(e.event_id)}.svg?size=64` });
      grp.appendChild(img);
    } else {
      grp.appendChild(el("circle", { cx: x, cy: y, r: r * 0.6, fill: "#f0a04b",
        stroke: "#1d2430", "stroke-width": 1.2 }));
    }
    grp.appendChild(el("title", {}, `${e.event_id}  ${utc(e.origin.time_epoch_s)}` +
      (e.origin.magnitude !== null ? `  M${e.origin.magnitude.toFixed(1)}` : "")));
    grp.addEventListener("click", () => select(e.event_id));
    eg.appendChild(grp);
    if (e.event_id === state.selected) {
      eg.appendChild(el("circle", { class: "sel", cx: x, cy: y, r: r + 4 }));
    }
  }
  svg.appendChild(eg);
  const legend = document.getElementById("map-legend");
  legend.textContent = `${state.stations.length} stations: the selected event's first motions ` +
    `\u25b2 up (compression), \u25b3 down (dilatation), grey not read \u00b7 ${evs.length} ` +
    `epicentres: beachball (lower hemisphere, red compression) or \u25cf location only` + (state.stress.length ? ` \u00b7 purple bars: SHmax of ` +
    `${state.stress.length} stress cells` : "") + (nSuspect ? ` \u00b7 red outline: ${nSuspect} ` +
    `station(s) whose first motions mostly disagree with the final mechanisms` : "");
}

// ------------------------------------------------------------------ selected event
function dl(pairs) {
  const d = document.createElement("dl");
  for (const [k, v] of pairs) {
    d.appendChild(h("dt", k));
    const dd = h("dd");
    if (v instanceof Node) dd.appendChild(v); else dd.textContent = v;
    d.appendChild(dd);
  }
  return d;
}
function qualityTag(q) { return h("span", q, "q q" + q); }

async function select(eventId) {
  state.selected = eventId;
  for (const tr of document.querySelectorAll("#events tr")) {
    tr.classList.toggle("selected", tr.id === "ev-" + eventId);
  }
  drawMap();
  await drawEvent();
}

async function drawEvent() {
  const id = state.selected;
  const title = document.getElementById("ev-title");
  const box = document.getElementById("ev-detail");
  const hist = document.getElementById("ev-history");
  if (!id) return;
  let ev, history;
  try {
    [ev, history] = await Promise.all([
      getJSON(`/api/events/${encodeURIComponent(id)}`),
      getJSON(`/api/events/${encodeURIComponent(id)}/history`),
    ]);
  } catch (err) { box.replaceChildren(h("p", "cannot load " + id + ": " + err, "muted")); return; }
  if (state.selected !== id) return;
  title.textContent = id;
  const o = ev.origin, m = ev.mechanism;
  const ball = h("div", null, "ball");
  if (m) {
    const r = await fetch(`/beachball/${encodeURIComponent(id)}.svg?size=230&picks=1`, { cache: "no-store" });
    if (r.ok) ball.innerHTML = await r.text();  // server-rendered, escaped SVG
  } else {
    ball.appendChild(h("p", "no mechanism yet", "muted"));
  }
  const nUp = m ? m.picks.filter(p => p.polarity > 0).length : 0;
  const nDown = m ? m.picks.filter(p => p.polarity < 0).length : 0;
  const pairs = [
    ["origin time", utc(o.time_epoch_s) + " UTC"],
    ["location", `${o.latitude_deg.toFixed(4)}, ${o.longitude_deg.toFixed(4)}`],
    ["depth", o.depth_km.toFixed(1) + " km"],
    ["magnitude", o.magnitude === null ? "\u2013" : o.magnitude.toFixed(1)],
    ["arrivals", String(o.arrivals.length) + (o.rms_s !== null ? `, rms ${o.rms_s.toFixed(2)} s` : "")],
    ["status", `${ev.status}, revision ${ev.revision}`],
  ];
  if (m) {
    pairs.push(
      ["strike/dip/rake", `${m.strike.toFixed(0)} / ${m.dip.toFixed(0)} / ${m.rake.toFixed(0)}`],
      ["auxiliary plane", `${m.aux_strike.toFixed(0)} / ${m.aux_dip.toFixed(0)} / ${m.aux_rake.toFixed(0)}`],
      ["quality", qualityTag(m.quality)],
      ["polarities", `${m.n_polarities} (${nUp} up \u25cf, ${nDown} down \u25cb)`],
      ["misfit", (100 * m.misfit).toFixed(0) + " %"],
      ["plane uncertainty", m.fault_plane_uncertainty_deg.toFixed(0) + "\u00b0"],
      ["station distribution", m.station_distribution_ratio.toFixed(2)],
      ["gaps az / takeoff", `${m.azimuthal_gap_deg === null ? "\u2013" : m.azimuthal_gap_deg.toFixed(0)}\u00b0 / ` +
        `${m.takeoff_gap_deg === null ? "\u2013" : m.takeoff_gap_deg.toFixed(0)}\u00b0`],
      ["mechanism", `${fmtS(m.created_epoch_s - o.time_epoch_s)} after origin time` +
        (m.origin_revision === o.revision ? `, ${fmtS(m.created_epoch_s - o.created_epoch_s)} after location` : "")],
    );
  }
  box.replaceChildren(ball, dl(pairs));
  // revision history, newest first
  const t = h("table");
  const head = h("tr");
  for (const c of ["rev", "change", "status", "origin", "mechanism", "Q", "pol", "at"]) head.appendChild(h("th", c));
  t.appendChild(head);
  for (const r of history.slice().reverse()) {
    const tr = h("tr");
    const mm = r.mechanism;
    const cells = [String(r.revision), r.kind, r.status,
      `r${r.origin.revision} ${r.origin.n_arrivals} arr`,
      mm ? `r${mm.revision} ${mm.strike.toFixed(0)}/${mm.dip.toFixed(0)}/${mm.rake.toFixed(0)}` : "\u2013",
      mm ? mm.quality : "", mm ? String(mm.n_polarities) : "",
      new Date(r.updated_epoch_s * 1000).toISOString().slice(11, 19)];
    for (const c of cells) tr.appendChild(h("td", c));
    t.appendChild(tr);
  }
  hist.replaceChildren(history.length ? t : h("p", "no history recorded", "muted"));
}

// ------------------------------------------------------------------ health
function badge(text, cls) { return h("span", text, "badge " + cls); }

function drawHealth(hl) {
  const box = document.getElementById("health");
  const t = h("table");
  const head = h("tr");
  for (const c of ["stream \u2192 group", "backlog", "pending", ""]) head.appendChild(h("th", c));
  t.appendChild(head);
  const maxBacklog = Math.max(1, ...hl.groups.map(g => g.backlog || 0));
  for (const g of hl.groups) {
    const tr = h("tr");
    tr.appendChild(h("td", `${g.stream} \u2192 ${g.group}`));
    tr.appendChild(h("td", g.backlog === null ? "\u2013" : String(g.backlog)));
    tr.appendChild(h("td", g.pending === null ? "\u2013" : String(g.pending)));
    const td = h("td"), bar = h("span", null, "bar");
    bar.style.width = (60 * (g.backlog || 0) / maxBacklog) + "px";
    td.appendChild(bar); tr.appendChild(td);
    t.appendChild(tr);
  }
  const s = hl.streams, lat = hl.latency;
  const facts = dl([
    ["dead letters", String(hl.dead_letters)],
    ["origin time \u2192 location", `last ${fmtS(lat.location_s.last)}, median ${fmtS(lat.location_s.median)}`],
    ["origin time \u2192 mechanism", `last ${fmtS(lat.mechanism_s.last)}, median ${fmtS(lat.mechanism_s.median)}`],
    ["location \u2192 mechanism", `last ${fmtS(lat.processing_s.last)}, median ${fmtS(lat.processing_s.median)}`],
    ["newest pick", s.picks.newest_age_s === null ? "none" : fmtS(s.picks.newest_age_s) + " ago"],
    ["stream lengths", `picks ${s.picks.length}, polarities ${s.polarities.length}, ` +
      `origins ${s.origins.length}, mechanisms ${s.mechanisms.length}`],
    ["page streams", `${hl.stream_clients} of ${hl.max_stream_clients} listeners`],
  ]);
  box.replaceChildren(t, facts);
  const backlog = hl.groups.reduce((a, g) => a + (g.backlog || 0) + (g.pending || 0), 0);
  document.getElementById("badges").replaceChildren(
    badge(state.live ? "live" : LIVE ? "reconnecting" : "polling", state.live || !LIVE ? "ok" : "warn"),
    badge(`backlog ${backlog}`, backlog > 500 ? "bad" : backlog > 50 ? "warn" : "ok"),
    badge(`dead letters ${hl.dead_letters}`, hl.dead_letters ? "bad" : "ok"),
  );
}

// ------------------------------------------------------------------ refresh loop
async function refreshEvents() {
  try {
    const [frag, events, stations, stress] = await Promise.all([
      fetch("/fragment", { cache: "no-store" }),
      getJSON("/api/events"), getJSON("/api/stations"), getJSON("/api/stress"),
    ]);
    if (frag.ok) document.getElementById("events").innerHTML = await frag.text();
    state.events = events; state.stations = stations; state.stress = stress;
    if (!state.selected || !events.some(e => e.event_id === state.selected)) {
      const pick = events.find(e => e.mechanism) || events[0];
      state.selected = pick ? pick.event_id : null;
    }
    for (const tr of document.querySelectorAll("#events tr")) {
      tr.classList.toggle("selected", tr.id === "ev-" + state.selected);
    }
    document.getElementById("status").textContent =
      `${events.length} events \u00b7 ${stations.length} stations \u00b7 last update ` +
      new Date().toISOString().slice(11, 19) + " UTC";
    drawMap();
    await drawEvent();
  } catch (err) {
    document.getElementById("status").textContent = "offline: " + err;
  }
}
async function refreshHealth() {
  try { drawHealth(await getJSON("/api/health")); } catch (err) { /* shown by the status line */ }
}

let pending = null;
function soon() {
  if (!pending) pending = setTimeout(() => { pending = null; refreshEvents(); refreshHealth(); }, 300);
}
document.getElementById("events").addEventListener("click", ev => {
  const tr = ev.target.closest("tr");
  if (tr && tr.id.startsWith("ev-")) select(tr.id.slice(3));
});
// ?live=0: poll only, no event stream (proxies that break streaming responses; screenshots)
const LIVE = new URLSearchParams(location.search).get("live") !== "0";
if (LIVE && window.EventSource) {
  const es = new EventSource("/api/stream");
  es.addEventListener("change", soon);
  es.onopen = () => { state.live = true; };
  es.onerror = () => { state.live = false; };
}
refreshEvents();
refreshHealth();
setInterval(refreshEvents, Math.max(POLL_MS, 5000));
setInterval(refreshHealth, POLL_MS);

// Aria's dashboard: each page renders from JSON (/api/v1/monitor/...) and live server-sent events
// (/events). No framework and nothing from a CDN: it must work offline.
"use strict";

const page = document.body.dataset.page;
const isAdmin = document.body.dataset.admin === "yes";
// Paths are the monitor's own unless they name another app's API (/api/v1/<app>/...).
const api = (path, options = {}) =>
  fetch(path.startsWith("/api/") ? path : `/api/v1/monitor${path}`, { credentials: "same-origin", ...options }).then(async (response) => {
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error_description || `${response.status}`);
    return body;
  });
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
};
const svg = (tag, attrs = {}, text = "") => {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
};
const bytes = (n) => { const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return `${n.toFixed(i ? 1 : 0)} ${u[i]}`; };
const seconds = (s) => s == null ? "" : s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
const card = (label, value) => el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, String(value ?? "—")));
const status = (text) => { const s = document.getElementById("live-status"); if (s) s.textContent = text; };

// ---- live events --------------------------------------------------------------------------
const handlers = {};
function live() {
  const source = new EventSource("/events");
  source.onopen = () => status("live");
  source.onerror = () => status("reconnecting…");
  for (const kind of ["tree", "logs", "os"]) {
    source.addEventListener(kind, (event) => { const data = JSON.parse(event.data); (handlers[kind] || (() => {}))(data); });
  }
}

// ---- pages --------------------------------------------------------------------------------
const pages = {
  async home() {
    const home = await api("/home");
    const cards = document.getElementById("home-cards");
    const draw = (h) => cards.replaceChildren(card("node", h.node), card("uptime", seconds(h.uptime)), card("apps", h.apps),
      card("boot", seconds(h.boot_seconds)), card("data dir", h.data_dir), card("database", h.engines.database), card("pid", h.pid));
    draw(home);
    document.getElementById("versions").replaceChildren(...Object.entries(home.versions).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v ?? "—"))));
    handlers.tree = (tree) => { home.uptime = tree.uptime; draw(home); };
  },

  tree() {
    const body = document.querySelector("#tree tbody");
    const rows = new Map(); // path -> row, updated in place so buttons stay put between updates
    const action = async (path, verb) => {
      try { await api(`/tree/${path}/${verb}`, { method: "POST" }); } catch (error) { alert(`${verb} ${path}: ${error.message}`); }
    };
    const button = (path, verb, label, danger) =>
      el("button", { class: danger ? "danger" : "", onclick: () => action(path, verb), "data-action": verb, "data-path": path }, label);
    const makeRow = (child, depth) => {
      const cells = {
        id: el("td", {}, el("span", { class: "indent", style: `width:${depth * 1.2}em` }), child.id),
        kind: el("td", {}), state: el("td"), restarts: el("td", { class: "restarts" }), pid: el("td"),
        uptime: el("td"), error: el("td", { class: "bad" }),
      };
      const actions = isAdmin ? el("td", {}, button(child.path, "restart", "Restart"), " ",
        button(child.path, "kill", "Kill", true), " ", button(child.path, "stop", "Stop", true)) : el("td");
      const row = el("tr", { "data-path": child.path }, cells.id, cells.kind, cells.state, cells.restarts, cells.pid,
        cells.uptime, cells.error, actions);
      row.cells_ = cells;
      return row;
    };
    handlers.tree = (tree) => {
      const order = [];
      const walk = (node, depth) => {
        for (const child of node.children || []) {
          let row = rows.get(child.path);
          if (!row) { row = makeRow(child, depth); rows.set(child.path, row); }
          const c = row.cells_;
          c.kind.textContent = child.kind;
          c.state.textContent = child.state;
          c.state.className = `state state-${child.state}`;
          c.restarts.textContent = String(child.restarts);
          c.pid.textContent = child.pid ?? "";
          c.uptime.textContent = seconds(child.uptime);
          c.error.textContent = child.last_error ?? "";
          order.push(row);
          walk(child, depth + 1);
        }
      };
      walk(tree.root, 0);
      const keep = new Set(order);
      for (const [path, row] of rows) if (!keep.has(row)) { row.remove(); rows.delete(path); }
      order.forEach((row, index) => { if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null); });
    };
  },

  async apps() {
    const apps = await api("/apps");
    document.getElementById("apps").replaceChildren(...apps.map((app) => el("details", { "data-app": app.name },
      el("summary", {}, el("strong", {}, app.name), " ", el("span", { class: `state state-${app.state}` }, app.state),
        app.restarts ? ` · ${app.restarts} restarts` : ""),
      el("h3", {}, "status"), el("pre", {}, JSON.stringify(app.status, null, 2)),
      el("h3", {}, "config"), el("pre", {}, JSON.stringify(app.config, null, 2)))));
  },

  async charts() {
    const select = document.getElementById("range");
    const figures = [...document.querySelectorAll("figure[data-metric]")];
    const draw = (chart, points) => {
      chart.replaceChildren();
      if (points.length < 2) { chart.append(svg("text", { x: 10, y: 60 }, "collecting samples…")); return; }
      const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
      const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
      const sx = (x) => 30 + 365 * (x - x0) / ((x1 - x0) || 1), sy = (y) => 110 - 100 * (y - y0) / ((y1 - y0) || 1);
      chart.append(svg("polyline", { points: points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ") }));
      chart.append(svg("text", { x: 0, y: 12 }, y1.toPrecision(3)), svg("text", { x: 0, y: 112 }, y0.toPrecision(3)));
    };
    const load = async () => {
      for (const figure of figures) {
        const history = await api(`/history/${figure.dataset.metric}?seconds=${select.value}`);
        figure.points = history.points;
        draw(figure.querySelector("svg"), figure.points);
      }
    };
    select.addEventListener("change", load);
    await load();
    setInterval(load, 5000);
  },

  logs() {
    const body = document.querySelector("#logs tbody");
    const appSelect = document.getElementById("log-app"), levelSelect = document.getElementById("log-level");
    const follow = document.getElementById("log-follow");
    const apps = new Set();
    const keep = (line) => (!appSelect.value || line.app === appSelect.value) &&
      (!levelSelect.value || ["info", "warning", "error"].indexOf(line.level) >= ["info", "warning", "error"].indexOf(levelSelect.value));
    const all = [];
    const render = () => {
      body.replaceChildren(...all.filter(keep).slice(-300).map((line) => el("tr", { class: line.level },
        el("td", {}, (line.timestamp || "").slice(11, 23)), el("td", { class: line.level === "error" ? "bad" : line.level === "warning" ? "warn" : "" }, line.level),
        el("td", {}, line.app || ""), el("td", {}, line.child || ""), el("td", { class: "event" }, line.event))));
      if (follow.checked) window.scrollTo(0, document.body.scrollHeight);
    };
    handlers.logs = (lines) => {
      for (const line of lines) {
        all.push(line);
        if (line.app && !apps.has(line.app)) { apps.add(line.app); appSelect.append(el("option", {}, line.app)); }
      }
      if (all.length > 5000) all.splice(0, all.length - 5000);
      render();
    };
    appSelect.addEventListener("change", render);
    levelSelect.addEventListener("change", render);
  },

  async queue() {
    const stateSelect = document.getElementById("job-state");
    const load = async () => {
      const data = await api(`/queue?state=${stateSelect.value}`);
      const states = ["available", "scheduled", "executing", "retryable", "completed", "discarded", "cancelled"];
      const names = new Set([...Object.keys(data.stats.jobs), ...Object.keys(data.stats.local)]);
      document.querySelector("#queue-stats tbody").replaceChildren(...[...names].sort().map((name) => el("tr", {},
        el("td", {}, name), ...states.map((s) => el("td", { class: `state-${s}` }, String((data.stats.jobs[name] || {})[s] || 0))))));
      document.querySelector("#jobs tbody").replaceChildren(...data.jobs.map((job) => el("tr", { "data-job": job.id },
        el("td", {}, job.id.slice(0, 8)), el("td", { class: `state state-${job.state}` }, job.state), el("td", {}, job.queue),
        el("td", {}, job.worker), el("td", {}, `${job.attempt}/${job.max_attempts}`),
        el("td", { class: "bad" }, job.errors.length ? job.errors[job.errors.length - 1].error || "" : ""),
        el("td", {}, el("button", { onclick: () => act(job.id, "retry") }, "Retry"), " ",
          el("button", { class: "danger", onclick: () => act(job.id, "cancel") }, "Cancel")))));
    };
    const act = async (id, verb) => { try { await api(`/api/v1/queue/jobs/${id}/${verb}`, { method: "POST" }); } catch (e) { alert(e.message); } load(); };
    stateSelect.addEventListener("change", load);
    await load();
    setInterval(load, 3000);
  },

  async storage() {
    const data = await api("/storage").catch((error) => ({ error: error.message }));
    const stats = data.statistics || {};
    document.getElementById("storage-cards").replaceChildren(...Object.entries(stats).filter(([, v]) => typeof v !== "object")
      .map(([k, v]) => card(k.replaceAll("_", " "), typeof v === "number" && k.includes("bytes") ? bytes(v) : v)),
      ...(data.error ? [card("storage", data.error)] : []));
    const assets = Array.isArray(data.list_assets) ? data.list_assets : [];
    document.querySelector("#assets tbody").replaceChildren(...assets.map((a) => el("tr", {},
      el("td", {}, a.name), el("td", {}, a.version ?? ""), el("td", {}, bytes(a.size || 0)), el("td", {}, a.content_type ?? ""),
      el("td", {}, (a.caid || "").slice(0, 16)))));
  },

  async security() {
    const data = await api("/security");
    const bao = data.openbao || {};
    document.getElementById("openbao").replaceChildren(card("sealed", bao.sealed ? "sealed" : "unsealed"),
      card("initialized", bao.initialized), card("version", bao.version), card("raft leader", bao.raft_leader), card("unseal source", bao.unseal_source));
    document.querySelector("#auth-events tbody").replaceChildren(...(data.events || []).map((e) => el("tr", {},
      el("td", {}, (e.at || e.created_at || "").toString().slice(0, 19)), el("td", {}, e.kind ?? ""), el("td", {}, e.principal ?? e.subject ?? ""),
      el("td", {}, e.action ?? e.what ?? ""), el("td", { class: e.result === "allow" || e.result === "success" ? "ok" : "bad" }, e.result ?? ""),
      el("td", {}, e.reason ?? ""))));
  },

  os() {
    const cards = document.getElementById("os-cards");
    handlers.os = (os) => cards.replaceChildren(card("CPU", `${os.cpu_percent.toFixed(0)} % of ${os.cpus}`),
      card("load", os.load.map((l) => l.toFixed(2)).join(" ")), card("memory", `${bytes(os.memory.used)} of ${bytes(os.memory.total)}`),
      card("disk (data dir)", `${bytes(os.disk.used)} of ${bytes(os.disk.total)}`), card("aria RSS", bytes(os.process.rss)),
      card("threads", os.process.threads));
    api("/os").then(handlers.os);
  },
};

if (pages[page]) {
  Promise.resolve(pages[page]()).catch((error) => status(`error: ${error.message}`));
  live();
}

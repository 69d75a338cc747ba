// Arco's catalog explorer. Every catalog query runs here, in the browser, with DuckDB-WASM over signed URLs of the
// catalog's Parquet files (POST /api/v1/sign); the API only signs and answers the few JSON views it owns (asset
// details and lineage). Marks for the benchmarks: "arco:duckdb-ready", "arco:assets-shown", "arco:lineage-data",
// "arco:lineage-drawn" (and the measure "arco:lineage-draw" between the last two).
import * as duckdb from "@duckdb/duckdb-wasm";
import dagre from "@dagrejs/dagre";
import initParquet, { readParquet } from "parquet-wasm/esm";

const TOKEN_KEY = "arco.explorer.token";
const TABLE_NAME = /\b(catalog|ops|lineage)\.([a-z_]+)\b/gi;
const SHOWN_ROWS = 1000;

// -- the token: from the URL fragment (#token=...), then kept in sessionStorage and dropped from the address bar --

function takeToken() {
  const hash = window.location.hash;
  const match = /(?:^#|&)token=([^&]+)/.exec(hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search + "#/assets");
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const token = takeToken();

// -- small DOM helpers --------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const view = document.getElementById("view");
const errorBox = document.getElementById("error");
const engineBox = document.getElementById("engine");

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

function table(columns, rows, attrs = {}) {
  return el(
    "table",
    attrs,
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, v))))),
  );
}

function stateChip(state) {
  return el("span", { class: `state state-${state ?? "unknown"}` }, state ?? "unknown");
}

// -- the API -----------------------------------------------------------------------------------------------------

class ApiError extends Error {}

async function api(path, options = {}) {
  if (!token) {
    throw new ApiError(
      "No token: open the address that `arco serve --print-token` (or `arco dev`) prints, which ends in #token=…",
    );
  }
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...(options.headers ?? {}) },
  });
  if (!response.ok) throw new ApiError(await problemText(response));
  return response.json();
}

async function problemText(response) {
  try {
    const problem = await response.json();
    return `${problem.title ?? response.statusText} (HTTP ${response.status}): ${problem.detail ?? ""}`.trim();
  } catch {
    return `HTTP ${response.status} ${response.statusText} from ${new URL(response.url).pathname}`;
  }
}

// -- DuckDB-WASM, loaded from this server (the files are vendored into the build) ---------------------------------

let enginePromise = null;

function engine() {
  enginePromise ??= startEngine();
  return enginePromise;
}

async function startEngine() {
  const base = new URL("explorer/duckdb/", document.baseURI).href;
  const bundle = await duckdb.selectBundle({
    mvp: { mainModule: `${base}duckdb-mvp.wasm`, mainWorker: `${base}duckdb-browser-mvp.worker.js` },
    eh: { mainModule: `${base}duckdb-eh.wasm`, mainWorker: `${base}duckdb-browser-eh.worker.js` },
  });
  const worker = new Worker(bundle.mainWorker);
  const db = new duckdb.AsyncDuckDB(new duckdb.VoidLogger(), worker);
  await db.instantiate(bundle.mainModule, bundle.pthreadWorker);
  const conn = await db.connect();
  // Never reach out for extensions: everything the page needs is in the vendored engine.
  await conn.query("SET autoinstall_known_extensions = false");
  await conn.query("SET autoload_known_extensions = false");
  performance.mark("arco:duckdb-ready");
  engineBox.textContent = `DuckDB-WASM ${await db.getVersion()}: ready`;
  return conn;
}

// -- signed URLs: one view per catalog table, re-signed shortly before the URLs expire ----------------------------

const signed = new Map(); // table -> {expiresAt: ms, urls: [...]}

function quote(text) {
  return `'${String(text).replaceAll("'", "''")}'`;
}

function ident(name) {
  return `"${String(name).replaceAll('"', '""')}"`;
}

// DuckDB-WASM's npm package has no Parquet reader built in (it downloads its parquet extension from DuckDB's
// extension site at run time, which the explorer never does): the page fetches each signed Parquet file itself,
// decodes it with parquet-wasm (also vendored) and hands DuckDB the Arrow data. Catalog files are immutable and
// named by their content's commit, so a file is loaded once per page.

let parquetReady = null;

function parquet() {
  parquetReady ??= initParquet({ module_or_path: new URL("explorer/parquet/parquet_wasm_bg.wasm", document.baseURI) });
  return parquetReady;
}

const loadedFiles = new Map(); // file path (the URL without its signature) -> promise of a DuckDB table name
let fileCount = 0;

class SignedUrlError extends Error {}

function loadFile(conn, table, url) {
  const path = url.split("?")[0];
  let loading = loadedFiles.get(path);
  if (!loading) {
    const name = `f${++fileCount}`;
    loading = (async () => {
      const response = await fetch(url);
      if (!response.ok) {
        throw new SignedUrlError(
          `The catalog refused a signed URL of ${table}: ${await problemText(response)}. ` +
            "Reload the page to sign new URLs.",
        );
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      await parquet();
      await conn.insertArrowFromIPCStream(readParquet(bytes).intoIPCStream(), { name, schema: "_arco_files" });
      return `"_arco_files".${ident(name)}`;
    })();
    loading.catch(() => loadedFiles.delete(path));
    loadedFiles.set(path, loading);
  }
  return loading;
}

function filesRelation(tables) {
  return `(${tables.map((t) => `SELECT * FROM ${t}`).join(" UNION ALL BY NAME ")})`;
}

// Without the server's merge SQL, a table's rows are its files' rows (Tier-1 files: the newest live version of
// each key, which is how the catalog writes them).
function fallbackSelect(name, urls) {
  const files = `read_parquet([${urls.map(quote).join(", ")}], union_by_name = true)`;
  if (!name.startsWith("catalog.")) return `SELECT * FROM ${files}`;
  return `SELECT * EXCLUDE (_key, _seq, _deleted, _arco_rn) FROM (SELECT *, row_number() OVER
    (PARTITION BY _key ORDER BY _seq DESC) AS _arco_rn FROM ${files}) WHERE _arco_rn = 1 AND NOT _deleted`;
}

const READ_PARQUET = /read_parquet\(\[((?:'(?:[^']|'')*'(?:, )?)*)\](?:, union_by_name = true)?\)/g;

async function ensureTables(names) {
  const now = Date.now();
  const wanted = [...new Set(names.map((n) => n.toLowerCase()))].filter((n) => {
    const entry = signed.get(n);
    return !entry || entry.expiresAt - 30_000 < now;
  });
  if (wanted.length === 0) return;
  const answer = await api("api/v1/sign", { method: "POST", body: JSON.stringify({ tables: wanted }) });
  const expiresAt = Date.parse(answer.expiresAt);
  const conn = await engine();
  await conn.query('CREATE SCHEMA IF NOT EXISTS "_arco_files"');
  for (const name of wanted) {
    const urls = answer.tables?.[name] ?? [];
    const [schema, relation] = name.split(".");
    await conn.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
    // No files yet (a scope with nothing in that table): the server's SELECT still gives the columns.
    let body = answer.duckdb?.[name] ?? "SELECT NULL AS no_rows WHERE false";
    if (urls.length) {
      const select = answer.duckdb?.[name] ?? fallbackSelect(name, urls);
      const loaded = new Map();
      for (const url of urls) loaded.set(url, await loadFile(conn, name, url));
      body = select.replace(READ_PARQUET, (_all, list) => {
        const listed = [...list.matchAll(/'((?:[^']|'')*)'/g)].map((m) => m[1].replaceAll("''", "'"));
        return filesRelation(listed.map((u) => loaded.get(u) ?? `"missing file ${u.split("?")[0]}"`));
      });
    }
    await conn.query(`CREATE OR REPLACE VIEW ${ident(schema)}.${ident(relation)} AS ${body}`);
    signed.set(name, { expiresAt, urls });
  }
}

async function query(sql, tables) {
  try {
    await ensureTables(tables);
  } catch (error) {
    if (error instanceof SignedUrlError) signed.clear();
    throw error;
  }
  const conn = await engine();
  return conn.query(sql);
}

function tablesIn(sql) {
  return [...sql.matchAll(TABLE_NAME)].map((m) => `${m[1]}.${m[2]}`.toLowerCase());
}

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  return String(value);
}

// -- the asset list ----------------------------------------------------------------------------------------------

const ASSET_LIST_SQL = `SELECT asset_key, namespace, name, description, partitioning
FROM catalog.assets ORDER BY asset_key`;

async function showAssets() {
  const search = el("input", { type: "search", id: "asset-search", placeholder: "Search assets by key or description" });
  const count = el("span", { class: "muted", id: "asset-count" }, "loading…");
  const body = el("tbody");
  const list = el(
    "table",
    { id: "assets", "data-state": "loading" },
    el("thead", {}, el("tr", {}, ["Asset", "Namespace", "Partitioned", "Description"].map((c) => el("th", {}, c)))),
    body,
  );
  view.replaceChildren(el("h2", {}, "Assets"), el("div", { class: "toolbar" }, search, count), list);
  let result;
  try {
    result = await query(ASSET_LIST_SQL, ["catalog.assets"]);
  } catch (error) {
    count.textContent = "not loaded";
    list.dataset.state = "failed";
    throw error;
  }
  const assets = result.toArray().map((row) => row.toJSON());
  const rows = assets.map((a) => {
    const partitioned = a.partitioning !== null && a.partitioning !== "" && a.partitioning !== "null";
    const tr = el(
      "tr",
      { "data-key": a.asset_key },
      el("td", {}, el("a", { href: `#/asset/${encodeURIComponent(a.asset_key)}` }, a.asset_key)),
      el("td", {}, a.namespace),
      el("td", {}, partitioned ? "yes" : "no"),
      el("td", {}, a.description ?? ""),
    );
    return { tr, text: `${a.asset_key} ${a.description ?? ""}`.toLowerCase() };
  });
  body.replaceChildren(...rows.map((r) => r.tr));
  const filter = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const r of rows) {
      r.tr.hidden = !words.every((w) => r.text.includes(w));
      if (!r.tr.hidden) shown += 1;
    }
    count.textContent = `${shown} of ${rows.length} assets`;
  };
  search.addEventListener("input", filter);
  filter();
  list.dataset.state = "ready";
  performance.mark("arco:assets-shown");
}

// -- an asset ----------------------------------------------------------------------------------------------------

async function showAsset(key, partition) {
  const answer = await api(`api/v1/assets/${encodeURIComponent(key)}`);
  const asset = answer.asset;
  const lineageTarget = partition ? `${key}@${partition}` : key;
  const graphBox = el("div", { class: "graph", id: "lineage" }, el("p", { class: "muted" }, "drawing lineage…"));
  const hops = el(
    "select",
    { id: "hops" },
    [1, 2, 3, 4, 5].map((n) => el("option", { value: n, selected: n === 5 }, `${n} hop${n > 1 ? "s" : ""}`)),
  );
  const drill = el("div", { id: "drill" });
  const partitions = answer.partitions ?? [];
  view.replaceChildren(
    el("h2", {}, asset.key, partition ? el("span", { class: "muted" }, ` @ ${partition}`) : null),
    el("p", {}, asset.description ?? el("span", { class: "muted" }, "no description")),
    el("p", { class: "muted" }, asset.codeLocation ? `code location ${asset.codeLocation}` : null),
    el(
      "section",
      {},
      el("h3", {}, "Lineage", partition ? ` of partition ${partition}` : ""),
      el(
        "div",
        { class: "toolbar" },
        hops,
        partition ? el("a", { href: `#/asset/${encodeURIComponent(key)}` }, "whole asset") : null,
        legend(),
      ),
      graphBox,
      drill,
    ),
    el(
      "section",
      {},
      el("h3", {}, "Schema"),
      (asset.schema ?? []).length
        ? table(["Column", "Type"], asset.schema.map((c) => [c.name, c.type]), { id: "schema" })
        : el("p", { class: "muted" }, "no schema recorded"),
    ),
    el(
      "section",
      {},
      el("h3", {}, `Partitions (${partitions.length})`),
      partitions.length
        ? table(
            ["Partition", "Status", "Last materialized", ""],
            partitions.map((p) => [
              p.partition,
              stateChip(p.state),
              p.lastMaterializedAt ?? "",
              el(
                "a",
                { href: `#/asset/${encodeURIComponent(key)}/${encodeURIComponent(p.partition)}` },
                "lineage",
              ),
            ]),
            { id: "partitions" },
          )
        : el("p", { class: "muted" }, "not partitioned, or nothing materialized yet"),
    ),
    el(
      "section",
      {},
      el("h3", {}, "Recent runs"),
      (answer.runs ?? []).length
        ? table(["Run", "State", "Started"], answer.runs.map((r) => [r.runId, stateChip(r.state), r.startedAt ?? ""]), {
            id: "runs",
          })
        : el("p", { class: "muted" }, "no runs yet"),
    ),
    el(
      "section",
      {},
      el("h3", {}, "Checks"),
      (asset.checks ?? []).length
        ? table(
            ["Check", "Severity", "Blocking"],
            asset.checks.map((c) => [c.name, c.severity, c.blocking ? "yes" : "no"]),
            { id: "checks" },
          )
        : el("p", { class: "muted", id: "checks" }, "no checks"),
    ),
  );
  const draw = async () => {
    const graph = await loadLineage(lineageTarget, Number(hops.value));
    drawLineage(graphBox, graph, drill);
  };
  hops.addEventListener("change", () => draw().catch((e) => showError(String(e.message ?? e))));
  await draw();
}

function legend() {
  const sample = (status) =>
    svg("svg", { width: 34, height: 10, class: "graph" }, svg("g", { class: `edge ${status}` }, svg("path", { d: "M1 5 H33" })));
  const box = el("span", { class: "legend graph", style: "border:0;background:none;overflow:visible" });
  for (const [status, text] of [
    ["matched", "declared and observed"],
    ["declared_not_observed", "declared, not observed"],
    ["observed_not_declared", "observed, not declared"],
  ]) {
    box.append(el("span", {}, sample(status), text));
  }
  return box;
}

// -- lineage: upstream and downstream of a node, merged, laid out with dagre, drawn as SVG ------------------------

function nodeLabel(node) {
  return node.label ?? node.id;
}

async function loadLineage(target, hops) {
  const ask = (direction) =>
    api(`api/v1/lineage/${direction}?node=${encodeURIComponent(target)}&hops=${hops}&format=json`);
  const [up, down] = await Promise.all([ask("upstream"), ask("downstream")]);
  performance.mark("arco:lineage-data");
  const nodes = new Map();
  const edges = new Map();
  for (const part of [up, down]) {
    for (const n of part.nodes ?? []) nodes.set(n.id, n);
    for (const e of part.edges ?? []) edges.set(`${e.source}\u0000${e.target}`, e);
  }
  const root = up.root ?? target;
  return { root, nodes: [...nodes.values()], edges: [...edges.values()] };
}

function drawLineage(box, graph, drill) {
  const layout = new dagre.graphlib.Graph();
  layout.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 60, marginx: 12, marginy: 12 });
  layout.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) {
    const label = nodeLabel(n);
    layout.setNode(n.id, { label, width: Math.min(360, 16 + label.length * 7), height: 30 });
  }
  for (const e of graph.edges) {
    if (layout.hasNode(e.source) && layout.hasNode(e.target)) layout.setEdge(e.source, e.target);
  }
  dagre.layout(layout);
  const { width, height } = layout.graph();
  const picture = svg("svg", {
    width: Math.max(width, 200),
    height: Math.max(height, 60),
    viewBox: `0 0 ${Math.max(width, 200)} ${Math.max(height, 60)}`,
    role: "img",
    "aria-label": `lineage of ${graph.root}`,
  });
  picture.append(
    svg(
      "defs",
      {},
      svg(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#4b5563" }),
      ),
    ),
  );
  for (const e of graph.edges) {
    if (!layout.hasEdge(e.source, e.target)) continue;
    const points = layout.edge(e.source, e.target).points;
    const d = points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
    const runs = Array.isArray(e.runs) ? e.runs.length : (e.runs ?? 0);
    picture.append(
      svg(
        "g",
        { class: `edge ${e.status}`, "data-source": e.source, "data-target": e.target, "data-status": e.status },
        svg("title", {}, `${e.source} → ${e.target}: ${e.status.replaceAll("_", " ")}, ${runs} run(s)`),
        svg("path", { d, "marker-end": "url(#arrow)" }),
      ),
    );
  }
  for (const n of graph.nodes) {
    const box_ = layout.node(n.id);
    const classes = ["node", n.kind ?? "asset", n.id === graph.root ? "root" : ""].join(" ").trim();
    const group = svg(
      "g",
      { class: classes, "data-id": n.id, transform: `translate(${box_.x - box_.width / 2},${box_.y - box_.height / 2})` },
      svg("title", {}, n.id),
      svg("rect", { width: box_.width, height: box_.height }),
      svg("text", { x: 8, y: 19 }, box_.label),
    );
    group.addEventListener("click", () => {
      for (const g of picture.querySelectorAll(".node.selected")) g.classList.remove("selected");
      group.classList.add("selected");
      showDrill(drill, n).catch((e) => showError(String(e.message ?? e)));
    });
    picture.append(group);
  }
  box.replaceChildren(picture);
  box.dataset.nodes = String(graph.nodes.length);
  box.dataset.edges = String(graph.edges.length);
  performance.mark("arco:lineage-drawn");
  performance.measure("arco:lineage-draw", "arco:lineage-data", "arco:lineage-drawn");
}

// Clicking a node drills down: its partitions, each a link to the partition-level lineage.
async function showDrill(drill, node) {
  const key = node.asset ?? (node.kind === "asset" ? node.id.replace(/^asset:/, "") : null);
  if (!key) {
    drill.replaceChildren(el("p", {}, `${nodeLabel(node)} is a dataset without an asset.`));
    return;
  }
  const answer = await api(`api/v1/assets/${encodeURIComponent(key)}`);
  const partitions = answer.partitions ?? [];
  drill.replaceChildren(
    el("h3", {}, el("a", { href: `#/asset/${encodeURIComponent(key)}` }, key), " — partitions"),
    partitions.length
      ? el(
          "ul",
          { id: "drill-partitions" },
          partitions.map((p) =>
            el(
              "li",
              {},
              el(
                "a",
                { href: `#/asset/${encodeURIComponent(key)}/${encodeURIComponent(p.partition)}` },
                p.partition,
              ),
              " ",
              stateChip(p.state),
            ),
          ),
        )
      : el("p", { class: "muted" }, "no partitions"),
  );
}

// -- the SQL box -------------------------------------------------------------------------------------------------

const DEFAULT_SQL = `SELECT asset, partition, "lastAttemptState" AS state, "rowCount" AS rows
FROM ops.partition_status
ORDER BY asset, partition`;

async function showSql() {
  const box = el("textarea", { id: "sql", spellcheck: "false" }, sessionStorage.getItem("arco.explorer.sql") ?? DEFAULT_SQL);
  const out = el("div", { id: "sql-result" });
  const run = async () => {
    clearError();
    sessionStorage.setItem("arco.explorer.sql", box.value);
    out.replaceChildren(el("p", { class: "muted" }, "running in the browser…"));
    out.dataset.state = "running";
    const started = performance.now();
    try {
      const result = await query(box.value, tablesIn(box.value));
      const columns = result.schema.fields.map((f) => f.name);
      const rows = result.toArray().slice(0, SHOWN_ROWS).map((r) => columns.map((c) => cell(r[c])));
      const ms = Math.round(performance.now() - started);
      out.replaceChildren(
        el("p", { class: "muted", id: "sql-summary" }, `${result.numRows} row(s) in ${ms} ms (DuckDB-WASM, in this browser)`),
        table(columns, rows, { id: "sql-rows" }),
      );
      out.dataset.state = "ready";
    } catch (error) {
      out.replaceChildren();
      out.dataset.state = "failed";
      showError(String(error.message ?? error));
    }
  };
  const button = el("button", { id: "run-sql", onclick: run }, "Run");
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run();
  });
  view.replaceChildren(
    el("h2", {}, "SQL"),
    el(
      "p",
      { class: "muted" },
      "Read-only SQL over the catalog's tables (catalog.*, ops.*, lineage.*), run in this browser; Ctrl+Enter runs it.",
    ),
    box,
    el("div", { class: "toolbar" }, button),
    out,
  );
}

// -- routing -----------------------------------------------------------------------------------------------------

async function route() {
  clearError();
  const hash = window.location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/").map(decodeURIComponent);
  try {
    if (page === "asset" && rest[0]) await showAsset(rest[0], rest[1]);
    else if (page === "sql") await showSql();
    else await showAssets();
  } catch (error) {
    showError(String(error.message ?? error));
  }
}

window.addEventListener("hashchange", route);
if (!token) {
  showError(
    "No token: open the address that `arco serve --print-token` (or `arco dev`) prints, which ends in #token=…",
  );
} else {
  engine().catch((error) => {
    engineBox.textContent = "DuckDB-WASM failed to start";
    showError(`DuckDB-WASM failed to start: ${error.message ?? error}`);
  });
  route();
}

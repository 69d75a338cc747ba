// The explorer benchmark's baseline (benchmarks/explorer.py): bare DuckDB-WASM start-up plus the asset list's query,
// over the same signed files, with no page around it. Sets the mark "bare:done" when the rows are in.
import * as duckdb from "@duckdb/duckdb-wasm";
import initParquet, { readParquet } from "parquet-wasm/esm";

const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
const base = new URL("duckdb/", document.baseURI).href;

async function run() {
  const bundle = await duckdb.selectBundle({
    mvp: { mainModule: `${base}duckdb-mvp.wasm`, mainWorker: `${base}duckdb-browser-mvp.worker.js` },
    eh: { mainModule: `${base}duckdb-eh.wasm`, mainWorker: `${base}duckdb-browser-eh.worker.js` },
  });
  const db = new duckdb.AsyncDuckDB(new duckdb.VoidLogger(), new Worker(bundle.mainWorker));
  await db.instantiate(bundle.mainModule, bundle.pthreadWorker);
  const conn = await db.connect();
  const signed = await fetch(new URL("../api/v1/sign", document.baseURI), {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ tables: ["catalog.assets"] }),
  }).then((r) => r.json());
  await initParquet({ module_or_path: new URL("parquet/parquet_wasm_bg.wasm", document.baseURI) });
  const urls = signed.tables["catalog.assets"];
  const names = [];
  for (const [i, url] of urls.entries()) {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    await conn.insertArrowFromIPCStream(readParquet(bytes).intoIPCStream(), { name: `f${i}` });
    names.push(`f${i}`);
  }
  const files = names.map((n) => `SELECT * FROM ${n}`).join(" UNION ALL BY NAME ");
  const select = signed.duckdb["catalog.assets"].replace(/read_parquet\(\[.*?\](?:, union_by_name = true)?\)/, `(${files})`);
  const result = await conn.query(
    `SELECT asset_key, namespace, name, description, partitioning FROM (${select}) ORDER BY asset_key`,
  );
  document.body.dataset.rows = String(result.numRows);
  performance.mark("bare:done");
}

run().catch((error) => {
  document.body.dataset.error = String(error.message ?? error);
});

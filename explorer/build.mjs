// Builds the explorer into src/arco/api/static/explorer/: one bundled script, its stylesheet, the page, and
// DuckDB-WASM's engine and worker files and parquet-wasm's decoder copied from the pinned npm package (nothing is fetched from a CDN).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, "..", "src", "arco", "api", "static", "explorer");
const require = createRequire(import.meta.url);
const duckdbDist = dirname(require.resolve("@duckdb/duckdb-wasm/dist/duckdb-mvp.wasm"));

// The two DuckDB-WASM bundles the page chooses between (exception handling or not), served from our own origin.
const DUCKDB_FILES = [
  "duckdb-mvp.wasm",
  "duckdb-eh.wasm",
  "duckdb-browser-mvp.worker.js",
  "duckdb-browser-eh.worker.js",
];

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "duckdb"), { recursive: true });
for (const name of DUCKDB_FILES) copyFileSync(join(duckdbDist, name), join(out, "duckdb", name));
// parquet-wasm decodes the catalog's Parquet files (DuckDB-WASM would download its parquet extension instead).
mkdirSync(join(out, "parquet"), { recursive: true });
const parquetWasm = require.resolve("parquet-wasm/esm/parquet_wasm_bg.wasm");
copyFileSync(parquetWasm, join(out, "parquet", "parquet_wasm_bg.wasm"));

await build({
  entryPoints: { app: join(here, "src", "main.js"), bare: join(here, "src", "bare.js") },
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  outdir: out,
  logLevel: "warning",
});
copyFileSync(join(here, "src", "style.css"), join(out, "style.css"));
// The benchmark's baseline page: DuckDB-WASM start-up and the asset list's query, nothing else.
copyFileSync(join(here, "src", "bare.html"), join(out, "bare.html"));
const version = JSON.parse(readFileSync(join(here, "package.json"), "utf8")).version;
writeFileSync(
  join(out, "index.html"),
  readFileSync(join(here, "src", "index.html"), "utf8").replaceAll("{{version}}", version),
);
console.log(`explorer built into ${out}`);

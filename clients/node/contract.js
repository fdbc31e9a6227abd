// The contract test from another language: a Node.js client built from proto/ alone
// (segments.proto, service_config.json), run by tests/test_node_contract.py against a live
// server. Usage: node contract.js '<json: {"target", "dataset", "ids": [decimal strings]}>'
//
// ids are int64: proto-loader's default turns them into JavaScript numbers (doubles) and
// 2^60 + 1 comes back as 1152921504606847000, so this client asks for strings
// (longs: String) and gives ids to segment_json as strings; Arrow batches carry them as
// BigInt. Exits non-zero with the first broken promise.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const { tableFromIPC } = require("apache-arrow");

const PROTO_DIR = path.resolve(__dirname, "..", "..", "proto");
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function load(file, includeDirs) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { ...LOADER, includeDirs }));
}

function unary(client, method, request, metadata = new grpc.Metadata()) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + 30000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

function stream(client, method, request) {
  return new Promise((resolve, reject) => {
    const out = [];
    const call = client[method](request, new grpc.Metadata(), { deadline: Date.now() + 30000 });
    call.on("data", (m) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
  });
}

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const v1 = load(path.join(PROTO_DIR, "segments.proto"), [PROTO_DIR]).segments.v1;
  const serviceConfig = fs.readFileSync(path.join(PROTO_DIR, "service_config.json"), "utf8");
  const options = { "grpc.service_config": serviceConfig };
  const creds = grpc.credentials.createInsecure();
  const segments = new v1.SegmentsService(cfg.target, creds, options);
  const datasets = new v1.DatasetsService(cfg.target, creds, options);
  const ids = cfg.ids; // decimal strings, some above 2^53
  const seg = JSON.stringify({ include: { customers: ids } });
  const source = { segment_json: seg };
  const report = {};

  // Count: ids given as strings in the JSON segment, all found.
  const count = await unary(segments, "Count", { dataset: cfg.dataset, source });
  assert.equal(count.count, String(ids.length));
  assert.deepEqual(count.missing_ids, []);
  report.count = count.count;

  // Preview with paging: two rows a page until next_page_token is empty; ids exact.
  const seen = [];
  let token = "";
  let pages = 0;
  do {
    const page = await unary(segments, "Preview", { dataset: cfg.dataset, source, n: 2, fields: ["email"], page_token: token });
    assert.equal(page.total, String(ids.length));
    for (const row of page.rows) {
      seen.push(row.customer_id);
      assert.equal(row.fields.email.string_value, `c${row.customer_id}@example.com`);
    }
    token = page.next_page_token;
    pages += 1;
    assert.ok(pages <= ids.length, "paging does not end");
  } while (token);
  const sorted = [...ids].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
  assert.deepEqual(seen, sorted);
  assert.equal(pages, Math.ceil(ids.length / 2));
  report.preview_pages = pages;

  // Materialize: customer_id inside each Arrow batch, as BigInt.
  const chunks = await stream(segments, "Materialize", { dataset: cfg.dataset, source, fields: ["email"] });
  const got = [];
  for (const chunk of chunks) {
    const table = tableFromIPC(chunk.arrow_ipc);
    assert.equal(table.schema.fields[0].name, "customer_id");
    const idCol = table.getChild("customer_id");
    const emails = table.getChild("email");
    for (let i = 0; i < table.numRows; i++) {
      const id = idCol.get(i);
      assert.equal(typeof id, "bigint");
      assert.equal(emails.get(i), `c${id}@example.com`);
      got.push(id.toString());
    }
  }
  assert.deepEqual(got, sorted);
  assert.equal(chunks[0].total, String(ids.length));
  report.materialized = got.length;

  // StreamExport: the Parquet file itself, in pieces.
  const pieces = await stream(segments, "StreamExport", { dataset: cfg.dataset, source, format: "EXPORT_FORMAT_PARQUET" });
  const file = Buffer.concat(pieces.map((p) => p.data));
  assert.equal(file.subarray(0, 4).toString(), "PAR1");
  assert.equal(file.subarray(file.length - 4).toString(), "PAR1");
  assert.equal(pieces[0].rows, String(ids.length));
  assert.equal(JSON.parse(pieces[0].metadata.segment).include.customers.length, ids.length);
  report.exported_bytes = file.length;

  // An invalid segment: INVALID_ARGUMENT naming the path in the JSON.
  const bad = JSON.stringify({ include: { spend: { cmp: { between: [5, 1] } } } });
  await assert.rejects(unary(segments, "Count", { dataset: cfg.dataset, source: { segment_json: bad } }), (err) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /include\.spend\.cmp\.between/);
    return true;
  });
  // An id that is not an integer, given as a string.
  const notId = JSON.stringify({ include: { customers: ["12x"] } });
  await assert.rejects(unary(segments, "Count", { dataset: cfg.dataset, source: { segment_json: notId } }), (err) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /include\.customers\[0\]/);
    return true;
  });
  report.invalid = "INVALID_ARGUMENT";

  // Typed request with int64 ids as strings, and the request id coming back.
  const md = new grpc.Metadata();
  md.set("x-request-id", "node-contract-1");
  const trailing = await new Promise((resolve, reject) => {
    const call = segments.Count(
      { dataset: cfg.dataset, source: { segment: { include: { customers: { ids } } } } }, md,
      { deadline: Date.now() + 30000 }, (err, res) => { if (err) reject(err); else assert.equal(res.count, String(ids.length)); });
    call.on("status", (s) => resolve(s.metadata.get("x-request-id")));
  });
  assert.deepEqual(trailing, ["node-contract-1"]);

  const info = await unary(datasets, "GetDatasetInfo", { dataset: cfg.dataset });
  assert.equal(info.dataset.name, cfg.dataset);

  // Reflection v1 (the proto @grpc/reflection ships), as grpcurl and Postman use it.
  const refDir = path.dirname(require.resolve("@grpc/reflection/package.json"));
  const refProto = path.join(refDir, "build", "proto", "grpc", "reflection", "v1", "reflection.proto");
  const refl = load(refProto, [path.join(refDir, "build", "proto")]).grpc.reflection.v1;
  const rc = new refl.ServerReflection(cfg.target, creds);
  const services = await new Promise((resolve, reject) => {
    const call = rc.ServerReflectionInfo();
    call.on("data", (m) => { resolve(m.list_services_response.service.map((s) => s.name)); call.end(); });
    call.on("error", reject);
    call.write({ list_services: "" });
  });
  for (const name of ["segments.v1.SegmentsService", "segments.v1.CatalogService", "segments.v1.DatasetsService",
    "grpc.reflection.v1.ServerReflection"]) {
    assert.ok(services.includes(name), `reflection v1 lists ${name}`);
  }
  report.reflection_v1 = services.length;

  for (const c of [segments, datasets, rc]) c.close();
  console.log(JSON.stringify(report));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});

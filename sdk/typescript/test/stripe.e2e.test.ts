/** The guide's Stripe routes, written with broker-runtime, against a live broker (the Python
 * package, embedded store) and a fake Stripe API on 127.0.0.2: the routes reach Stripe only
 * through the egress proxy, which injects the key the runtime itself may not read. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { after, before, test } from "node:test";

import { EgressDenied, Http, NotGranted, Secrets, resetDefaultClient } from "../src/index.js";
import { POST as testConnection } from "../examples/stripe/src/api/setup/test_connection.js";
import { POST as syncCustomers } from "../examples/stripe/src/api/sync/customers.js";
import { LiveBroker } from "./live-broker.js";

const KEY = `sk_test_TSCANARY_${Math.random().toString(36).slice(2)}`;
const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
const broker = new LiveBroker();
let stripe: Server;
let port = 0;

before(async () => {
  // the fake Stripe: customers and balance for the connection's key, 401 for anything else
  stripe = createServer((request, response) => {
    seen.push({ url: request.url ?? "", headers: request.headers });
    if (request.headers.authorization !== `Bearer ${KEY}`) {
      response.writeHead(401, { "content-type": "application/json" }).end('{"error":{"type":"invalid_request_error"}}');
      return;
    }
    const path = (request.url ?? "").split("?")[0];
    const body =
      path === "/v1/customers"
        ? { object: "list", has_more: false, data: [{ id: "cus_A1", name: "Ada" }, { id: "cus_B2", name: "Bob" }] }
        : { object: "balance", available: [] };
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((ready) => stripe.listen(0, "127.0.0.2", ready));
  port = (stripe.address() as { port: number }).port;

  const manifest = JSON.parse(
    readFileSync(new URL("../../examples/stripe/manifest.json", import.meta.url), "utf8"),
  ) as Record<string, unknown> & { permissions: { http: string[] } };
  manifest["key"] = "stripe-ts";
  manifest.permissions.http = [`http://127.0.0.2:${port}/*`];
  await broker.start([manifest]);
  process.env["BROKER_URL"] = broker.url;
  process.env["BROKER_RUNTIME_TOKEN"] = await broker.runtimeToken("stripe-ts", { api_key: KEY });
  process.env["STRIPE_API_BASE"] = `http://127.0.0.2:${port}`;
  resetDefaultClient();
});

after(async () => {
  await broker.stop();
  await new Promise((done) => stripe.close(done));
});

test("the customers sync route reads Stripe through the proxy", async () => {
  const response = await syncCustomers({ body: {} });
  assert.equal(response.status, 200, JSON.stringify(response));
  const body = response.body as { imported: number; records: { sourceId: string }[] };
  assert.equal(body.imported, 2);
  assert.deepEqual(body.records.map((r) => r.sourceId), ["cus_A1", "cus_B2"]);
  const call = seen.at(-1)!;
  assert.equal(call.url, "/v1/customers?limit=100");
  assert.equal(call.headers.authorization, `Bearer ${KEY}`); // injected by the broker
  assert.ok(!JSON.stringify(call.headers).includes(process.env["BROKER_RUNTIME_TOKEN"]!));
});

test("the test-connection route passes with the connection's key", async () => {
  assert.deepEqual(await testConnection({ body: {} }), { status: 200, body: { ok: true } });
  assert.equal(seen.at(-1)!.url, "/v1/balance");
});

test("the runtime cannot read the key, nor leave permissions.http", async () => {
  const before = seen.length;
  await assert.rejects(Secrets.get("api_key"), (error: unknown) => {
    assert.ok(error instanceof NotGranted);
    assert.ok(!error.message.includes(KEY));
    return true;
  });
  await assert.rejects(Http.get(`http://127.0.0.3:${port}/v1/customers`), EgressDenied);
  await assert.rejects(Http.get(`http://127.0.0.2:${port + 1}/v1/customers`), EgressDenied);
  assert.equal(seen.length, before); // nothing refused reached Stripe
});

test("the key appears nowhere in the broker's output", () => {
  assert.ok(!broker.output.includes(KEY));
});

/** The guide's Stripe routes, written with broker-runtime, under the test runtime (the guide's
 * "Route tests" section): canned Stripe answers, and what the routes asked for asserted. */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, test } from "node:test";

import { EgressDenied, Http, NotGranted, Secrets } from "../src/index.js";
import { connectorTestRuntime, type ConnectorTestRuntime } from "../src/testing.js";
import { POST as testConnection } from "../examples/stripe/src/api/setup/test_connection.js";
import { POST as syncCustomers } from "../examples/stripe/src/api/sync/customers.js";

const MANIFEST = fileURLToPath(new URL("../../examples/stripe/manifest.json", import.meta.url));
let runtime: ConnectorTestRuntime;

beforeEach(() => {
  runtime = connectorTestRuntime({
    manifest: MANIFEST,
    secrets: { api_key: "sk_test_123", webhook_secret: "whsec_123" },
  });
  runtime.install();
});

afterEach(() => runtime.restore());

test("customers sync emits canonical customers", async () => {
  runtime.http.getOnce({ status: 200, body: { data: [{ id: "cus_123", name: "Ada Lovelace" }] } });
  const response = await runtime.call(syncCustomers);
  assert.equal(response.status, 200);
  const body = response.body as { imported: number; records: { documentType: string; sourceId: string }[] };
  assert.equal(body.imported, 1);
  assert.equal(body.records[0]!.documentType, "customer");
  assert.equal(body.records[0]!.sourceId, "cus_123");
  assert.deepEqual(runtime.http.urls, ["https://api.stripe.com/v1/customers?limit=100"]);
  assert.deepEqual(runtime.secretsAsked, []); // the key travels only through the proxy
  assert.deepEqual(runtime.http.pending, []);
});

test("a Stripe error is the route's 502, not an exception", async () => {
  runtime.http.getOnce({ status: 401, body: { error: { message: "Invalid API Key provided" } } });
  const response = await runtime.call(syncCustomers);
  assert.deepEqual(response, { status: 502, body: { error: "Stripe 401" } });
});

test("test connection accepts a working key and rejects a refused one", async () => {
  runtime.http.getOnce({ url: "https://api.stripe.com/v1/balance", status: 200, body: { object: "balance" } });
  assert.deepEqual(await runtime.call(testConnection), { status: 200, body: { ok: true } });
  runtime.http.getOnce({ url: "https://api.stripe.com/v1/balance", status: 401, body: {} });
  assert.deepEqual(await runtime.call(testConnection), {
    status: 400,
    body: { error: "Invalid API key", status: 401 },
  });
});

test("what the manifest does not grant fails as the broker would", async () => {
  // a value exists, but permissions.secrets grants webhook_secret only
  await assert.rejects(Secrets.get("api_key"), NotGranted);
  assert.equal(await Secrets.get("webhook_secret"), "whsec_123");
  await assert.rejects(Http.get("https://files.stripe.com/v1/files"), EgressDenied);
  await assert.rejects(Http.get("http://api.stripe.com/v1/customers"), EgressDenied);
  assert.deepEqual(runtime.secretsAsked, ["api_key", "webhook_secret"]);
  assert.deepEqual(runtime.http.urls, ["https://files.stripe.com/v1/files", "http://api.stripe.com/v1/customers"]);
});

test("the runtime restores the globals it replaced", async () => {
  runtime.restore();
  const other = connectorTestRuntime({ secrets: { api_key: "sk_other" } }).install();
  try {
    assert.equal(await Secrets.get("api_key"), "sk_other");
  } finally {
    other.restore();
  }
  runtime.install();
  await assert.rejects(Secrets.get("api_key"), NotGranted);
});

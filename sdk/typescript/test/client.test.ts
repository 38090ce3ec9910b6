/** BrokerClient and Http beyond the shared cases: configuration, what Http refuses to send,
 * request bodies and queries, and the cache's clock. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { BrokerClient, NotConfigured, RuntimeCache, TOKEN_ENV, URL_ENV } from "../src/index.js";
import { ScriptedBroker } from "./fake-broker.js";

const TOKEN = "rt-canary-client-test-0123456789";

test("configuration comes from the environment, and a bad one names the variable", () => {
  const saved = { url: process.env[URL_ENV], token: process.env[TOKEN_ENV] };
  try {
    delete process.env[URL_ENV];
    assert.throws(() => new BrokerClient(), (e: unknown) => e instanceof NotConfigured && e.message.includes(URL_ENV));
    process.env[URL_ENV] = "http://broker:8080";
    delete process.env[TOKEN_ENV];
    assert.throws(() => new BrokerClient(), (e: unknown) => e instanceof NotConfigured && e.message.includes(TOKEN_ENV));
    process.env[TOKEN_ENV] = TOKEN;
    assert.equal(String(new BrokerClient()), "BrokerClient(http://broker:8080)");
    for (const url of ["ftp://broker", "not a url", "http://user:hunter2@broker:8080"]) {
      assert.throws(
        () => new BrokerClient({ url, token: TOKEN }),
        (e: unknown) => e instanceof NotConfigured && !e.message.includes("hunter2"),
      );
    }
  } finally {
    for (const [name, value] of [[URL_ENV, saved.url], [TOKEN_ENV, saved.token]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});

test("Http refuses to carry a credential or the broker's own headers", async () => {
  const client = new BrokerClient({ url: "http://127.0.0.1:9", token: TOKEN });
  for (const name of ["Authorization", "broker-target", "Host", "Proxy-Authorization"]) {
    await assert.rejects(client.http.get("https://api.stripe.com/v1/x", { headers: { [name]: "x" } }), TypeError);
  }
  await assert.rejects(client.http.get("https://user:pw@api.stripe.com/v1/x"), TypeError);
  await assert.rejects(client.http.get("/v1/relative"), TypeError);
  await assert.rejects(client.http.request("GE T", "https://api.stripe.com/"), TypeError);
  await assert.rejects(client.http.post("https://api.stripe.com/", { json: {}, body: "x" }), TypeError);
});

test("json bodies and query options are sent as the proxy expects", async () => {
  const broker = new ScriptedBroker([{ status: 200, text: "ok" }, { status: 200, text: "ok" }]);
  const url = await broker.start();
  try {
    const client = new BrokerClient({ url, token: TOKEN });
    await client.http.patch("https://api.example.com/v1/items/1", { json: { name: "Ada" }, query: { expand: "all" } });
    await client.http.get("https://api.example.com/v1/items?page=2", { query: { q: "a b" } });
  } finally {
    await broker.stop();
  }
  const [patch, get] = broker.seen;
  assert.equal(patch!.method, "PATCH");
  assert.equal(patch!.headers["broker-target"], "https://api.example.com/v1/items/1?expand=all");
  assert.equal(patch!.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(patch!.body), { name: "Ada" });
  assert.equal(get!.headers["broker-target"], "https://api.example.com/v1/items?page=2&q=a+b");
});

test("a cached entry lives cacheTtl seconds, and a token no closer to expiry than asked", () => {
  let now = 0;
  const cache = new RuntimeCache(10, () => now);
  cache.putSecret({ name: "api_key", value: "v", version: 1 });
  const token = { accessToken: "at", tokenType: "Bearer", expiresAt: new Date(Date.now() + 400_000), scopes: [] };
  cache.putAccessToken(token);
  now = 9.9;
  assert.equal(cache.secret("api_key")?.value, "v");
  assert.equal(cache.accessToken(undefined), token); // 400 s left >= the default 300
  assert.equal(cache.accessToken(500), null);
  now = 10;
  assert.equal(cache.secret("api_key"), null);
  assert.equal(cache.accessToken(0), null);
  const off = new RuntimeCache(0, () => now);
  off.putSecret({ name: "api_key", value: "v", version: 1 });
  assert.equal(off.secret("api_key"), null);
});

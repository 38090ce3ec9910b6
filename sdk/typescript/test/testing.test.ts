/** connectorTestRuntime's fakes keep the broker's semantics (the Python test runtime's). */

import assert from "node:assert/strict";
import { test } from "node:test";

import { NeedsReauth, NotGranted, NotOAuth, OAuth, Secrets, SecretNotSet } from "../src/index.js";
import { connectorTestRuntime } from "../src/testing.js";

test("secrets: granted names, unset values, versions and scripted failures", async () => {
  const runtime = connectorTestRuntime({ secrets: { api_key: "sk_1" }, settings: { page_size: 100 }, granted: ["api_key", "page_size", "region"] }).install();
  try {
    assert.equal(await Secrets.get("api_key"), "sk_1");
    assert.equal(await Secrets.get("page_size"), "100");
    await assert.rejects(Secrets.get("region"), SecretNotSet);
    await assert.rejects(Secrets.get("other"), NotGranted);
    runtime.secrets.set("api_key", "sk_2");
    assert.deepEqual(await Secrets.getWithVersion("api_key"), { name: "api_key", value: "sk_2", version: 2 });
    runtime.secrets.failNext(NotGranted);
    await assert.rejects(Secrets.get("api_key"), NotGranted);
    assert.deepEqual(runtime.secretsAsked, ["api_key", "page_size", "region", "other", "api_key", "api_key"]);
  } finally {
    runtime.restore();
  }
});

test("oauth: refresh near expiry, forced refresh, queued tokens, NotOAuth", async () => {
  const runtime = connectorTestRuntime({ oauth: { accessToken: "at_1", expiresIn: 3600, scopes: ["read"] } }).install();
  try {
    assert.equal(await OAuth.accessToken({ minTtl: 60 }), "at_1");
    runtime.oauth.nextRefresh("at_2");
    assert.equal((await OAuth.forceRefresh()).accessToken, "at_2");
    runtime.oauth.expire();
    assert.equal(await OAuth.accessToken(), "at_1-refreshed-2");
    assert.equal(await OAuth.accessToken({ minTtl: 7200 }), "at_1-refreshed-3");
    assert.equal(runtime.oauth.refreshCount, 3);
    runtime.oauth.failNext(new NeedsReauth("revoked"));
    await assert.rejects(OAuth.accessToken(), NeedsReauth);
    assert.deepEqual(runtime.callsOf("access_token"), [60, null, 7200, null]);
  } finally {
    runtime.restore();
  }
  const apiKey = connectorTestRuntime({ secrets: { api_key: "sk" } }).install();
  try {
    await assert.rejects(OAuth.accessToken(), NotOAuth);
  } finally {
    apiKey.restore();
  }
});

test("http: answers by method and URL, calls recorded, an unexpected call fails the test", async () => {
  const runtime = connectorTestRuntime({ http: ["https://api.example.com/*"] });
  runtime.http.getOnce({ url: "https://api.example.com/b", body: "second" });
  runtime.http.getOnce({ body: { any: true } });
  runtime.http.postOnce({ status: 201, body: { id: 1 }, headers: { "x-id": "1" } });
  const first = await runtime.proxy("GET", "https://api.example.com/a", {}, undefined);
  assert.deepEqual(first.body, { any: true });
  const second = await runtime.proxy("GET", "https://api.example.com/b?x=1", {}, undefined);
  assert.equal(second.text, "second");
  const posted = await runtime.proxy("POST", "https://api.example.com/c", { "content-type": "text/plain" }, new TextEncoder().encode("hi"));
  assert.equal(posted.status, 201);
  assert.equal(posted.headers.get("x-id"), "1");
  assert.equal(runtime.http.calls[2]!.body, "hi");
  await assert.rejects(runtime.proxy("DELETE", "https://api.example.com/c", {}, undefined), /no canned answer for DELETE/);
  assert.deepEqual(runtime.http.pending, []);
});

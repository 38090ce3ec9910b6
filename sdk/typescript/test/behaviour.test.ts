/** sdk/behaviour-cases.json against the TypeScript SDK: the same cases the Python SDK runs
 * (tests/runtime/test_behaviour_cases.py), so the two cannot drift apart. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { BrokerClient, BrokerRuntimeError, EgressDenied, type HttpResponse } from "../src/index.js";
import { urlAllowed } from "../src/egress.js";
import { connectorTestRuntime } from "../src/testing.js";
import { ScriptedBroker, type ScriptedAnswer, type SeenRequest } from "./fake-broker.js";

interface Step {
  call: string;
  name?: string;
  minTtl?: number;
  method?: string;
  url?: string;
  headers?: Record<string, string>;
  body?: string;
  expect: Record<string, unknown>;
}
interface Case {
  name: string;
  client?: Record<string, number>;
  answers: ScriptedAnswer[];
  steps: Step[];
  requests: (Partial<SeenRequest> & { method: string; path: string })[];
}
interface Cases {
  runtime_token: string;
  client: { retries: number; backoff: number; maxBackoff: number; cacheTtl: number };
  canaries: string[];
  cases: Case[];
  http_permissions: { patterns: string[]; allowed: string[]; denied: string[] }[];
}

const CASES = JSON.parse(
  readFileSync(new URL("../../../behaviour-cases.json", import.meta.url), "utf8"),
) as Cases;
const TOKEN = CASES.runtime_token;

async function runStep(client: BrokerClient, step: Step): Promise<unknown> {
  switch (step.call) {
    case "secrets.get":
      return client.secrets.get(step.name!);
    case "oauth.accessToken":
      return client.oauth.accessToken(step.minTtl === undefined ? {} : { minTtl: step.minTtl });
    case "oauth.forceRefresh":
      return (await client.oauth.forceRefresh()).accessToken;
    default:
      assert.equal(step.call, "http.request");
      return client.http.request(step.method!, step.url!, {
        ...(step.headers ? { headers: step.headers } : {}),
        ...(step.body !== undefined ? { body: step.body } : {}),
      });
  }
}

function checkOutcome(expect: Record<string, unknown>, outcome: unknown): void {
  if ("error" in expect) {
    assert.ok(outcome instanceof BrokerRuntimeError, String(outcome));
    assert.equal(outcome.code, expect["error"]);
    assert.equal(outcome.constructor.name, expect["class"]);
    if ("status" in expect) assert.equal(outcome.status, expect["status"]);
    if ("retryAfter" in expect) assert.equal((outcome as { retryAfter?: number }).retryAfter, expect["retryAfter"]);
    for (const canary of [TOKEN, ...CASES.canaries]) {
      assert.ok(!outcome.message.includes(canary) && !String(outcome.stack).includes(canary), canary);
    }
    return;
  }
  assert.ok(!(outcome instanceof Error), String(outcome));
  if ("value" in expect) {
    assert.equal(outcome, expect["value"]);
    return;
  }
  const response = outcome as HttpResponse;
  assert.equal(response.status, expect["status"]);
  if ("ok" in expect) assert.equal(response.ok, expect["ok"]);
  if ("json" in expect) {
    assert.deepEqual(response.json(), expect["json"]);
    assert.deepEqual(response.body, expect["json"]);
  }
  if ("text" in expect) assert.equal(response.text, expect["text"]);
  for (const [name, value] of Object.entries((expect["headers"] ?? {}) as Record<string, string>)) {
    assert.equal(response.headers.get(name), value);
  }
}

for (const testCase of CASES.cases) {
  test(`behaviour: ${testCase.name}`, async () => {
    const broker = new ScriptedBroker(testCase.answers.map((a) => ({ ...a })));
    const url = await broker.start();
    try {
      const settings = { ...CASES.client, ...testCase.client };
      const client = new BrokerClient({ url, token: TOKEN, ...settings });
      for (const step of testCase.steps) {
        let outcome: unknown;
        try {
          outcome = await runStep(client, step);
        } catch (error) {
          outcome = error;
        }
        checkOutcome(step.expect, outcome);
      }
    } finally {
      await broker.stop();
    }
    assert.equal(broker.seen.length, testCase.requests.length, JSON.stringify(broker.seen));
    testCase.requests.forEach((want, i) => {
      const seen = broker.seen[i]!;
      assert.deepEqual([seen.method, seen.path], [want.method, want.path]);
      if (want.query) assert.deepEqual(seen.query, want.query);
      for (const [name, value] of Object.entries(want.headers ?? {})) assert.equal(seen.headers[name], value, name);
      if (want.body !== undefined) assert.equal(seen.body, want.body);
    });
  });
}

for (const group of CASES.http_permissions) {
  test(`http permissions: ${group.patterns.join(" ")}`, async () => {
    const runtime = connectorTestRuntime({ manifest: { permissions: { http: group.patterns } } });
    for (const [allowed, urls] of [[true, group.allowed], [false, group.denied]] as const) {
      for (const url of urls) {
        assert.equal(urlAllowed(url, group.patterns), allowed, url);
        runtime.http.getOnce({ status: 204 });
        if (allowed) assert.equal((await runtime.proxy("GET", url, {}, undefined)).status, 204, url);
        else await assert.rejects(runtime.proxy("GET", url, {}, undefined), EgressDenied, url);
      }
    }
  });
}

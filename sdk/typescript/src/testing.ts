/**
 * broker-runtime/testing: `connectorTestRuntime`, the SDK's globals answered by fakes that
 * keep the broker's semantics, every call recorded (the guide's `connectorTestRuntime`; the
 * Python SDK's `broker.testing.connector_test_runtime`).
 *
 *     const runtime = connectorTestRuntime({ manifest: "manifest.json", secrets: { webhook_secret: "whsec_1" } });
 *     runtime.install();
 *     try {
 *       runtime.http.getOnce({ status: 200, body: { data: [] } });
 *       const response = await runtime.call(POST);
 *       assert.deepEqual(runtime.http.urls, ["https://api.stripe.com/v1/customers?limit=100"]);
 *     } finally {
 *       runtime.restore();
 *     }
 *
 * With a `manifest` (a path or the parsed JSON), the granted names are its
 * permissions.secrets and a URL outside its permissions.http raises `EgressDenied`, as the
 * broker would; `granted` and `http` override them.
 */

import { readFileSync } from "node:fs";

import type { RuntimeBackend } from "./api.js";
import { useClient } from "./facade.js";
import { FakeHttp, FakeOAuth, FakeSecrets, type OAuthConfig } from "./fakes.js";
import type { AccessToken, HttpResponse, Secret } from "./wire.js";

export { FakeHttp, FakeOAuth, FakeSecrets } from "./fakes.js";
export type { CannedAnswer, ErrorSpec, HttpCall, OAuthConfig } from "./fakes.js";

export interface Call {
  kind: "secret" | "access_token" | "refresh" | "http";
  /** The secret name, minTtl in whole seconds, or "METHOD url". */
  arg: string | number | null;
}

export interface TestRuntimeOptions {
  secrets?: Record<string, string | null>;
  settings?: Record<string, unknown>;
  /** null or absent: an API-key connection (every OAuth call raises NotOAuth). */
  oauth?: OAuthConfig | null;
  granted?: string[];
  refreshMargin?: number;
  manifest?: string | { permissions?: { http?: string[]; secrets?: Record<string, unknown> } };
  http?: string[];
}

export class ConnectorTestRuntime implements RuntimeBackend {
  readonly calls: Call[] = [];
  private previous: RuntimeBackend | null = null;
  private installed = false;

  constructor(
    readonly secrets: FakeSecrets,
    readonly oauth: FakeOAuth,
    readonly http: FakeHttp,
  ) {}

  install(): this {
    if (this.installed) throw new Error("this test runtime is already installed");
    this.previous = useClient(this);
    this.installed = true;
    return this;
  }

  restore(): void {
    if (this.installed) {
      useClient(this.previous);
      this.installed = false;
    }
  }

  callsOf(kind: Call["kind"]): Call["arg"][] {
    return this.calls.filter((call) => call.kind === kind).map((call) => call.arg);
  }

  /** The secret names the connector asked for, in order (refused ones too). */
  get secretsAsked(): string[] {
    return this.callsOf("secret") as string[];
  }

  /** Run a route handler as the platform would, with `request` (default: an empty body). */
  call<R>(handler: (request: { body: unknown }) => R, request: { body: unknown } = { body: {} }): R {
    return handler(request);
  }

  // RuntimeBackend: each call is recorded before it can fail, like a request the broker saw
  async getSecret(name: string): Promise<Secret> {
    this.calls.push({ kind: "secret", arg: name });
    return this.secrets.read(name);
  }

  async getAccessToken(minTtl?: number): Promise<AccessToken> {
    this.calls.push({ kind: "access_token", arg: minTtl ?? null });
    return this.oauth.accessToken(minTtl);
  }

  async refreshAccessToken(): Promise<AccessToken> {
    this.calls.push({ kind: "refresh", arg: null });
    return this.oauth.refresh();
  }

  async proxy(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
  ): Promise<HttpResponse> {
    this.calls.push({ kind: "http", arg: `${method} ${url}` });
    return this.http.send(method, url, headers, body);
  }
}

export function connectorTestRuntime(options: TestRuntimeOptions = {}): ConnectorTestRuntime {
  const manifest =
    typeof options.manifest === "string"
      ? (JSON.parse(readFileSync(options.manifest, "utf8")) as TestRuntimeOptions["manifest"] & object)
      : options.manifest;
  const permissions = manifest?.permissions ?? {};
  const granted = options.granted ?? (permissions.secrets ? Object.keys(permissions.secrets) : undefined);
  const http = options.http ?? permissions.http ?? null;
  const values = { ...options.settings, ...options.secrets };
  return new ConnectorTestRuntime(
    new FakeSecrets(values, granted),
    new FakeOAuth(options.oauth ?? null, options.refreshMargin ?? 300),
    new FakeHttp(http),
  );
}

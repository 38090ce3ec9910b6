/**
 * The test runtime's fakes, with the broker's semantics (the Python SDK's
 * broker.runtime.testing and fake_http, the same rules):
 *
 * - FakeSecrets: readable names are the granted ones (the manifest's permissions.secrets,
 *   or `granted`, or else those with a value); any other raises `NotGranted`, a granted name
 *   without a value `SecretNotSet`; every value shares one settings `version`.
 * - FakeOAuth: `oauth: null` is an API-key connection (`NotOAuth`); a token within `minTtl`
 *   (default: the 300 s margin) of expiry is refreshed, as on every `forceRefresh()`.
 * - FakeHttp: a URL outside permissions.http raises `EgressDenied`; answers come from
 *   `getOnce(...)`/`postOnce(...)`; a request with none queued fails the test.
 */

import { BrokerRuntimeError, EgressDenied, NotGranted, NotOAuth, SecretNotSet } from "./errors.js";
import { urlAllowed } from "./egress.js";
import { httpResponse, secretText, type AccessToken, type HttpResponse, type Secret } from "./wire.js";

export type ErrorSpec = BrokerRuntimeError | (new (message?: string) => BrokerRuntimeError);

class Failures {
  private readonly queue: BrokerRuntimeError[] = [];

  add(error: ErrorSpec, times: number): void {
    for (let i = 0; i < times; i++) {
      this.queue.push(typeof error === "function" ? new error("scripted by connectorTestRuntime") : error);
    }
  }

  throwNext(): void {
    const next = this.queue.shift();
    if (next) throw next;
  }
}

export class FakeSecrets {
  version = 1;
  readonly values: Map<string, unknown>;
  readonly granted: Set<string>;
  private readonly failures = new Failures();

  constructor(values: Record<string, unknown>, granted: readonly string[] | undefined) {
    this.values = new Map(Object.entries(values));
    this.granted = new Set(granted ?? this.values.keys());
  }

  /** Change a value as `PATCH .../settings` would (null unsets it): bumps the version. */
  set(name: string, value: unknown): void {
    this.values.set(name, value);
    this.version += 1;
  }

  failNext(error: ErrorSpec, times = 1): void {
    this.failures.add(error, times);
  }

  read(name: string): Secret {
    this.failures.throwNext();
    if (!this.granted.has(name)) throw new NotGranted(`secret '${name}' is not granted to this connector`);
    const value = this.values.get(name);
    if (value === undefined || value === null) {
      throw new SecretNotSet(`secret '${name}' is granted but not set on this connection`);
    }
    return { name, value: secretText(value), version: this.version };
  }
}

export interface OAuthConfig {
  accessToken: string;
  tokenType?: string;
  /** Seconds from now (default 3600; null: never expires). */
  expiresIn?: number | null;
  expiresAt?: Date | string | null;
  scopes?: string[];
}

function token(config: OAuthConfig): AccessToken {
  let expiresAt: Date | null = null;
  if (config.expiresAt !== undefined) {
    expiresAt = config.expiresAt === null ? null : new Date(config.expiresAt);
  } else if (config.expiresIn !== null) {
    expiresAt = new Date(Date.now() + (config.expiresIn ?? 3600) * 1000);
  }
  return { accessToken: config.accessToken, tokenType: config.tokenType ?? "Bearer", expiresAt, scopes: config.scopes ?? [] };
}

export class FakeOAuth {
  refreshCount = 0;
  readonly enabled: boolean;
  private current_: AccessToken;
  private readonly initial: string;
  private readonly queued: AccessToken[] = [];
  private readonly failures = new Failures();

  constructor(config: OAuthConfig | null, readonly margin: number) {
    this.enabled = config !== null;
    this.current_ = token(config ?? { accessToken: "not-oauth" });
    this.initial = this.current_.accessToken;
  }

  get current(): AccessToken {
    return this.current_;
  }

  /** Rotate the current token, as a refresh by another replica would. */
  setToken(accessToken: string, fields: Omit<OAuthConfig, "accessToken"> = {}): void {
    this.current_ = token({ scopes: [...this.current_.scopes], ...fields, accessToken });
  }

  /** The token the next refresh yields (in queue order). */
  nextRefresh(accessToken: string, fields: Omit<OAuthConfig, "accessToken"> = {}): void {
    this.queued.push(token({ scopes: [...this.current_.scopes], ...fields, accessToken }));
  }

  /** Make the current token expired, so the next access-token call refreshes it. */
  expire(): void {
    this.current_ = { ...this.current_, expiresAt: new Date(Date.now() - 1000) };
  }

  failNext(error: ErrorSpec, times = 1): void {
    this.failures.add(error, times);
  }

  accessToken(minTtl: number | undefined): AccessToken {
    this.check();
    const expiresAt = this.current_.expiresAt;
    if (expiresAt && expiresAt.getTime() - Date.now() < (minTtl ?? this.margin) * 1000) this.refresh_();
    return this.current_;
  }

  refresh(): AccessToken {
    this.check();
    this.refresh_();
    return this.current_;
  }

  private check(): void {
    if (!this.enabled) throw new NotOAuth("this connection does not use OAuth (connectorTestRuntime({ oauth: null }))");
    this.failures.throwNext();
  }

  private refresh_(): void {
    this.refreshCount += 1;
    const next = this.queued.shift();
    if (next) this.current_ = next;
    else this.setToken(`${this.initial}-refreshed-${this.refreshCount}`);
  }
}

export interface CannedAnswer {
  status?: number;
  /** Uint8Array and strings as they are, anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Serve only a request for this URL (its query too, when it has one). */
  url?: string;
}

export interface HttpCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | undefined;
}

function cannedResponse(answer: CannedAnswer): HttpResponse {
  const headers = new Headers(answer.headers);
  const { body } = answer;
  let bytes: Uint8Array = new Uint8Array();
  if (body instanceof Uint8Array) bytes = body;
  else if (typeof body === "string") {
    bytes = new TextEncoder().encode(body);
    if (!headers.has("content-type")) headers.set("content-type", "text/plain; charset=utf-8");
  } else if (body !== undefined && body !== null) {
    bytes = new TextEncoder().encode(JSON.stringify(body));
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  return httpResponse(answer.status ?? 200, headers, bytes);
}

export class FakeHttp {
  readonly calls: HttpCall[] = [];
  private readonly canned: { method: string; url: string | undefined; response: HttpResponse }[] = [];
  private readonly failures = new Failures();

  /** `patterns` null: no manifest given, every URL is allowed. */
  constructor(readonly patterns: readonly string[] | null) {}

  once(method: string, answer: CannedAnswer = {}): void {
    this.canned.push({ method: method.toUpperCase(), url: answer.url, response: cannedResponse(answer) });
  }
  getOnce(answer: CannedAnswer = {}): void {
    this.once("GET", answer);
  }
  postOnce(answer: CannedAnswer = {}): void {
    this.once("POST", answer);
  }
  putOnce(answer: CannedAnswer = {}): void {
    this.once("PUT", answer);
  }
  patchOnce(answer: CannedAnswer = {}): void {
    this.once("PATCH", answer);
  }
  deleteOnce(answer: CannedAnswer = {}): void {
    this.once("DELETE", answer);
  }

  failNext(error: ErrorSpec, times = 1): void {
    this.failures.add(error, times);
  }

  get urls(): string[] {
    return this.calls.map((call) => call.url);
  }

  /** Queued answers nothing asked for (a test may assert this is empty). */
  get pending(): string[] {
    return this.canned.map((c) => `${c.method} ${c.url ?? "*"}`);
  }

  send(method: string, url: string, headers: Record<string, string>, body: Uint8Array | undefined): HttpResponse {
    this.calls.push({ method, url, headers: { ...headers }, body: body && new TextDecoder().decode(body) });
    this.failures.throwNext();
    if (this.patterns !== null && !urlAllowed(url, this.patterns)) {
      throw new EgressDenied(`${method} ${url.split("?")[0]} -> 403 egress_denied: outside permissions.http`);
    }
    const index = this.canned.findIndex(
      (c) => c.method === method && (c.url === undefined || c.url === url || (!c.url.includes("?") && url.split("?")[0] === c.url)),
    );
    if (index < 0) throw new Error(`no canned answer for ${method} ${url} (use runtime.http.getOnce(...))`);
    return this.canned.splice(index, 1)[0]!.response;
  }
}

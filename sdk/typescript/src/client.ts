/**
 * `BrokerClient`: the runtime API over HTTP (Node's fetch): secrets and tokens, kept a few
 * seconds in a `RuntimeCache`, and provider calls through the egress proxy. Retries and
 * error mapping are the `Transport`'s.
 */

import { OAuthAPI, SecretsAPI, type RuntimeBackend } from "./api.js";
import { DEFAULT_CACHE_TTL, RuntimeCache } from "./cache.js";
import { NotConfigured, SecretNotSet } from "./errors.js";
import { HttpAPI } from "./http.js";
import { Transport, type SendOptions } from "./transport.js";
import {
  badAnswer,
  httpResponse,
  parseAccessToken,
  parseSecret,
  type AccessToken,
  type HttpResponse,
  type Secret,
} from "./wire.js";

export const URL_ENV = "BROKER_URL";
export const TOKEN_ENV = "BROKER_RUNTIME_TOKEN";
export const PROXY_PATH = "/v1/runtime/proxy";
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

export interface ClientOptions {
  /** The broker's base URL (default: BROKER_URL). */
  url?: string;
  /** The runtime token minted for this run (default: BROKER_RUNTIME_TOKEN). */
  token?: string;
  retries?: number;
  /** Seconds: the first backoff, doubled per retry up to `maxBackoff`. */
  backoff?: number;
  maxBackoff?: number;
  /** Seconds one request may take; above the broker's 10 s wait for another replica's refresh. */
  requestTimeout?: number;
  /** Seconds all attempts of one call may take. */
  totalTimeout?: number;
  /** Seconds a secret or token is kept in process (0: not at all). */
  cacheTtl?: number;
}

function configured(options: ClientOptions): { url: string; token: string } {
  const url = options.url ?? process.env[URL_ENV] ?? "";
  const token = options.token ?? process.env[TOKEN_ENV] ?? "";
  if (!url) throw new NotConfigured(`${URL_ENV} is not set: the broker's base URL, e.g. http://broker:8080`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new NotConfigured(`${URL_ENV} is not a valid URL`);
  }
  if (!["http:", "https:"].includes(parsed.protocol) || !parsed.hostname) {
    throw new NotConfigured(`${URL_ENV} must be an http(s) URL with a host`);
  }
  if (parsed.username || parsed.password) {
    // the runtime token is the credential; the value is not quoted, it may hold one
    throw new NotConfigured(`${URL_ENV} must not carry credentials`);
  }
  if (!token) throw new NotConfigured(`${TOKEN_ENV} is not set: the runtime token minted for this run`);
  return { url: url.replace(/\/+$/, ""), token };
}

export class BrokerClient implements RuntimeBackend {
  readonly cache: RuntimeCache;
  readonly secrets = new SecretsAPI(() => this);
  readonly oauth = new OAuthAPI(() => this);
  readonly http = new HttpAPI(() => this);
  private readonly transport: Transport;

  constructor(options: ClientOptions = {}) {
    const { url, token } = configured(options);
    this.transport = new Transport(url, token, {
      retries: options.retries ?? 3,
      backoff: options.backoff ?? 0.1,
      maxBackoff: options.maxBackoff ?? 2,
      requestTimeout: options.requestTimeout ?? 15,
      totalTimeout: options.totalTimeout ?? 30,
    });
    this.cache = new RuntimeCache(options.cacheTtl ?? DEFAULT_CACHE_TTL);
  }

  toString(): string {
    return `BrokerClient(${this.transport.base})`;
  }

  async getSecret(name: string): Promise<Secret> {
    if (!name) throw new TypeError("a secret name is required");
    const cached = this.cache.secret(name);
    if (cached) return cached;
    const path = `/v1/runtime/secrets/${encodeURIComponent(name)}`;
    const secret = parseSecret(await this.json("GET", path, { notFound: SecretNotSet }), name);
    this.cache.putSecret(secret);
    return secret;
  }

  async getAccessToken(minTtl?: number): Promise<AccessToken> {
    const cached = this.cache.accessToken(minTtl);
    if (cached) return cached;
    const query = minTtl === undefined ? {} : { min_ttl: String(minTtl) };
    const token = parseAccessToken(await this.json("GET", "/v1/runtime/oauth/access-token", { query }));
    this.cache.putAccessToken(token);
    return token;
  }

  async refreshAccessToken(): Promise<AccessToken> {
    const token = parseAccessToken(await this.json("POST", "/v1/runtime/oauth/refresh"));
    this.cache.putAccessToken(token);
    return token;
  }

  async proxy(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
  ): Promise<HttpResponse> {
    const answer = await this.transport.send(method, PROXY_PATH, {
      headers: { ...headers, "Broker-Target": url },
      body,
      idempotent: IDEMPOTENT.has(method),
      proxied: true,
    });
    return httpResponse(answer.status, answer.headers, answer.body);
  }

  private async json(method: string, path: string, options: SendOptions = {}): Promise<unknown> {
    const headers = { accept: "application/json" };
    const answer = await this.transport.send(method, path, { ...options, headers });
    try {
      return JSON.parse(new TextDecoder().decode(answer.body));
    } catch {
      throw badAnswer(`${method} ${path}`);
    }
  }
}

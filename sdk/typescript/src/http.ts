/**
 * `Http`: provider calls through the broker's egress proxy (`/v1/runtime/proxy`).
 *
 *     const res = await Http.get("https://api.stripe.com/v1/customers?limit=100");
 *     if (res.ok) customers = (res.body as { data: Customer[] }).data;
 *
 * The guide's `Http.get(url, { auth: { bearer: apiKey } })` without the credential: the broker
 * injects the connection's key or access token, so the connector never holds it. A provider's
 * answer is returned whatever its status; only the broker's own refusals throw
 * (`EgressDenied`, `RateLimited`, `PayloadTooLarge`, `Unauthorized`, ...).
 */

import type { HttpResponse } from "./wire.js";

export interface HttpOptions {
  headers?: Record<string, string>;
  /** Added to the URL's query. */
  query?: Record<string, string>;
  /** Sent as JSON (with Content-Type: application/json unless given). */
  json?: unknown;
  /** Sent as is. */
  body?: string | Uint8Array;
}

export interface HttpBackend {
  proxy(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
  ): Promise<HttpResponse>;
}

/** Headers the connector cannot set: the broker's own, and those describing one hop. */
export const RESERVED_HEADERS = new Set([
  "authorization",
  "proxy-authorization",
  "broker-target",
  "host",
  "content-length",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);

/** The absolute http(s) URL the proxy is asked for; a malformed one is a connector bug. */
export function targetUrl(url: string, query: Record<string, string> | undefined): string {
  const match = /^(https?):\/\/([^/?#]*)/i.exec(url);
  if (!match || !match[2]) throw new TypeError("Http needs an absolute http(s) URL with a host");
  if (match[2].includes("@")) {
    throw new TypeError("Http URLs must not carry credentials: the broker injects them");
  }
  if (query && Object.keys(query).length) {
    url += (url.includes("?") ? "&" : "?") + new URLSearchParams(query).toString();
  }
  return url;
}

export function requestParts(options: HttpOptions): [Record<string, string>, Uint8Array | undefined] {
  const headers = { ...options.headers };
  const refused = Object.keys(headers).filter((name) => RESERVED_HEADERS.has(name.toLowerCase()));
  if (refused.length) {
    throw new TypeError(
      `Http cannot send ${refused.sort().join(", ")}: the broker sets it (and injects the credential)`,
    );
  }
  if (options.json !== undefined) {
    if (options.body !== undefined) throw new TypeError("pass json or body, not both");
    if (!Object.keys(headers).some((name) => name.toLowerCase() === "content-type")) {
      headers["Content-Type"] = "application/json";
    }
    return [headers, new TextEncoder().encode(JSON.stringify(options.json))];
  }
  const body = typeof options.body === "string" ? new TextEncoder().encode(options.body) : options.body;
  return [headers, body];
}

export class HttpAPI {
  constructor(private readonly backend: () => HttpBackend) {}

  async request(method: string, url: string, options: HttpOptions = {}): Promise<HttpResponse> {
    if (!/^[A-Za-z]+$/.test(method)) throw new TypeError("an HTTP method is letters only");
    const [headers, body] = requestParts(options);
    return this.backend().proxy(method.toUpperCase(), targetUrl(url, options.query), headers, body);
  }

  get(url: string, options?: HttpOptions): Promise<HttpResponse> {
    return this.request("GET", url, options);
  }

  post(url: string, options?: HttpOptions): Promise<HttpResponse> {
    return this.request("POST", url, options);
  }

  put(url: string, options?: HttpOptions): Promise<HttpResponse> {
    return this.request("PUT", url, options);
  }

  patch(url: string, options?: HttpOptions): Promise<HttpResponse> {
    return this.request("PATCH", url, options);
  }

  delete(url: string, options?: HttpOptions): Promise<HttpResponse> {
    return this.request("DELETE", url, options);
  }
}

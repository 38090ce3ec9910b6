/** What the runtime API answers (`Secret`, `AccessToken`, a proxied `HttpResponse`). */

import { BrokerRuntimeError } from "./errors.js";

export interface Secret {
  readonly name: string;
  readonly value: string;
  /** The connection's settings version: it increases on every change. */
  readonly version: number;
}

export interface AccessToken {
  readonly accessToken: string;
  readonly tokenType: string;
  /** null: the provider issued a token that does not expire. */
  readonly expiresAt: Date | null;
  readonly scopes: readonly string[];
}

/** A provider's answer through the egress proxy, whatever its status (the guide's `res`). */
export interface HttpResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: Headers;
  /** The parsed JSON when the provider says it sent JSON, else the text. */
  readonly body: unknown;
  readonly text: string;
  readonly bytes: Uint8Array;
  json(): unknown;
}

export function httpResponse(status: number, headers: Headers, bytes: Uint8Array): HttpResponse {
  const text = new TextDecoder().decode(bytes);
  const json = (): unknown => JSON.parse(text);
  const kind = (headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  let body: unknown = text;
  if (kind === "application/json" || kind.endsWith("+json")) {
    try {
      body = json();
    } catch {
      body = text;
    }
  }
  return { status, ok: status >= 200 && status < 300, headers, body, text, bytes, json };
}

/** Non-secret settings may be numbers, booleans or objects; JSON keeps them lossless. */
export function secretText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function badAnswer(what: string): BrokerRuntimeError {
  // never quote the body: a half-valid answer may still hold the secret
  return new BrokerRuntimeError(`malformed broker answer to ${what}`, { code: "bad_response" });
}

function isObject(body: unknown): body is Record<string, unknown> {
  return typeof body === "object" && body !== null && !Array.isArray(body);
}

export function parseSecret(body: unknown, name: string): Secret {
  if (!isObject(body) || !("value" in body) || !Number.isInteger(body["version"])) {
    throw badAnswer(`secret '${name}'`);
  }
  return { name, value: secretText(body["value"]), version: body["version"] as number };
}

export function parseAccessToken(body: unknown): AccessToken {
  const bad = () => badAnswer("an access-token request");
  if (!isObject(body)) throw bad();
  const token = body["access_token"];
  const tokenType = body["token_type"] ?? "Bearer";
  const scopes = body["scopes"] ?? [];
  const expires = body["expires_at"] ?? null;
  if (typeof token !== "string" || !token || typeof tokenType !== "string") throw bad();
  if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === "string")) throw bad();
  let expiresAt: Date | null = null;
  if (expires !== null) {
    const text = String(expires);
    // an ISO time without an offset is UTC, as the Python SDK reads it
    expiresAt = new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(text) ? text : `${text}Z`);
    if (Number.isNaN(expiresAt.getTime())) throw bad();
  }
  return { accessToken: token, tokenType, expiresAt, scopes: scopes as string[] };
}

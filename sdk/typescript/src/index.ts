/**
 * broker-runtime: what connector code uses to reach its credentials and its provider.
 *
 *     await Secrets.get("webhook_secret")        -> string
 *     await OAuth.accessToken({ minTtl: 60 })    -> string
 *     await OAuth.forceRefresh()                 -> AccessToken  (the provider answered 401)
 *     await Http.get(url)                        -> HttpResponse (through the egress proxy)
 *
 * Configured from BROKER_URL and BROKER_RUNTIME_TOKEN, or an explicit `BrokerClient`
 * installed with `useClient()`. Every failure is a `BrokerRuntimeError`; only
 * `BrokerUnavailable` is retried. The Python SDK (`broker.runtime`) behaves the same:
 * sdk/behaviour-cases.json holds both to it.
 */

export { OAuthAPI, SecretsAPI, minTtlSeconds, type RuntimeBackend } from "./api.js";
export { DEFAULT_CACHE_TTL, DEFAULT_MIN_TTL, RuntimeCache } from "./cache.js";
export { BrokerClient, PROXY_PATH, TOKEN_ENV, URL_ENV, type ClientOptions } from "./client.js";
export * from "./errors.js";
export { Http, OAuth, Secrets, currentBackend, resetDefaultClient, useClient } from "./facade.js";
export { HttpAPI, type HttpBackend, type HttpOptions } from "./http.js";
export { BROKER_ERROR_HEADER } from "./transport.js";
export type { AccessToken, HttpResponse, Secret } from "./wire.js";

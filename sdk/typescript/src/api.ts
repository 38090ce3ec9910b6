/** The calls connector code makes (`Secrets.get`, `OAuth.accessToken`, ...) over any backend
 * that answers the runtime API: a `BrokerClient`, or the test runtime's fakes. */

import type { HttpBackend } from "./http.js";
import type { AccessToken, Secret } from "./wire.js";

export interface RuntimeBackend extends HttpBackend {
  getSecret(name: string): Promise<Secret>;
  getAccessToken(minTtl?: number): Promise<AccessToken>;
  refreshAccessToken(): Promise<AccessToken>;
}

export function minTtlSeconds(minTtl: number | undefined): number | undefined {
  if (minTtl === undefined) return undefined;
  if (!Number.isFinite(minTtl) || minTtl < 0) {
    throw new RangeError("minTtl must be a finite number of seconds >= 0");
  }
  return Math.ceil(minTtl);
}

export class SecretsAPI {
  constructor(private readonly backend: () => RuntimeBackend) {}

  async get(name: string): Promise<string> {
    return (await this.backend().getSecret(name)).value;
  }

  getWithVersion(name: string): Promise<Secret> {
    return this.backend().getSecret(name);
  }
}

export class OAuthAPI {
  constructor(private readonly backend: () => RuntimeBackend) {}

  /** A token valid for at least `minTtl` seconds (default: the broker's margin). */
  token(options: { minTtl?: number } = {}): Promise<AccessToken> {
    return this.backend().getAccessToken(minTtlSeconds(options.minTtl));
  }

  async accessToken(options: { minTtl?: number } = {}): Promise<string> {
    return (await this.token(options)).accessToken;
  }

  /** Force a refresh: call it once when the provider rejects a token with 401. */
  forceRefresh(): Promise<AccessToken> {
    return this.backend().refreshAccessToken();
  }
}

/**
 * A short in-process cache of the broker's answers, so a connector that reads its key or
 * token on every request does not cost the broker a round trip each time (the Python SDK's
 * broker.runtime.cache, the same rules):
 *
 * an entry is served for at most `ttl` seconds after the broker gave it (a rotated key or a
 * revoked grant is seen within that), and a token only while it stays valid for the `minTtl`
 * asked (default: the broker's refresh margin, 300 s), so a cached token is never one the
 * broker would have refreshed. Refusals are never cached; a forced refresh replaces the
 * token. `ttl = 0` turns it off.
 */

import type { AccessToken, Secret } from "./wire.js";

export const DEFAULT_CACHE_TTL = 10;
export const DEFAULT_MIN_TTL = 300;

type Entry<T> = { at: number; value: T };

export class RuntimeCache {
  private readonly secrets = new Map<string, Entry<Secret>>();
  private token: Entry<AccessToken> | null = null;

  constructor(
    readonly ttl: number,
    private readonly clock: () => number = () => performance.now() / 1000,
  ) {}

  private fresh(entry: Entry<unknown>): boolean {
    return this.clock() - entry.at < this.ttl;
  }

  secret(name: string): Secret | null {
    const entry = this.secrets.get(name);
    return entry && this.fresh(entry) ? entry.value : null;
  }

  putSecret(secret: Secret): void {
    if (this.ttl > 0) this.secrets.set(secret.name, { at: this.clock(), value: secret });
  }

  accessToken(minTtl: number | undefined): AccessToken | null {
    if (this.token === null || !this.fresh(this.token)) return null;
    const token = this.token.value;
    const wanted = (minTtl ?? DEFAULT_MIN_TTL) * 1000;
    if (token.expiresAt !== null && token.expiresAt.getTime() - Date.now() < wanted) return null;
    return token;
  }

  putAccessToken(token: AccessToken): void {
    this.token = this.ttl > 0 ? { at: this.clock(), value: token } : null;
  }

  clear(): void {
    this.secrets.clear();
    this.token = null;
  }
}

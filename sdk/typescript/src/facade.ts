/**
 * The module-level `Secrets`, `OAuth` and `Http`: one default client built from the
 * environment on first use, or whatever backend `useClient()` installed (the test runtime
 * does). The installed backend is kept on `globalThis`, so every copy of this package in a
 * process (a connector's and its tests') sees the same one.
 */

import { OAuthAPI, SecretsAPI, type RuntimeBackend } from "./api.js";
import { BrokerClient } from "./client.js";
import { HttpAPI } from "./http.js";

const SLOT = Symbol.for("broker-runtime.backend");
type Slot = { installed: RuntimeBackend | null; default: BrokerClient | null };

function slot(): Slot {
  const global = globalThis as { [SLOT]?: Slot };
  return (global[SLOT] ??= { installed: null, default: null });
}

/** The installed backend, else the default client built from the environment. */
export function currentBackend(): RuntimeBackend {
  const state = slot();
  return state.installed ?? (state.default ??= new BrokerClient());
}

/** Route `Secrets`/`OAuth`/`Http` to `backend` (null: the environment's); returns the old. */
export function useClient(backend: RuntimeBackend | null): RuntimeBackend | null {
  const state = slot();
  const previous = state.installed;
  state.installed = backend;
  return previous;
}

/** Forget the default client (the next call builds one from the environment again). */
export function resetDefaultClient(): void {
  slot().default = null;
}

export const Secrets = new SecretsAPI(currentBackend);
export const OAuth = new OAuthAPI(currentBackend);
export const Http = new HttpAPI(currentBackend);

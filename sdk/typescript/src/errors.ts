/**
 * The SDK's errors. Every failure is a `BrokerRuntimeError` carrying the broker's wire
 * `code` and HTTP `status`; the classes and codes are the Python SDK's (broker.runtime.errors):
 *
 *     BrokerRuntimeError        any other refusal or a malformed answer
 *     ├── NotConfigured         BROKER_URL / BROKER_RUNTIME_TOKEN missing or invalid
 *     ├── Unauthorized          401 unauthorized: runtime token bad, expired, revoked
 *     ├── NotGranted            403 not_granted: the manifest does not grant the name
 *     ├── NotFound              404 not_found
 *     │   └── SecretNotSet      granted, but this connection has no value for it
 *     ├── NeedsReauth           409 needs_reauth: a human must reconnect the account
 *     ├── NotOAuth              400 not_oauth: an OAuth call on an API-key connection
 *     ├── ProviderError         502 provider_error: refresh failed, no valid token left
 *     ├── EgressDenied          403 egress_denied: a URL outside permissions.http
 *     ├── RateLimited           429 rate_limited: over the connection's rate budget
 *     ├── PayloadTooLarge       413 payload_too_large: a proxied body over the limit
 *     └── BrokerUnavailable     503, a proxy's 502/504, network errors, timeouts
 *
 * No message ever holds a secret value or the runtime token.
 */

export class BrokerRuntimeError extends Error {
  static readonly defaultCode: string = "internal_error";
  static readonly defaultStatus: number = 500;
  readonly code: string;
  readonly status: number;

  constructor(message = "", options: { status?: number; code?: string; cause?: unknown } = {}) {
    const type = new.target as typeof BrokerRuntimeError;
    const code = options.code ?? type.defaultCode;
    super(message || code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = type.name;
    this.code = code;
    this.status = options.status ?? type.defaultStatus;
  }
}

export class NotConfigured extends BrokerRuntimeError {
  static override readonly defaultCode = "invalid_config";
}
export class Unauthorized extends BrokerRuntimeError {
  static override readonly defaultCode = "unauthorized";
  static override readonly defaultStatus = 401;
}
export class NotGranted extends BrokerRuntimeError {
  static override readonly defaultCode = "not_granted";
  static override readonly defaultStatus = 403;
}
export class NotFound extends BrokerRuntimeError {
  static override readonly defaultCode = "not_found";
  static override readonly defaultStatus = 404;
}
export class SecretNotSet extends NotFound {}
export class NeedsReauth extends BrokerRuntimeError {
  static override readonly defaultCode = "needs_reauth";
  static override readonly defaultStatus = 409;
}
export class NotOAuth extends BrokerRuntimeError {
  static override readonly defaultCode = "not_oauth";
  static override readonly defaultStatus = 400;
}
export class ProviderError extends BrokerRuntimeError {
  static override readonly defaultCode = "provider_error";
  static override readonly defaultStatus = 502;
}
export class EgressDenied extends BrokerRuntimeError {
  static override readonly defaultCode = "egress_denied";
  static override readonly defaultStatus = 403;
}
export class RateLimited extends BrokerRuntimeError {
  static override readonly defaultCode = "rate_limited";
  static override readonly defaultStatus = 429;
  /** The broker's Retry-After in seconds (0: it did not say). */
  retryAfter = 0;
}
export class PayloadTooLarge extends BrokerRuntimeError {
  static override readonly defaultCode = "payload_too_large";
  static override readonly defaultStatus = 413;
}
export class BrokerUnavailable extends BrokerRuntimeError {
  static override readonly defaultCode = "broker_unavailable";
  static override readonly defaultStatus = 503;
}

type ErrorClass = typeof BrokerRuntimeError;

const BY_CODE = new Map<string, ErrorClass>(
  [
    Unauthorized,
    NotGranted,
    NotFound,
    NeedsReauth,
    NotOAuth,
    ProviderError,
    EgressDenied,
    RateLimited,
    PayloadTooLarge,
  ].map((cls) => [cls.defaultCode, cls]),
);
BY_CODE.set("store_unavailable", BrokerUnavailable);

/** The SDK error class for a wire error code. */
export function errorClass(code: string): ErrorClass {
  return BY_CODE.get(code) ?? BrokerRuntimeError;
}

/**
 * One request to the broker with bounded timeouts, retried while the broker is unavailable,
 * and the broker's refusals turned into the SDK's errors (the Python SDK's
 * broker.runtime.transport, the same rules).
 *
 * Only `BrokerUnavailable` is retried (exponential backoff with full jitter, bounded in count
 * and in total time); a 4xx is an answer, and asking again would not change it. A request
 * the broker may already have acted on (a connection lost after a proxied POST was sent) is
 * not sent twice: `idempotent: false` retries only when the connection was never made.
 */

import {
  BrokerRuntimeError,
  BrokerUnavailable,
  NotFound,
  RateLimited,
  errorClass,
} from "./errors.js";

/** On a proxied answer: the broker made it (a refusal), not the provider. */
export const BROKER_ERROR_HEADER = "broker-error";

export interface TransportOptions {
  retries: number;
  backoff: number;
  maxBackoff: number;
  requestTimeout: number;
  totalTimeout: number;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

export interface SendOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Uint8Array | undefined;
  idempotent?: boolean;
  proxied?: boolean;
  notFound?: typeof BrokerRuntimeError;
}

// undici's codes for a connection that was never made: nothing reached the broker
const NEVER_CONNECTED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function causeCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === "string" ? cause.code : "";
}

const sleep = (seconds: number) => new Promise((done) => setTimeout(done, seconds * 1000));

export class Transport {
  constructor(
    readonly base: string,
    private readonly token: string,
    private readonly options: TransportOptions,
  ) {}

  /** The broker's answer; a proxied provider answer is returned whatever its status. */
  async send(method: string, path: string, options: SendOptions = {}): Promise<Answer> {
    const started = performance.now() / 1000;
    const deadline = started + this.options.totalTimeout;
    const what = `${method} ${path}`;
    const query = options.query && Object.keys(options.query).length
      ? `?${new URLSearchParams(options.query)}`
      : "";
    const headers = { ...options.headers, authorization: `Bearer ${this.token}` };
    for (let attempt = 1; ; attempt++) {
      const remaining = Math.max(deadline - performance.now() / 1000, 0.001);
      let failure: BrokerRuntimeError;
      let cause: unknown;
      let retryAfter: string | null = null;
      try {
        const resp = await fetch(this.base + path + query, {
          method,
          headers,
          ...(options.body === undefined ? {} : { body: options.body }),
          signal: AbortSignal.timeout(Math.min(this.options.requestTimeout, remaining) * 1000),
        });
        const answer = { status: resp.status, headers: resp.headers, body: new Uint8Array(await resp.arrayBuffer()) };
        const brokerMade = !options.proxied || answer.headers.has(BROKER_ERROR_HEADER);
        if ((answer.status >= 200 && answer.status < 300) || !brokerMade) return answer;
        retryAfter = answer.headers.get("retry-after");
        failure = this.error(answer, what, options.notFound ?? NotFound);
      } catch (error) {
        if (error instanceof BrokerRuntimeError) throw error;
        cause = error;
        const name = error instanceof Error ? error.name : "Error";
        const code = causeCode(error);
        failure = new BrokerUnavailable(`${what}: ${name}${code ? ` (${code})` : ""}`);
        if (options.idempotent === false && !NEVER_CONNECTED.has(code)) {
          throw new BrokerUnavailable(failure.message, { cause }); // it may have been forwarded
        }
      }
      if (!(failure instanceof BrokerUnavailable)) throw failure;
      const delay = this.delay(attempt, retryAfter);
      if (attempt > this.options.retries || performance.now() / 1000 + delay >= deadline) {
        throw new BrokerUnavailable(
          `broker unavailable after ${attempt} attempts; last: ${failure.message}`,
          { status: failure.status, code: failure.code, cause },
        );
      }
      await sleep(delay);
    }
  }

  private delay(attempt: number, retryAfter: string | null): number {
    // full jitter: replicas that failed together do not come back together
    const cap = Math.min(this.options.maxBackoff, this.options.backoff * 2 ** (attempt - 1));
    let delay = Math.random() * cap;
    if (retryAfter !== null && /^\d+$/.test(retryAfter)) delay = Math.max(delay, Number(retryAfter));
    return delay;
  }

  error(answer: Answer, what: string, notFound: typeof BrokerRuntimeError): BrokerRuntimeError {
    const { status } = answer;
    let code = "";
    let message = "";
    try {
      const body: unknown = JSON.parse(new TextDecoder().decode(answer.body));
      if (typeof body === "object" && body !== null) {
        const fields = body as Record<string, unknown>;
        code = fields["error"] ? String(fields["error"]) : "";
        message = fields["message"] ? String(fields["message"]) : "";
      }
    } catch {
      // not JSON: not the broker talking
    }
    code ||= answer.headers.get(BROKER_ERROR_HEADER) ?? "";
    // the broker never sends credentials back, but do not trust a proxy to agree
    message = message.split(this.token).join("[runtime token]").slice(0, 300);
    const text = `${what} -> ${status} ${code || "error"}${message ? `: ${message}` : ""}`;
    let cls = errorClass(code);
    if (cls === NotFound) cls = notFound;
    else if (cls === BrokerRuntimeError && (status === 503 || ([502, 504].includes(status) && !code))) {
      cls = BrokerUnavailable; // a proxy in front of a broker that is down or restarting
    }
    if (!code && cls === BrokerRuntimeError) code = "unexpected_response";
    const error = new cls(text, { status, ...(code ? { code } : {}) });
    const after = answer.headers.get("retry-after") ?? "";
    if (error instanceof RateLimited && /^\d+$/.test(after)) error.retryAfter = Number(after);
    return error;
  }
}

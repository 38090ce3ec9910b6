/** The few route helpers the guide's routes use (`api.json`, `api.badRequest`, `api.error`),
 * as plain values: the platform SDK that provides them is not the broker's. */

export interface RouteRequest {
  body: unknown;
}

export interface RouteResponse {
  status: number;
  body: unknown;
}

export const api = {
  json(body: unknown, options: { status?: number } = {}): RouteResponse {
    return { status: options.status ?? 200, body };
  },
  badRequest(message: string, details: Record<string, unknown> = {}): RouteResponse {
    return { status: 400, body: { error: message, ...details } };
  },
  error(message: string, options: { status?: number } = {}): RouteResponse {
    return { status: options.status ?? 500, body: { error: message } };
  },
};

export interface Ingested {
  documentType: string;
  sourceId: string;
  payload: Record<string, unknown>;
  stream: string;
  idempotencyKey: string;
}

export const ingest = {
  /** The record the platform would ingest (the guide's `ingest.canonical`), returned. */
  canonical(
    documentType: string,
    payload: Record<string, unknown> & { customer_id: string },
    options: { stream: string; idempotencyKey: string },
  ): Ingested {
    return { documentType, sourceId: payload.customer_id, payload, ...options };
  },
};

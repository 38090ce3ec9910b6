// src/api/sync/customers.ts: the guide's poll sync route, reading Stripe through the broker's
// egress proxy. Its key is never read (`Secrets.get("api_key")` would be refused: the
// manifest grants it to the proxy's httpAuth only).
import { Http } from "../../../../../src/index.js";
import { api, ingest, type RouteRequest, type RouteResponse } from "../../lib/api.js";
import { stripeApi, type StripeCustomer, type StripeList } from "../../lib/stripe.js";

export const config = { auth: "api_key" };

export async function POST(_request: RouteRequest): Promise<RouteResponse> {
  const stream = "customers";
  const res = await Http.get(`${stripeApi()}/v1/customers?limit=100`);
  if (!res.ok) return api.error(`Stripe ${res.status}`, { status: 502 });
  const page = res.body as StripeList<StripeCustomer>;
  const results = (page.data ?? []).map((c) =>
    ingest.canonical("customer", { customer_id: c.id, name: c.name }, {
      stream,
      idempotencyKey: `stripe:customer:${c.id}`,
    }),
  );
  return api.json({ stream, imported: results.length, hasMore: page.has_more ?? false, records: results });
}

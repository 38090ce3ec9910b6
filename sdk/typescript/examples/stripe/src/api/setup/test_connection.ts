// src/api/setup/test_connection.ts: the guide's test-connection route, through the broker.
// The guide passes `auth: { bearer: apiKey }`; here the broker injects the connection's key
// (connection.httpAuth), so the route never holds it.
import { Http } from "../../../../../src/index.js";
import { api, type RouteRequest, type RouteResponse } from "../../lib/api.js";
import { stripeApi } from "../../lib/stripe.js";

export const config = { auth: "api_key" };

export async function POST(_request: RouteRequest): Promise<RouteResponse> {
  const res = await Http.get(`${stripeApi()}/v1/balance`);
  if (!res.ok) {
    return api.badRequest("Invalid API key", { status: res.status });
  }
  return api.json({ ok: true });
}

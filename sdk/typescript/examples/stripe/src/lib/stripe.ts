/** Where Stripe's API is: api.stripe.com, or a stand-in named by STRIPE_API_BASE (the
 * end-to-end test's fake Stripe, which the manifest it runs with allows instead). */
export function stripeApi(): string {
  return process.env["STRIPE_API_BASE"] ?? "https://api.stripe.com";
}

export interface StripeCustomer {
  id: string;
  name: string | null;
}

export interface StripeList<T> {
  data?: T[];
  has_more?: boolean;
}

"""Connecting a tenant's account through the one-time link a Connect button opens.

- `sessions`: the connect sessions (create, claim, finish), and what the API-key form does
  with the settings it was sent (a new connection, or a new settings version of one);
- `oauth_flow`: the authorization-code flow behind the link of an OAuth connector (state,
  PKCE, browser binding, the callback and the code exchange).

The entry point is the two modules themselves: the web layer's connect routes call both.
Connecting without a browser (`POST /v1/connections`) is `connections.create_direct_connection`
and the connection test (testConnection) is `connection_check`: both sit below this package,
which builds on them (docs/architecture.md).
"""

from broker.services.connect import oauth_flow, sessions

__all__ = ["oauth_flow", "sessions"]

// The real OAuth 2.0 / OpenID Connect authorization server used by the broker's end-to-end
// tests: npm `oidc-provider` (9.x), configured from a JSON file.
//
//   node oidc_server.mjs CONFIG.json        (or OIDC_PEER_CONFIG=CONFIG.json node oidc_server.mjs)
//
// Prints exactly one line to stdout once it accepts connections: `READY <issuer>`.
// Everything else (oidc-provider warnings, errors) goes to stderr.
//
// Config keys (all optional except `clients`):
//   port                 TCP port on 127.0.0.1; 0 or absent = a free port chosen by the OS
//   issuer               default http://127.0.0.1:<port>
//   clients              oidc-provider client metadata: client_id, client_secret,
//                        token_endpoint_auth_method (client_secret_basic | client_secret_post |
//                        private_key_jwt + jwks: {keys: [public JWK]}), redirect_uris,
//                        grant_types (default authorization_code, refresh_token,
//                        client_credentials), response_types (default ["code"]), scope
//   pkceRequired         true: every authorization request needs code_challenge (S256);
//                        false: never required; absent: oidc-provider's default (public clients)
//   rotateRefreshToken   true: a new refresh token on every refresh; false: never rotate;
//                        absent: oidc-provider's default (confidential clients after 70% of life)
//   accessTokenTTL       seconds (default 3600); clientCredentialsTTL defaults to it
//   clientCredentialsTTL seconds
//   refreshTokenTTL      seconds (default 14 days)
//   clockTolerance       seconds of leeway when checking token expiry (default 0; the
//                        library's own default, 15, keeps short-lived tokens alive longer)
//   scopes               extra scope values the provider knows (besides openid, offline_access)
//   resource             {indicator, scope, accessTokenFormat: "opaque" | "jwt"}: a resource
//                        server; when set it is the default resource of every token request
//
// Test controls (not part of any standard):
//   GET  /__test/stats   {"token": {<grant_type>: n}, "token_errors": {<grant_type>: n},
//                         "authorization": n, "revocation": n}
//   POST /__test/reset   zero the counters (204)

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import { Provider, errors } from 'oidc-provider';

const configPath = process.argv[2] || process.env.OIDC_PEER_CONFIG;
if (!configPath) {
  console.error('usage: node oidc_server.mjs CONFIG.json (or set OIDC_PEER_CONFIG)');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));

const DEFAULT_GRANTS = ['authorization_code', 'refresh_token', 'client_credentials'];

function clientMetadata(client) {
  return {
    grant_types: DEFAULT_GRANTS,
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  };
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return {
    keys: [
      { ...rsa.export({ format: 'jwk' }), kid: 'rs256', alg: 'RS256', use: 'sig' },
      { ...ec.export({ format: 'jwk' }), kid: 'es256', alg: 'ES256', use: 'sig' },
    ],
  };
}

function newStats() {
  return { token: {}, token_errors: {}, authorization: 0, revocation: 0 };
}
let stats = newStats();

function bump(map, key) {
  map[key] = (map[key] || 0) + 1;
}

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port || 0, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = config.issuer || `http://127.0.0.1:${port}`;

const accessTokenTTL = config.accessTokenTTL ?? 3600;
const clientCredentialsTTL = config.clientCredentialsTTL ?? accessTokenTTL;
const refreshTokenTTL = config.refreshTokenTTL ?? 14 * 24 * 60 * 60;
const { resource } = config;

const providerConfig = {
  clients: (config.clients || []).map(clientMetadata),
  jwks: signingKeys(),
  // oidc-provider's default tolerance (15 s) would keep an expired access token usable.
  clockTolerance: config.clockTolerance ?? 0,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', ...(config.scopes || [])],
  findAccount(_ctx, sub) {
    return { accountId: sub, claims: async () => ({ sub }) };
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf || resource?.indicator,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (!resource || indicator !== resource.indicator) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: resource.scope || '',
          accessTokenFormat: resource.accessTokenFormat || 'opaque',
          accessTokenTTL,
        };
      },
    },
  },
  ttl: {
    AccessToken: () => accessTokenTTL,
    ClientCredentials: () => clientCredentialsTTL,
    RefreshToken: () => refreshTokenTTL,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: Math.max(refreshTokenTTL, 3600),
    IdToken: 3600,
  },
  // Refresh tokens: only for offline_access (granted on prompt=consent) and clients allowed
  // the refresh_token grant, which is oidc-provider's own rule, spelled out here.
  issueRefreshToken: async (_ctx, client, code) => (
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access')
  ),
};
if (typeof config.pkceRequired === 'boolean') {
  const required = config.pkceRequired;
  providerConfig.pkce = { required: () => required };
}
if (typeof config.rotateRefreshToken === 'boolean') {
  providerConfig.rotateRefreshToken = config.rotateRefreshToken;
}

const provider = new Provider(issuer, providerConfig);

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/stats' && ctx.method === 'GET') {
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/__test/reset' && ctx.method === 'POST') {
    stats = newStats();
    ctx.status = 204;
    return;
  }
  try {
    await next();
  } finally {
    const route = ctx.oidc?.route;
    if (route === 'token') {
      const grantType = ctx.oidc.params?.grant_type || 'unknown';
      bump(stats.token, grantType);
      if (ctx.status >= 400) bump(stats.token_errors, grantType);
    } else if (route === 'authorization') {
      stats.authorization += 1;
    } else if (route === 'revocation') {
      stats.revocation += 1;
    }
  }
});

provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));

server.on('request', provider.callback());

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
// The Python helper keeps our stdin open: when it goes away (even killed), so do we.
if (process.env.OIDC_PEER_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

process.stdout.write(`READY ${issuer}\n`);

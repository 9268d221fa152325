// A real OpenID Connect provider (the `oidc-provider` package) on loopback, for ketch's SSO tests.
//
// It listens on 127.0.0.1 and a free port, then prints one JSON line to stdout:
//   {"issuer": "http://127.0.0.1:<port>", "client_id": "...", "pid": <pid>}
// and serves until it receives SIGTERM or SIGINT.
//
// Configuration (environment):
//   OIDC_CLIENT_ID       static confidential client's id       (default "ketch")
//   OIDC_CLIENT_SECRET   its secret (client_secret_basic/post)  (default "ketch-test-secret")
//   OIDC_REDIRECT_URIS   comma-separated redirect URIs          (default http://127.0.0.1/callback)
//
// PKCE (S256) is required for every client. The `groups` scope releases a `groups` claim,
// and claims are put in the ID token (conformIdTokenClaims: false). Logins are non-interactive:
// the built-in dev interactions are off, and POST /interaction/<uid>/login with the form field
// `login=<account id>` signs that account in; consent is granted automatically. A human can
// use the same flow through the tiny HTML form served at GET /interaction/<uid>.
//
// Test-only: PUT /_test/accounts/<id> with a JSON body {"groups": [...], "email": ...} changes
// an account's claims (the next login sees them). Nothing here is fit for production.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const LOOPBACK = '127.0.0.1';
const clientId = process.env.OIDC_CLIENT_ID || 'ketch';
const clientSecret = process.env.OIDC_CLIENT_SECRET || 'ketch-test-secret';
const redirectUris = (process.env.OIDC_REDIRECT_URIS || `http://${LOOPBACK}/callback`)
  .split(',')
  .map((uri) => uri.trim())
  .filter(Boolean);

// The in-memory account store: account id -> claims. `sub` is the account id.
const accounts = new Map(
  Object.entries({
    alice: { name: 'Alice Liddell', email: 'alice@example.test', groups: ['ml-engineers', 'admins'] },
    bob: { name: 'Bob Builder', email: 'bob@example.test', groups: ['data-scientists'] },
    carol: { name: 'Carol Danvers', email: 'carol@example.test', groups: [] },
  }),
);

function accountClaims(id) {
  const account = accounts.get(id);
  return {
    sub: id,
    preferred_username: id,
    name: account.name,
    email: account.email,
    email_verified: true,
    groups: [...account.groups],
  };
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
}

function configuration() {
  return {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingKey()] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomUUID()] },
    findAccount: async (_ctx, id) =>
      accounts.has(id) ? { accountId: id, claims: async () => accountClaims(id) } : undefined,
    // Consent is automatic: every login gets a grant for what the client asked for.
    loadExistingGrant: async (ctx) => {
      const { provider, client, session, params } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
      const existing = grantId ? await provider.Grant.find(grantId) : undefined;
      const grant = existing || new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope(String(params.scope || 'openid'));
      await grant.save();
      return grant;
    },
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function interaction(provider, req, res, url) {
  const [, , uid, action] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    return send(res, 400, 'interaction mismatch');
  }
  if (req.method === 'GET' && !action) {
    const options = [...accounts.keys()].map((id) => `<option>${escapeHtml(id)}</option>`).join('');
    return send(
      res,
      200,
      `<!doctype html><form method="post" action="/interaction/${escapeHtml(uid)}/login">` +
        `<select name="login">${options}</select><button>Sign in</button></form>`,
      'text/html; charset=utf-8',
    );
  }
  if (req.method === 'POST' && action === 'login') {
    const login = new URLSearchParams(await readBody(req)).get('login') || '';
    if (!accounts.has(login)) {
      return send(res, 400, `unknown test account '${login}'`);
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, {
      mergeWithLastSubmission: false,
    });
  }
  return send(res, 404, 'not found');
}

async function testAccount(req, res, url) {
  const id = decodeURIComponent(url.pathname.split('/')[3] || '');
  if (req.method !== 'PUT' || !id) {
    return send(res, 404, 'not found');
  }
  const update = JSON.parse((await readBody(req)) || '{}');
  const current = accounts.get(id) || { name: id, email: `${id}@example.test`, groups: [] };
  accounts.set(id, { ...current, ...update });
  return send(res, 200, JSON.stringify(accountClaims(id)), 'application/json');
}

const server = createServer();
server.listen(0, LOOPBACK, () => {
  const { port } = server.address();
  const issuer = `http://${LOOPBACK}:${port}`;
  const provider = new Provider(issuer, configuration());
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    let handler = null;
    if (url.pathname.startsWith('/interaction/')) {
      handler = interaction(provider, req, res, url);
    } else if (url.pathname.startsWith('/_test/accounts/')) {
      handler = testAccount(req, res, url);
    }
    if (handler === null) {
      return callback(req, res);
    }
    return handler.catch((err) => {
      console.error(err);
      if (!res.headersSent) send(res, 500, String(err?.message || err));
    });
  });
  process.stdout.write(`${JSON.stringify({ issuer, client_id: clientId, pid: process.pid })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

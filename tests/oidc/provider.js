// A real OpenID Connect provider (npm oidc-provider) for the identity tests.
//
//   node provider.js --port 0 [--clients clients.json] [--audience urn:maestro:gateway]
//
// Prints one JSON line {"issuer": ..., "port": ...} on stdout once it listens.
// Clients (default below) may use client_credentials with a resource indicator (JWT access
// token for that audience) or without one (opaque token, checked by introspection).
//
// Test hooks, loopback only, under /__admin (the provider's own keys sign everything):
//   POST /__admin/mint    {account, client_id, resource?, scope?, acr?, amr?, auth_time?,
//                          iat?, exp?, claims?}  → {"access_token": ...}
//                          resource present → JWT access token for it; absent → opaque.
//   POST /__admin/rotate  {keep_old?: bool}  → new RS256 signing key first in the JWKS
//                          (the old one kept for verification unless keep_old is false)
//   GET  /__admin/jwks    → the private JWKS in use (for tests that must forge with it)
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    clients: { type: 'string' },
    audience: { type: 'string', default: 'urn:maestro:gateway' },
  },
});

const DEFAULT_CLIENTS = [
  {
    client_id: 'gateway',
    client_secret: 'gateway-secret-for-introspection',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  },
  {
    client_id: 'svc-reporter',
    client_secret: 'svc-reporter-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'a2a',
  },
];

const clients = args.clients
  ? JSON.parse(fs.readFileSync(args.clients, 'utf8'))
  : DEFAULT_CLIENTS;

function newKey(alg = 'RS256') {
  const { privateKey } = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${crypto.randomUUID().slice(0, 8)}` };
}

let keys = [newKey('RS256')];
// Per-token test settings travel on the token object from /__admin/mint to the hooks below.
const SETTINGS = Symbol('maestro-test-settings');

function build(issuer) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    clientBasedCORS: () => true,
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: 'a2a openid',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    scopes: ['openid', 'a2a'],
    claims: { openid: ['sub'], acr: null, amr: null, auth_time: null },
    acrValues: ['urn:maestro:loa:1', 'urn:maestro:loa:2'],
    ttl: { AccessToken: 600, ClientCredentials: 600 },
    extraTokenClaims: (_ctx, token) => token[SETTINGS]?.claims,
    formats: {
      customizers: {
        jwt: (_ctx, token, jwt) => {
          const s = token[SETTINGS];
          if (s?.iat !== undefined) jwt.payload.iat = s.iat;
          if (s?.exp !== undefined) jwt.payload.exp = s.exp;
        },
      },
    },
  });
  return provider;
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function mint(provider, body) {
  const client = await provider.Client.find(body.client_id ?? 'svc-reporter');
  if (!client) throw new Error(`unknown client ${body.client_id}`);
  const token = new provider.AccessToken({
    accountId: body.account,
    client,
    scope: body.scope ?? 'a2a',
    gty: 'authorization_code',
  });
  if (body.resource) {
    token.resourceServer = new provider.ResourceServer(body.resource, {
      audience: body.resource,
      scope: 'a2a openid',
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: 'RS256' } },
    });
  }
  const claims = { ...(body.claims ?? {}) };
  if (body.acr !== undefined) claims.acr = body.acr;
  if (body.amr !== undefined) claims.amr = body.amr;
  if (body.auth_time !== undefined) claims.auth_time = body.auth_time;
  token[SETTINGS] = { claims, iat: body.iat, exp: body.exp };
  return provider.AccessToken === undefined ? null : token.save();
}

async function main() {
  let provider = null;
  let handler = null;
  const server = http.createServer(async (req, res) => {
    const local = ['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress);
    if (req.url.startsWith('/__admin/')) {
      if (!local) return reply(res, 403, { error: 'loopback only' });
      try {
        if (req.method === 'POST' && req.url === '/__admin/mint') {
          return reply(res, 200, { access_token: await mint(provider, await readJson(req)) });
        }
        if (req.method === 'POST' && req.url === '/__admin/rotate') {
          const body = await readJson(req);
          const fresh = newKey('RS256');
          keys = body.keep_old === false ? [fresh] : [fresh, ...keys];
          provider = build(provider.issuer);
          handler = provider.callback();
          return reply(res, 200, { kid: fresh.kid, kids: keys.map((k) => k.kid) });
        }
        if (req.method === 'GET' && req.url === '/__admin/jwks') {
          return reply(res, 200, { keys });
        }
        return reply(res, 404, { error: 'no such hook' });
      } catch (err) {
        return reply(res, 500, { error: String(err) });
      }
    }
    return handler(req, res);
  });
  await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
  const { port } = server.address();
  provider = build(`http://127.0.0.1:${port}`);
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer: provider.issuer, port, audience: args.audience })}\n`);
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});

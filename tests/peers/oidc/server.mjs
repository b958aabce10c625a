// A real OpenID Connect authorization server for the tokenctl test suite.
//
// It is the OpenID Certified `oidc-provider` package with a small
// configuration on top: its own plain login and consent pages, an in-memory
// store that never evicts, and a few admin endpoints under /__test/ that let a
// test act "at the provider" (revoke a user's grants, read counters).
//
// Usage:
//   node server.mjs [--config FILE | --config-json JSON] [--port N] [--host H]
//                   [--exit-on-stdin-close]
//   The config may also come from $OIDC_PEER_CONFIG (a file path or inline JSON).
//
// When it is ready it prints exactly one JSON line on stdout:
//   {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT,"pid":N}
// and nothing else ever goes to stdout. Logs go to stderr. SIGTERM/SIGINT
// stop it cleanly (exit code 0).
//
// See README.md beside this file for the config format and the pages.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// ---------------------------------------------------------------- logging

function log(...parts) {
  const text = parts
    .map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))
    .join(' ');
  process.stderr.write(`[oidc-peer] ${new Date().toISOString()} ${text}\n`);
}

// ---------------------------------------------------------------- config

const DEFAULT_REDIRECT_URIS = ['http://127.0.0.1/callback', 'http://[::1]/callback'];

const DEFAULT_CONFIG = {
  clients: [
    {
      client_id: 'tokenctl-public',
      token_endpoint_auth_method: 'none',
    },
    {
      client_id: 'tokenctl-basic',
      client_secret: 'tokenctl-basic-secret',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'tokenctl-post',
      client_secret: 'tokenctl-post-secret',
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  users: {
    alice: {
      password: 'alice-password',
      email: 'alice@example.test',
      name: 'Alice Example',
    },
    bob: {
      password: 'bob-password',
      email: 'bob@example.test',
      name: 'Bob Example',
    },
  },
  // openid, offline_access, profile and email always exist.
  scopes: ['invoices:read', 'invoices:write', 'masterdata:write'],
  // true: every refresh rotates; false: never; "default": oidc-provider's own
  // rule (public clients rotate, confidential ones after 70% of the RT TTL).
  rotate_refresh_token: true,
  // "offline_access": a refresh token only when offline_access was granted
  // (and the client may use refresh_token); "always": whenever the client may
  // use the refresh_token grant.
  refresh_token_policy: 'offline_access',
  access_token_ttl: 3600,
  refresh_token_ttl: 14 * 24 * 3600,
  id_token_ttl: 3600,
  authorization_code_ttl: 60,
  device_code_ttl: 600,
  // `interval` added to the device authorization response (seconds); null
  // leaves it out (RFC 8628 clients then poll every 5 s).
  device_poll_interval: 1,
  // oidc-provider itself never answers slow_down. When true, this server
  // answers slow_down to a poll that comes sooner than the current interval
  // after the previous one, and adds device_slow_down_increment seconds to
  // that device code's interval (RFC 8628 §3.5).
  device_slow_down: false,
  device_slow_down_increment: 5,
  // oidc-provider's strict rule: offline_access only counts when the
  // authorization request has prompt=consent. Off by default (see below).
  offline_access_requires_consent_prompt: false,
  // Scopes left out of the `scope` field of token endpoint responses (the
  // grant and its tokens are unchanged), e.g. ["offline_access", "openid"].
  omit_granted_scopes: [],
};

const DEFAULT_GRANT_TYPES = ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT];

function loadConfig(args) {
  let raw;
  if (args['config-json']) {
    raw = args['config-json'];
  } else if (args.config) {
    raw = readFileSync(args.config, 'utf8');
  } else if (process.env.OIDC_PEER_CONFIG) {
    const value = process.env.OIDC_PEER_CONFIG.trim();
    raw = value.startsWith('{') ? value : readFileSync(value, 'utf8');
  }
  const given = raw ? JSON.parse(raw) : {};
  const config = { ...DEFAULT_CONFIG, ...given };
  // "clients"/"users" replace the defaults; "extra_clients"/"extra_users"
  // are added to them (or to the given ones).
  config.clients = [...(given.clients ?? DEFAULT_CONFIG.clients), ...(given.extra_clients ?? [])]
    .map(normalizeClient);
  config.users = { ...(given.users ?? DEFAULT_CONFIG.users), ...(given.extra_users ?? {}) };
  return config;
}

function normalizeClient(input) {
  const client = { ...input };
  if (!client.client_id) throw new Error('every client needs a client_id');
  client.token_endpoint_auth_method ??= client.client_secret ? 'client_secret_basic' : 'none';
  client.application_type ??= 'native';
  client.grant_types ??= [...DEFAULT_GRANT_TYPES];
  if (client.token_endpoint_auth_method !== 'none' && !client.grant_types.includes('client_credentials')) {
    // harmless and handy for confidential clients
    if (!input.grant_types) client.grant_types.push('client_credentials');
  }
  client.response_types ??= client.grant_types.includes('authorization_code') ? ['code'] : [];
  if (client.grant_types.includes('authorization_code')) {
    client.redirect_uris ??= [...DEFAULT_REDIRECT_URIS];
  } else {
    client.redirect_uris ??= [];
  }
  return client;
}

// ---------------------------------------------------------------- storage

// oidc-provider's default in-memory adapter is an LRU (1000 entries): under
// load it evicts live grants and sessions, which shows up as random
// invalid_grant. This one is a plain Map per model, with expiry checked on
// read and a periodic sweep.

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

class MapStore {
  constructor() {
    this.models = new Map(); // model name -> Map(id -> {payload, expiresAt})
    this.grantMembers = new Map(); // grantId -> Set("Model:id")
    this.userCodes = new Map(); // userCode -> DeviceCode id
    this.sessionUids = new Map(); // session uid -> Session id
  }

  table(model) {
    let t = this.models.get(model);
    if (!t) {
      t = new Map();
      this.models.set(model, t);
    }
    return t;
  }

  get(model, id) {
    const entry = this.table(model).get(id);
    if (!entry) return undefined;
    if (entry.expiresAt !== Infinity && entry.expiresAt <= Date.now()) {
      this.delete(model, id);
      return undefined;
    }
    return entry.payload;
  }

  set(model, id, payload, expiresIn) {
    this.delete(model, id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    this.table(model).set(id, { payload, expiresAt });
    if (GRANTABLE.has(model) && payload.grantId) {
      let members = this.grantMembers.get(payload.grantId);
      if (!members) {
        members = new Set();
        this.grantMembers.set(payload.grantId, members);
      }
      members.add(`${model}:${id}`);
    }
    if (payload.userCode) this.userCodes.set(payload.userCode, id);
    if (model === 'Session' && payload.uid) this.sessionUids.set(payload.uid, id);
  }

  delete(model, id) {
    const t = this.table(model);
    const entry = t.get(id);
    if (!entry) return;
    t.delete(id);
    const { payload } = entry;
    if (GRANTABLE.has(model) && payload.grantId) {
      const members = this.grantMembers.get(payload.grantId);
      if (members) {
        members.delete(`${model}:${id}`);
        if (members.size === 0) this.grantMembers.delete(payload.grantId);
      }
    }
    if (payload.userCode && this.userCodes.get(payload.userCode) === id) {
      this.userCodes.delete(payload.userCode);
    }
    if (model === 'Session' && payload.uid && this.sessionUids.get(payload.uid) === id) {
      this.sessionUids.delete(payload.uid);
    }
  }

  revokeByGrantId(grantId) {
    const members = this.grantMembers.get(grantId);
    if (!members) return 0;
    let n = 0;
    for (const key of [...members]) {
      const i = key.indexOf(':');
      this.delete(key.slice(0, i), key.slice(i + 1));
      n += 1;
    }
    this.grantMembers.delete(grantId);
    return n;
  }

  sweep() {
    const now = Date.now();
    for (const [model, t] of this.models) {
      for (const [id, entry] of t) {
        if (entry.expiresAt <= now) this.delete(model, id);
      }
    }
  }

  entries(model) {
    const out = [];
    for (const id of [...this.table(model).keys()]) {
      const payload = this.get(model, id);
      if (payload) out.push([id, payload]);
    }
    return out;
  }
}

const store = new MapStore();

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  async upsert(id, payload, expiresIn) {
    store.set(this.model, id, payload, expiresIn);
  }

  async find(id) {
    return id ? store.get(this.model, id) : undefined;
  }

  async findByUserCode(userCode) {
    return this.find(store.userCodes.get(userCode));
  }

  async findByUid(uid) {
    return this.find(store.sessionUids.get(uid));
  }

  async consume(id) {
    const payload = store.get(this.model, id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.model, id);
  }

  async revokeByGrantId(grantId) {
    store.revokeByGrantId(grantId);
  }
}

// ---------------------------------------------------------------- pages

function esc(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `
body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}label{display:block;margin:.6em 0 .2em}
input[type=text],input[type=password]{width:100%;padding:.4em;box-sizing:border-box}
button{margin:.8em .4em 0 0;padding:.4em 1.2em}
.error{color:#b00020}.scopes label{display:inline;margin:0}.scopes li{list-style:none}
code{font-size:1.3em}`;

function page(title, body, { pageId } = {}) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body data-page="${esc(pageId ?? '')}">
<h1>${esc(title)}</h1>
${body}
</body>
</html>`;
}

function loginPage({ uid, clientId, scope, username, error }) {
  return page('Sign in', `
<p>Sign in to continue to <strong id="client-id">${esc(clientId)}</strong>.</p>
${error ? `<p class="error" id="error">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="username">Username</label>
  <input type="text" id="username" name="username" value="${esc(username ?? '')}" autofocus>
  <label for="password">Password</label>
  <input type="password" id="password" name="password">
  <button type="submit" id="login-submit" name="action" value="login">Sign in</button>
</form>
<p><a id="abort" href="/interaction/${esc(uid)}/abort">Cancel</a></p>
<p id="requested-scope" hidden>${esc(scope ?? '')}</p>`, { pageId: 'login' });
}

function consentPage({ uid, clientId, accountId, scopes, claims }) {
  const items = scopes
    .map((s) => {
      const id = `scope-${s.replace(/[^A-Za-z0-9_-]/g, '-')}`;
      return `  <li><input type="checkbox" name="scope" value="${esc(s)}" id="${esc(id)}" checked>`
        + ` <label for="${esc(id)}">${esc(s)}</label></li>`;
    })
    .join('\n');
  return page('Authorize access', `
<p><strong id="client-id">${esc(clientId)}</strong> asks to act as <strong id="account-id">${esc(accountId)}</strong>.</p>
<form id="consent-form" method="post" action="/interaction/${esc(uid)}/consent">
  <input type="hidden" name="scopes_offered" value="${esc(scopes.join(' '))}">
  <input type="hidden" name="claims_offered" value="${esc((claims ?? []).join(' '))}">
  ${scopes.length ? `<p>Permissions:</p>\n<ul class="scopes" id="scopes">\n${items}\n</ul>` : '<p>No new permissions are requested.</p>'}
  <button type="submit" id="approve" name="decision" value="approve">Approve</button>
  <button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form>`, { pageId: 'consent' });
}

// oidc-provider gives us the <form> element; the buttons go inside it so a
// plain-HTTP driver that only looks at forms finds them.
function injectIntoForm(form, extra) {
  return form.replace(/<\/form>\s*$/, `${extra}\n</form>`);
}

async function userCodeInputSource(ctx, form, out, err) {
  let msg = '<p>Enter the code displayed on your device.</p>';
  if (err && (err.userCode || err.name === 'NoCodeError')) {
    msg = '<p class="error" id="error">The code you entered is incorrect. Try again.</p>';
  } else if (err && err.name === 'AbortedError') {
    msg = '<p class="error" id="error">The sign-in request was interrupted.</p>';
  } else if (err) {
    msg = '<p class="error" id="error">There was an error processing your request.</p>';
  }
  const body = injectIntoForm(
    form.replace('name="user_code"', 'id="user_code" name="user_code"'),
    '<button type="submit" id="device-continue">Continue</button>',
  );
  ctx.type = 'html';
  // "device-aborted": the user denied (or aborted) the request, the device's
  // next poll gets access_denied.
  const pageId = err?.name === 'AbortedError' ? 'device-aborted' : 'device-input';
  ctx.body = page('Device sign-in', `${msg}\n${body}`, { pageId });
}

async function userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
  const body = injectIntoForm(
    form,
    '<button type="submit" id="device-confirm">Continue</button>\n'
      + '<button type="submit" id="device-abort" name="abort" value="yes">Abort</button>',
  );
  ctx.type = 'html';
  ctx.body = page('Confirm device', `
<p><strong id="client-id">${esc(client.clientName || client.clientId)}</strong></p>
<p>The following code should be displayed on your device:</p>
<p><code id="user-code">${esc(userCode)}</code></p>
${body}`, { pageId: 'device-confirm' });
}

async function successSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Sign-in success', `
<p id="device-success">Your sign-in with ${esc(ctx.oidc.client?.clientId)} was successful, you can now close this page.</p>`,
  { pageId: 'device-success' });
}

async function logoutSource(ctx, form) {
  const body = injectIntoForm(
    form,
    '<button type="submit" id="logout-yes" name="logout" value="yes">Yes, sign me out</button>\n'
      + '<button type="submit" id="logout-no">No, stay signed in</button>',
  );
  ctx.type = 'html';
  ctx.body = page('Sign out', `<p>Do you want to sign out?</p>\n${body}`, { pageId: 'logout' });
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Signed out', '<p id="logout-success">Your sign-out was successful.</p>', {
    pageId: 'logout-success',
  });
}

async function renderError(ctx, out, error) {
  ctx.type = 'html';
  const rows = Object.entries(out)
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd id="${esc(k)}">${esc(v)}</dd>`)
    .join('\n');
  ctx.body = page('Something went wrong', `<dl>\n${rows}\n</dl>`, { pageId: 'error' });
  if (error && (!error.expose || error.statusCode >= 500)) {
    log('render_error', error.stack ?? String(error));
  }
}

// ---------------------------------------------------------------- helpers

async function readForm(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

function asList(value) {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function isLoopback(address) {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1'
    || (address ?? '').startsWith('127.');
}

function splitScope(s) {
  return (s ?? '').split(' ').filter(Boolean);
}

function providerVersion() {
  try {
    const url = new URL('./node_modules/oidc-provider/package.json', import.meta.url);
    return JSON.parse(readFileSync(url, 'utf8')).version;
  } catch {
    return '?';
  }
}

// ---------------------------------------------------------------- main

async function main() {
  const { values: args } = parseArgs({
    options: {
      config: { type: 'string' },
      'config-json': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'exit-on-stdin-close': { type: 'boolean' },
    },
  });
  const config = loadConfig(args);
  const host = args.host ?? config.host ?? '127.0.0.1';
  const port = Number(args.port ?? config.port ?? 0);
  const users = config.users;

  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  const issuer = config.issuer ?? `http://${hostForUrl}:${actualPort}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test-rs256' };

  const stats = {
    started_at: new Date().toISOString(),
    grant_success: {},
    grant_error: {},
    refresh_served: 0,
    logins: 0,
    failed_logins: 0,
    consents: 0,
    denials: 0,
  };
  const bump = (bucket, key) => {
    bucket[key] = (bucket[key] ?? 0) + 1;
  };

  const scopes = [
    ...new Set(['openid', 'offline_access', 'profile', 'email', ...(config.scopes ?? [])]),
  ];

  const rotate = config.rotate_refresh_token;

  const providerConfig = {
    adapter: MapAdapter,
    clients: config.clients,
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      deviceFlow: {
        enabled: true,
        userCodeInputSource,
        userCodeConfirmSource,
        successSource,
      },
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    renderError,
    async findAccount(ctx, sub) {
      const user = users[sub];
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: user.email,
            email_verified: user.email ? true : undefined,
            name: user.name,
            preferred_username: sub,
          };
        },
      };
    },
    async issueRefreshToken(ctx, client, source) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      if (config.refresh_token_policy === 'always') return true;
      return source.scopes.has('offline_access');
    },
    ttl: {
      AccessToken: () => config.access_token_ttl,
      RefreshToken: () => config.refresh_token_ttl,
      IdToken: () => config.id_token_ttl,
      AuthorizationCode: () => config.authorization_code_ttl,
      DeviceCode: () => config.device_code_ttl,
      ClientCredentials: () => config.access_token_ttl,
      Interaction: () => 3600,
      Session: () => 14 * 24 * 3600,
      Grant: () => Math.max(config.refresh_token_ttl, 14 * 24 * 3600),
    },
  };
  if (rotate === true || rotate === false) providerConfig.rotateRefreshToken = rotate;

  const provider = new Provider(issuer, providerConfig);

  // Static clients are validated lazily by oidc-provider; validate them now
  // so that a bad config fails the start, not the first request.
  for (const client of config.clients) {
    try {
      // eslint-disable-next-line no-await-in-loop
      if (!await provider.Client.find(client.client_id)) throw new Error('not found');
    } catch (err) {
      throw new Error(`invalid client ${client.client_id}: ${err.error_description ?? err.message}`);
    }
  }

  // --- events: make failures diagnosable (the error_description sent to
  // the client is deliberately generic).
  const errorEvents = [
    'authorization.error', 'backchannel.error', 'jwks.error', 'check_session.error',
    'discovery.error', 'end_session.error', 'grant.error', 'introspection.error',
    'registration_create.error', 'revocation.error', 'userinfo.error',
    'device_authorization.error', 'code_verification.error', 'pushed_authorization_request.error',
  ];
  for (const name of errorEvents) {
    provider.on(name, (ctx, err) => {
      if (name === 'grant.error') bump(stats.grant_error, ctx.oidc?.params?.grant_type ?? '?');
      if (name === 'grant.error' && err.error === 'authorization_pending') return;
      log(name, {
        error: err.error ?? err.name,
        description: err.error_description,
        detail: err.error_detail,
        client: ctx.oidc?.client?.clientId,
        path: ctx.path,
      });
    });
  }
  provider.on('server_error', (ctx, err) => {
    log('server_error', ctx?.method, ctx?.path, err.stack ?? String(err));
  });
  provider.on('grant.success', (ctx) => {
    const gty = ctx.oidc.params.grant_type;
    bump(stats.grant_success, gty);
    if (gty === 'refresh_token') stats.refresh_served += 1;
  });
  provider.on('grant.revoked', (ctx, grantId) => log('grant.revoked', { grantId }));
  provider.on('device_authorization.success', (ctx, body) => {
    if (config.device_poll_interval !== null && config.device_poll_interval !== undefined) {
      // eslint-disable-next-line no-param-reassign
      body.interval = config.device_poll_interval;
    }
  });

  // --- offline_access without prompt=consent.
  // oidc-provider (like the spec, OIDC Core §11) drops offline_access from an
  // authorization request whose prompt does not include "consent", so no
  // refresh token is issued. Most real providers are lenient; so is this
  // server unless offline_access_requires_consent_prompt is true: it adds
  // "consent" to prompt. Native clients are always asked for consent anyway.
  provider.use(async (ctx, next) => {
    if (!config.offline_access_requires_consent_prompt && ctx.method === 'GET' && ctx.path === '/auth') {
      const q = ctx.query;
      const scope = typeof q.scope === 'string' ? splitScope(q.scope) : [];
      if (scope.includes('offline_access') && typeof q.prompt !== 'object') {
        const prompt = splitScope(q.prompt);
        if (!prompt.includes('consent') && !prompt.includes('none')) {
          ctx.query = { ...q, prompt: [...prompt, 'consent'].join(' ') };
        }
      }
    }
    await next();
  });

  // --- device flow: optional slow_down enforcement
  const devicePolls = new Map(); // device_code -> {last, interval}
  provider.use(async (ctx, next) => {
    await next();
    if (!config.device_slow_down || ctx.path !== '/token' || ctx.method !== 'POST') return;
    const params = ctx.oidc?.params;
    if (params?.grant_type !== DEVICE_CODE_GRANT || !params.device_code) return;
    if (ctx.status !== 400 || ctx.body?.error !== 'authorization_pending') return;
    const now = Date.now();
    const seen = devicePolls.get(params.device_code);
    if (!seen) {
      devicePolls.set(params.device_code, { last: now, interval: config.device_poll_interval ?? 5 });
      return;
    }
    const tooSoon = now - seen.last < seen.interval * 1000;
    seen.last = now;
    if (tooSoon) {
      seen.interval += config.device_slow_down_increment;
      ctx.body = {
        error: 'slow_down',
        error_description: `polling too fast, use an interval of ${seen.interval}s`,
      };
      log('device slow_down', { interval: seen.interval });
    }
  });

  // --- optional: leave scopes out of the token response's `scope`, as the
  // Microsoft identity platform does with offline_access (and sometimes
  // openid). The grant itself is unchanged: the refresh and id tokens are
  // still issued; only what the response says was granted is smaller.
  provider.use(async (ctx, next) => {
    await next();
    const omitted = config.omit_granted_scopes;
    if (!omitted?.length || ctx.path !== '/token' || ctx.method !== 'POST') return;
    if (ctx.status !== 200 || typeof ctx.body?.scope !== 'string') return;
    ctx.body = {
      ...ctx.body,
      scope: splitScope(ctx.body.scope).filter((s) => !omitted.includes(s)).join(' '),
    };
  });

  // --- access log
  provider.use(async (ctx, next) => {
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      if (!ctx.path.startsWith('/__test/')) {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        const err = ctx.status >= 400 && ctx.body?.error ? ` ${ctx.body.error}` : '';
        log(`${ctx.method} ${ctx.path} ${ctx.status}${err} ${ms.toFixed(1)}ms`);
      }
    }
  });

  // --- interaction pages and admin endpoints
  provider.use(async (ctx, next) => {
    const m = ctx.path.match(/^\/interaction\/([^/]+)(?:\/(login|consent|abort))?$/);
    if (m) {
      await handleInteraction(ctx, m[1], m[2]);
      return;
    }
    if (ctx.path === '/favicon.ico') {
      ctx.status = 204;
      return;
    }
    if (ctx.path.startsWith('/__test/')) {
      await handleAdmin(ctx);
      return;
    }
    await next();
  });

  async function handleInteraction(ctx, uid, action) {
    ctx.set('cache-control', 'no-store');
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Something went wrong', `<p class="error" id="error">${esc(err.message)}</p>`, { pageId: 'error' });
      log('interaction lookup failed', { uid, error: err.message });
      return;
    }
    if (details.uid !== uid) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Something went wrong', '<p class="error" id="error">interaction mismatch (stale page?)</p>', { pageId: 'error' });
      return;
    }
    const { prompt, params } = details;
    const clientId = params.client_id;

    const finish = async (result) => {
      // Merge with the login step: with prompt=login (a fresh login, as tokenctl asks by
      // default) the consent step's result must still carry the login, or the provider
      // asks for the login again.
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
        mergeWithLastSubmission: true,
      });
      ctx.status = 303;
      ctx.redirect(returnTo);
    };

    if (action === 'abort') {
      stats.denials += 1;
      await finish({ error: 'access_denied', error_description: 'End-User aborted interaction' });
      return;
    }

    if (ctx.method === 'GET' && !action) {
      ctx.type = 'html';
      if (prompt.name === 'login') {
        ctx.body = loginPage({ uid, clientId, scope: params.scope, username: params.login_hint });
      } else if (prompt.name === 'consent') {
        ctx.body = consentPage(consentModel(details));
      } else {
        ctx.status = 400;
        ctx.body = page('Something went wrong', `<p class="error" id="error">unsupported prompt ${esc(prompt.name)}</p>`, { pageId: 'error' });
      }
      return;
    }

    if (ctx.method !== 'POST') {
      ctx.status = 405;
      return;
    }
    const form = await readForm(ctx);

    if (action === 'login') {
      if (prompt.name !== 'login') {
        ctx.status = 400;
        ctx.type = 'html';
        ctx.body = page('Something went wrong', '<p class="error" id="error">login is not expected now</p>', { pageId: 'error' });
        return;
      }
      const username = String(form.username ?? '');
      const user = Object.hasOwn(users, username) ? users[username] : undefined;
      if (!user || String(form.password ?? '') !== String(user.password)) {
        stats.failed_logins += 1;
        log('login failed', { username });
        ctx.type = 'html';
        ctx.body = loginPage({
          uid, clientId, scope: params.scope, username, error: 'Invalid username or password.',
        });
        return;
      }
      stats.logins += 1;
      await finish({ login: { accountId: username } });
      return;
    }

    if (action === 'consent') {
      if (prompt.name !== 'consent') {
        ctx.status = 400;
        ctx.type = 'html';
        ctx.body = page('Something went wrong', '<p class="error" id="error">consent is not expected now</p>', { pageId: 'error' });
        return;
      }
      if (form.decision === 'deny') {
        stats.denials += 1;
        await finish({ error: 'access_denied', error_description: 'End-User aborted interaction' });
        return;
      }
      const model = consentModel(details);
      const user = users[details.session?.accountId] ?? {};
      const denied = new Set(asList(user.deny_scopes));
      let chosen;
      if (form.scopes_offered !== undefined) {
        const offered = new Set(splitScope(String(form.scopes_offered)));
        const ticked = new Set(asList(form.scope));
        chosen = model.scopes.filter((s) => !offered.has(s) || ticked.has(s));
      } else {
        chosen = model.scopes;
      }
      const granted = ['openid', ...chosen].filter((s) => !denied.has(s));
      const requested = splitScope(params.scope);
      const rejected = requested.filter((s) => s !== 'openid' && !granted.includes(s));

      const { Grant } = provider;
      let grant;
      if (details.grantId) grant = await Grant.find(details.grantId);
      if (!grant) {
        grant = new Grant({ accountId: details.session.accountId, clientId });
      }
      const missingScopes = prompt.details.missingOIDCScope ?? [];
      const toAdd = missingScopes.filter((s) => granted.includes(s));
      if (toAdd.length) grant.addOIDCScope(toAdd.join(' '));
      const toReject = missingScopes.filter((s) => rejected.includes(s));
      if (toReject.length) grant.rejectOIDCScope(toReject.join(' '));
      if (prompt.details.missingOIDCClaims?.length) {
        grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      }
      for (const [indicator, s] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, s.join(' '));
      }
      const grantId = await grant.save();
      stats.consents += 1;
      log('consent', {
        account: details.session.accountId, client: clientId, grantId,
        granted: grant.getOIDCScope(), rejected: toReject.join(' ') || undefined,
      });
      await finish({ consent: { grantId } });
      return;
    }
    ctx.status = 404;
  }

  function consentModel(details) {
    const missing = details.prompt.details.missingOIDCScope ?? [];
    return {
      uid: details.uid,
      clientId: details.params.client_id,
      accountId: details.session?.accountId,
      scopes: missing.filter((s) => s !== 'openid'),
      claims: details.prompt.details.missingOIDCClaims ?? [],
    };
  }

  function grantView(id, g) {
    return {
      grant_id: id,
      account: g.accountId,
      client_id: g.clientId,
      scope: g.openid?.scope ?? '',
      rejected_scope: g.rejected?.openid?.scope ?? '',
      tokens: [...(store.grantMembers.get(id) ?? [])].map((k) => k.split(':')[0]),
    };
  }

  async function revokeGrant(grantId) {
    const n = store.revokeByGrantId(grantId);
    store.delete('Grant', grantId);
    log('admin revoked grant', { grantId, tokens: n });
    return n;
  }

  async function handleAdmin(ctx) {
    if (!isLoopback(ctx.req.socket.remoteAddress)) {
      ctx.status = 403;
      return;
    }
    ctx.set('cache-control', 'no-store');
    const path = ctx.path.slice('/__test'.length);
    const q = ctx.query;
    let form = {};
    if (ctx.method === 'POST') {
      const raw = await readForm(ctx);
      form = raw;
    }
    const arg = (name) => form[name] ?? q[name];

    if (path === '/health') {
      ctx.body = { ok: true, issuer };
    } else if (path === '/stats' && ctx.method === 'GET') {
      ctx.body = stats;
    } else if (path === '/stats/reset' && ctx.method === 'POST') {
      for (const key of ['grant_success', 'grant_error']) stats[key] = {};
      for (const key of ['refresh_served', 'logins', 'failed_logins', 'consents', 'denials']) stats[key] = 0;
      ctx.body = stats;
    } else if (path === '/grants' && ctx.method === 'GET') {
      const user = arg('user');
      ctx.body = {
        grants: store.entries('Grant')
          .filter(([, g]) => !user || g.accountId === user)
          .map(([id, g]) => grantView(id, g)),
      };
    } else if (path === '/revoke' && ctx.method === 'POST') {
      const user = arg('user');
      const grantId = arg('grant_id');
      const clientId = arg('client_id');
      if (!user && !grantId) {
        ctx.status = 400;
        ctx.body = { error: 'give user or grant_id' };
        return;
      }
      const revoked = [];
      for (const [id, g] of store.entries('Grant')) {
        if (grantId && id !== grantId) continue;
        if (user && g.accountId !== user) continue;
        if (clientId && g.clientId !== clientId) continue;
        await revokeGrant(id);
        revoked.push(id);
      }
      if (user && !clientId) {
        // also end the user's browser sessions, so the next authorization
        // asks for the password again
        for (const [id, s] of store.entries('Session')) {
          if (s.accountId === user) store.delete('Session', id);
        }
      }
      ctx.body = { revoked };
    } else if (path === '/reject-scope' && ctx.method === 'POST') {
      // take scopes away from existing grants: the next refresh gives an
      // access token without them
      const user = arg('user');
      const grantId = arg('grant_id');
      const scope = splitScope(arg('scope'));
      const changed = [];
      for (const [id, g] of store.entries('Grant')) {
        if (grantId && id !== grantId) continue;
        if (user && g.accountId !== user) continue;
        const grant = await provider.Grant.find(id);
        if (!grant) continue;
        grant.rejectOIDCScope(scope.join(' '));
        await grant.save();
        changed.push(grantView(id, store.get('Grant', id)));
      }
      ctx.body = { grants: changed };
    } else {
      ctx.status = 404;
      ctx.body = { error: 'unknown admin endpoint' };
    }
  }

  server.on('request', provider.callback());

  const sweeper = setInterval(() => store.sweep(), 30_000);
  sweeper.unref();

  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (args['exit-on-stdin-close']) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }

  log(`ready ${issuer} (node ${process.version}, oidc-provider ${providerVersion()})`);
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port: actualPort, pid: process.pid })}\n`);
}

main().catch((err) => {
  log('fatal', err.stack ?? String(err));
  process.exit(1);
});

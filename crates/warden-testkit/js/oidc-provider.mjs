// A real OpenID Provider (the certified npm package `oidc-provider`) for Warden's tests.
// Usage: node oidc-provider.mjs CONFIG.json
// CONFIG: { "port": 0, "clients": [...], "accounts": { "alice": { "email": ..., "groups": [...] } } }
// Prints "listening http://127.0.0.1:PORT" when ready. Any login name is accepted by the
// development login form; claims come from CONFIG.accounts (or just `sub` for unknown names).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const server = (await import('node:http')).createServer();
await new Promise((resolve) => server.listen(config.port || 0, '127.0.0.1', resolve));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, userinfo: { enabled: true } },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  conformIdTokenClaims: config.conformIdTokenClaims ?? true,
  ttl: { AuthorizationCode: 60, IdToken: config.idTokenTtl ?? 3600, AccessToken: 3600, Interaction: 600, Session: 600, Grant: 600 },
  async findAccount(ctx, id) {
    const account = (config.accounts || {})[id] || {};
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...account };
      },
    };
  },
  async loadExistingGrant(ctx) {
    // Grant what the client asks for, so no consent screen is needed.
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'groups']);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
server.on('request', provider.callback());
console.log(`listening ${issuer}`);

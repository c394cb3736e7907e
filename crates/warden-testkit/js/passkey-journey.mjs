// Drives Debian's Chromium (through playwright-core) with a CDP virtual authenticator through
// Warden's passkey pages. Usage: node passkey-journey.mjs BASE_URL ENROLL_URL USER SHOTS_DIR
// Prints one JSON line per step: {"step": ..., "ok": true|false, "detail": ...}.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, enrollUrl, user, shots] = process.argv.slice(2);
const report = (step, ok, detail) => console.log(JSON.stringify({ step, ok, detail }));

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'warden-chromium-')), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
});
const page = context.pages()[0] ?? await context.newPage();
const cdp = await context.newCDPSession(page);
await cdp.send('WebAuthn.enable', { enableUI: false });
const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
  options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
    isUserVerified: true, automaticPresenceSimulation: true },
});

async function status() {
  return (await page.locator('#passkey-status').textContent({ timeout: 2000 }).catch(() => '')) ?? '';
}
async function signedIn() {
  return page
    .waitForSelector('text=You are signed in.', { timeout: 10000 })
    .then(() => page.url() === `${base}/account`)
    .catch(() => false);
}
async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState();
}
async function signIn() {
  await page.goto(`${base}/`);
  await page.fill('#passkey-user', user);
  await page.click('#passkey-signin');
}

try {
  // Enrollment link, then register a passkey.
  await page.goto(enrollUrl);
  await page.waitForURL(`${base}/account`);
  await page.screenshot({ path: join(shots, 'enroll.png') });
  await page.click('#passkey-register');
  report('registered', await signedIn(), await status());
  await page.screenshot({ path: join(shots, 'account.png') });

  // Sign out, sign in again with the passkey.
  await signOut();
  report('signed-out', (await page.content()).includes('Signed out'));
  await signIn();
  // A passkey sign-in opens the console.
  report('signed-in', await page
    .waitForURL(`${base}/console`, { timeout: 10000 })
    .then(() => page.locator('h1').textContent())
    .then((h) => h === 'My access')
    .catch(() => false));
  await signOut();

  // Without user verification the browser refuses to assert at all.
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
  await signIn();
  await page.waitForFunction(() => document.getElementById('passkey-status')?.dataset.state === 'error', null, { timeout: 15000 });
  report('no-user-verification', !page.url().endsWith('/account') && !page.url().endsWith('/console'), await status());
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });

  // A cloned authenticator: the same key with an older sign count.
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  const original = credentials[0];
  await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: original.credentialId });
  await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...original, signCount: 0 } });
  await signIn();
  await page.waitForFunction(() => document.getElementById('passkey-status')?.dataset.state === 'error', null, { timeout: 15000 });
  report('clone-refused', !page.url().endsWith('/account') && !page.url().endsWith('/console'), await status());
  await page.screenshot({ path: join(shots, 'clone-refused.png') });

  // Locked now: even the genuine count is refused.
  await signIn();
  await page.waitForFunction(() => document.getElementById('passkey-status')?.dataset.state === 'error', null, { timeout: 15000 });
  report('locked', !page.url().endsWith('/account') && !page.url().endsWith('/console'), await status());
} catch (error) {
  report('error', false, String(error && error.stack || error));
} finally {
  await context.close();
}

// A person signs in through the identity provider in Chromium, must register a passkey before
// anything else, signs out, signs in at the provider again and must then confirm with the
// passkey. Usage: node oidc-passkey-journey.mjs BASE_URL LOGIN SHOTS_DIR
// Prints one JSON line per step: {"step": ..., "ok": true|false, "detail": ...}.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, login, shots, cliUrl] = process.argv.slice(2);
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
await cdp.send('WebAuthn.addVirtualAuthenticator', {
  options: { protocol: 'ctap2', transport: 'usb', hasResidentKey: true, hasUserVerification: true,
    isUserVerified: true, automaticPresenceSimulation: true },
});
const text = (t) => page.waitForSelector(`text=${t}`, { timeout: 10000 }).then(() => true).catch(() => false);

try {
  await page.goto(`${base}/`);
  await page.click('text=Sign in with corp');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'x');
  await page.click('button[type=submit]');
  report('idp-first', await text('Register a passkey or security key to continue'));
  await page.screenshot({ path: join(shots, 'enroll-after-idp.png') });
  await page.click('#passkey-register');
  report('registered', await text('You are signed in.'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState();

  // The provider still knows the browser: it sends it straight back; the passkey is next.
  await page.goto(`${base}/`);
  await page.click('text=Sign in with corp');
  report('idp-again', await text('Confirm with your passkey to continue.'));
  await page.click('#passkey-confirm');
  report('confirmed', await text('My access'));
  await page.screenshot({ path: join(shots, 'signed-in-after-idp.png') });

  if (cliUrl) {
    // `warden login`: signed out, the browser opens the CLI's address and goes through the
    // provider and the passkey before authorizing; the answer goes to the CLI's loopback.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForLoadState();
    await page.goto(cliUrl);
    await page.click('text=Sign in with corp');
    await page.waitForSelector('#passkey-confirm', { timeout: 10000 });
    await page.click('#passkey-confirm');
    await page.waitForSelector('text=Authorize the CLI', { timeout: 10000 });
    await page.screenshot({ path: join(shots, 'authorize-cli.png') });
    await page.click('button[type=submit]');
    report('cli', await text('The Warden CLI is signed in'));
  }
} catch (error) {
  const content = await page.content().catch(() => '');
  report('error', false, `${error && error.message || error} at ${page.url()}: ${content.slice(0, 600)}`);
} finally {
  await context.close();
}

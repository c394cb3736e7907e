// What the console journeys share: Debian's Chromium launched headless for loopback only,
// a person enrolled and signed in with a CDP virtual authenticator, screenshots and the
// step lines the Rust tests read.
import { chromium } from 'playwright-core';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';

/** Prints one step: {"step": ..., "ok": true|false, "detail": ...}. */
export const report = (step, ok, detail) => console.log(JSON.stringify({ step, ok, detail }));

/** Chromium, headless, resolving nothing but localhost and 127.0.0.1. */
export const launch = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
});

/**
 * A person with a browser context and authenticator of their own, enrolled through their
 * link, signed out, and signed in again with the passkey: they land on the console. Any
 * Content-Security-Policy violation their pages log is added to `violations`.
 */
export async function person(browser, base, name, link, violations) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (load|execute|apply|frame|connect)/.test(m.text())) violations.push(`${name}: ${m.text()}`);
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(link);
  await page.waitForURL(`${base}/account`);
  await page.click('#passkey-register');
  await page.waitForSelector('text=You are signed in.', { timeout: 15000 });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForLoadState();
  await page.goto(`${base}/`);
  await page.fill('#passkey-user', name);
  await page.click('#passkey-signin');
  await page.waitForURL(`${base}/console`, { timeout: 15000 });
  return page;
}

/** A full-page screenshot into `dir`. */
export const shot = (page, dir, file) => page.screenshot({ path: join(dir, file), fullPage: true });

/**
 * Asks the test to act (run an agent, stop it, open an SSH session) and waits for its
 * answer: prints a `wait` step naming what is asked, then waits for the file
 * `signals/NAME`, which the test writes when it is done, and returns its text.
 */
export async function ask(signals, name, detail, seconds = 60) {
  report('wait', true, { name, detail });
  const file = join(signals, name);
  for (let i = 0; i < seconds * 10; i += 1) {
    if (existsSync(file)) return readFileSync(file, 'utf8');
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the test never answered ${name}`);
}

/** Reloads `page` at `url` until `check(page)` is true, for up to `seconds`. */
export async function until(page, url, check, seconds = 20) {
  for (let i = 0; i < seconds * 4; i += 1) {
    await page.goto(url);
    if (await check(page)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

// Drives Debian's Chromium (through playwright-core) through Warden's console as two people,
// each with a CDP virtual authenticator: passkey sign-in, a request approved by another
// person, a recorded session played, a review item decided, an overdue finding found, the
// audit log verified, and every page photographed. Any Content-Security-Policy violation fails.
// Usage: node console-journey.mjs BASE ALICE_ENROLL_URL BOB_ENROLL_URL SHOTS_DIR
// Prints one JSON line per step: {"step": ..., "ok": true|false, "detail": ...}.
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { launch, person as enrolled, report, shot as shotInto } from './console-lib.mjs';

// axe-core, the accessibility engine, from this directory's pinned packages.
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const [base, aliceLink, bobLink, shots] = process.argv.slice(2);
const violations = [];
const browser = await launch();
const person = (name, link) => enrolled(browser, base, name, link, violations);
const shot = (page, file) => shotInto(page, shots, file);
const heading = (page) => page.locator('h1').textContent();
const cellTexts = (page, selector) => page.locator(selector).allTextContents();

try {
  // Sign in with a passkey.
  const alice = await person('alice', aliceLink);
  report('alice-signed-in', (await heading(alice)) === 'My access', alice.url());
  const hosts = await cellTexts(alice, '#my-hosts tbody tr td:first-child');
  report('my-hosts', hosts.includes('db-1') && !hosts.includes('web-1'), hosts);
  await shot(alice, 'my-access.png');

  // Keyboard: the first Tab reaches the skip link.
  await alice.keyboard.press('Tab');
  report('skip-link', (await alice.evaluate(() => document.activeElement?.textContent)) === 'Skip to content');

  // Request access.
  await alice.selectOption('#group', 'web');
  await alice.selectOption('#duration', '1h');
  await alice.fill('#reason', 'INC-42: the web tier is down');
  await alice.click('button:has-text("Request")');
  await alice.waitForURL(`${base}/console?done=requested`);
  const mine = await alice.locator('.requests tbody tr').first().textContent();
  report('requested', mine.includes('web') && mine.includes('pending'), mine);
  await shot(alice, 'requested.png');

  // Pages alice may not open are refused, and a forged form is refused.
  const denied = await alice.goto(`${base}/console/audit`);
  report('audit-denied', denied.status() === 403, (await alice.locator('.notice').textContent()).trim());
  await shot(alice, 'denied.png');
  const forged = await alice.evaluate(async () => (await fetch('/console/access/request', {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'csrf=forged&group=web&duration=1h&reason=x',
  })).status);
  report('csrf-refused', forged === 403, forged);

  // Approve it as another person.
  const bob = await person('bob', bobLink);
  await bob.click('nav a:has-text("Approvals")');
  await bob.waitForURL(`${base}/console/approvals`);
  await shot(bob, 'approvals.png');
  const row = bob.locator('#inbox tr', { hasText: 'INC-42' });
  const progress = await row.locator('.approvals').textContent();
  report('progress', progress === '0 of 1 approval', progress);
  await row.locator('input[name=reason]').fill('on call this week');
  await row.locator('button:has-text("Approve")').click();
  await bob.waitForURL(`${base}/console/approvals?done=approved`);
  const decided = await bob.locator('main').textContent();
  report('approved', decided.includes('Approved.') && decided.includes('user:bob: approved — on call this week'), null);

  // alice now reaches web-1 through the temporary membership.
  await alice.goto(`${base}/console`);
  const groups = await cellTexts(alice, '#my-groups li');
  const after = await cellTexts(alice, '#my-hosts tbody tr td:first-child');
  report('granted', groups.includes('web') && after.includes('web-1'), { groups, after });
  await shot(alice, 'my-access-granted.png');

  // The keyboard alone: from the top of the page, Tab to the group picker, choose by typing,
  // Tab on to the reason, type it, Enter sends the request.
  let tabs = 0;
  while (tabs < 80 && !(await alice.evaluate(() => document.activeElement?.id === 'group'))) {
    await alice.keyboard.press('Tab');
    tabs += 1;
  }
  await alice.keyboard.type('admins');
  await alice.keyboard.press('Tab');
  await alice.keyboard.press('Tab');
  const onReason = await alice.evaluate(() => document.activeElement?.id);
  await alice.keyboard.type('INC-43: keyboard only');
  await alice.keyboard.press('Enter');
  await alice.waitForURL(`${base}/console?done=requested`);
  const typed = await alice.locator('.requests tbody tr', { hasText: 'INC-43' }).textContent();
  report('keyboard-request', onReason === 'reason' && typed.includes('admins') && typed.includes('pending'), { tabs, onReason, typed });

  // A phone-sized screen.
  await alice.setViewportSize({ width: 390, height: 844 });
  await alice.reload();
  const overflow = await alice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  // The navigation folds into a menu that opens on a tap.
  const wide = await alice.locator('nav.wide').isVisible();
  const folded = await alice.locator('details.menu nav a:has-text("My access")').isVisible();
  await shot(alice, 'my-access-phone.png');
  await alice.click('details.menu summary');
  const opened = await alice.locator('details.menu nav a:has-text("My access")').isVisible();
  report('phone', overflow <= 0 && !wide && !folded && opened, { overflow, wide, folded, opened });
  await shot(alice, 'menu-phone.png');

  // Play a recorded session.
  await bob.click('nav a:has-text("Sessions")');
  await shot(bob, 'sessions.png');
  await bob.locator('#past-sessions tbody tr a').first().click();
  await bob.waitForSelector('[data-frames][data-state]', { timeout: 15000 });
  const state = await bob.locator('[data-frames]').getAttribute('data-state');
  if (state !== 'ready') throw new Error(`player ${state}: ${await bob.locator('#player-status').textContent()}`);
  await bob.selectOption('#speed', '16');
  await bob.click('#play');
  await bob.waitForSelector('[data-frames][data-state=ended]', { timeout: 30000 });
  const screen = await bob.locator('#screen').textContent();
  report('played', screen.includes('hello-console-42'), screen);
  await shot(bob, 'playback.png');
  // Seeking back to the start clears the screen; forward again shows it.
  await bob.locator('#seek').fill('0');
  const cleared = !(await bob.locator('#screen').textContent()).includes('hello-console-42');
  await bob.locator('#seek').fill('1000');
  report('seek', cleared && (await bob.locator('#screen').textContent()).includes('hello-console-42'));

  // Transcript search.
  await bob.goto(`${base}/console/sessions`);
  await bob.fill('#q', 'hello-console-42');
  await bob.click('button:has-text("Search")');
  await bob.waitForSelector('article.match', { timeout: 10000 });
  report('search', (await bob.locator('article.match').count()) >= 1);
  await shot(bob, 'search.png');

  // Decide a review item.
  await bob.click('nav a:has-text("Reviews")');
  await shot(bob, 'reviews.png');
  await bob.locator('#reviews tbody a').first().click();
  const item = bob.locator('#review-items tbody tr', { hasText: 'alice' }).filter({ hasText: 'ops' });
  await item.locator('input[type=checkbox]').check();
  await bob.fill('#reason', 'alice is on the ops rota');
  await bob.click('button:has-text("Keep access")');
  await bob.waitForURL(/done=decided/);
  const decision = await bob.locator('#review-items tbody tr', { hasText: 'alice' }).filter({ hasText: 'ops' }).locator('td.decision').textContent();
  report('reviewed', decision.includes('keep') && decision.includes('alice is on the ops rota'), decision);
  await shot(bob, 'review.png');

  // Find an overdue vulnerability: every unresolved finding is listed, and the server
  // narrows the table to the overdue ones when asked.
  await bob.click('nav a:has-text("Vulnerabilities")');
  const overdue = Number(await bob.locator('#overdue-count').textContent());
  const all = await bob.locator('#findings tbody tr').count();
  await bob.check('#overdue');
  await bob.click('form.filters button[type=submit]');
  await bob.waitForURL(/overdue=1/);
  const rows = await bob.locator('#findings tbody tr').count();
  const late = await bob.locator('#findings tbody td.overdue').count();
  report('overdue', overdue > 0 && rows === overdue && late === rows && all >= rows, { overdue, rows, late, all });
  // The severity filter narrows the table too: only Criticals, fewer than all.
  await bob.selectOption('#severity', 'critical');
  await bob.click('form.filters button[type=submit]');
  await bob.waitForURL(/severity=critical/);
  const critical = await bob.locator('#findings tbody tr').count();
  const criticalBadges = await bob.locator('#findings tbody span.sev-critical').count();
  report('severity', critical > 0 && critical < all && criticalBadges === critical, { critical, criticalBadges, all });
  await shot(bob, 'vulns.png');
  await bob.locator('#findings tbody tr a').first().click();
  await bob.waitForSelector('#finding');
  report('finding', (await bob.locator('#finding').textContent()).includes('overdue'));
  await shot(bob, 'finding.png');
  // Triage it there: a risk accepted for too long is refused beside the form, with the
  // CLI's words; then accepted for 30 days.
  await bob.fill('#accept-until', '400d');
  await bob.fill('#accept-reason', 'vendor fix due in Q3');
  await bob.click('button:has-text("Accept the risk")');
  const refusal = await bob.locator('#accept-error').textContent();
  report('triage-refused', refusal.includes('366'), refusal);
  await shot(bob, 'finding-refused.png');
  await bob.fill('#accept-until', '30d');
  await bob.fill('#accept-reason', 'vendor fix due in Q3');
  await bob.click('button:has-text("Accept the risk")');
  await bob.waitForURL(/done=triaged/);
  const triaged = await bob.locator('#state').textContent();
  report('triaged', triaged.includes('accepted') && triaged.includes('vendor fix due in Q3'), triaged);

  // The audit log: filtered to the approval, and one event proven in the signed log.
  await bob.goto(`${base}/console/audit`);
  await bob.fill('#action', 'access.approve');
  await bob.click('button:has-text("Show")');
  const approvals = await cellTexts(bob, '#audit-events tbody tr td:nth-child(3)');
  report('audit-filter', approvals.length === 1 && approvals[0] === 'user:bob', approvals);
  await bob.locator('#audit-events tbody a:has-text("verify")').first().click();
  const proof = await bob.locator('#proof').textContent();
  report('audit-proof', proof.includes('is in the signed log'), proof);
  report('checkpoint', (await bob.locator('#checkpoint-status').textContent()) === 'valid');
  await shot(bob, 'audit.png');

  // Compliance: the controls, then one test's population (the SSH session above, recorded).
  await bob.click('nav a:has-text("Compliance")');
  await bob.waitForSelector('#controls');
  await bob.locator('#tests a:has-text("ssh-recorded")').first().click();
  await bob.waitForSelector('#test');
  const sessions = await cellTexts(bob, '#population tbody tr td:nth-child(3)');
  report('compliance', sessions.length >= 1 && sessions.every((r) => r === 'pass'), sessions);
  await shot(bob, 'compliance.png');

  // The policy explained.
  await bob.click('nav a:has-text("Policy")');
  await bob.fill('#principal', 'user:alice');
  await bob.fill('#action', 'ssh');
  await bob.fill('#resource', 'host:db-1');
  await bob.fill('#context', '{"login": "root"}');
  await bob.click('button:has-text("Explain")');
  const explained = await bob.locator('#explanation').textContent();
  report('explain', explained.startsWith('allow'), explained);
  await shot(bob, 'policy.png');
  // Edit it: a change that fails the set's tests is refused beside the editor; a passing
  // one is checked (a dry run with its diff and tests), then applied.
  await bob.click('a:has-text("Edit the policy")');
  await bob.goto(`${base}/console/policy/edit?file=ssh.cedar`);
  const original = await bob.inputValue('#policy-text');
  await bob.fill('#policy-text', `${original}\n@id("everyone")\npermit (principal, action == Warden::Action::"ssh", resource);\n`);
  await bob.click('button:has-text("Check (dry run)")');
  const refusedPolicy = await bob.locator('#policy-error').textContent();
  report('policy-refused', refusedPolicy.includes('tests failed'), refusedPolicy);
  await bob.fill('#policy-text', `${original}\n@id("web-reads-audit")\npermit (principal in Warden::Group::"web", action == Warden::Action::"read_audit", resource);\n`);
  await bob.click('button:has-text("Check (dry run)")');
  await bob.waitForSelector('#checked');
  await shot(bob, 'policy-edit.png');
  await bob.click('button:has-text("Apply")');
  await bob.waitForURL(/done=applied/);
  report('policy-applied', (await bob.locator('#active-h + p').textContent()).includes('Version'));

  // The inventory and settings.
  for (const [link, file, table] of [['People', 'people.png', '#people'], ['Groups', 'groups.png', '#groups'],
    ['Hosts', 'hosts.png', '#hosts'], ['Settings', 'settings.png', '#sla']]) {
    await bob.click(`nav a:has-text("${link}")`);
    await bob.waitForSelector(table);
    await shot(bob, file);
  }
  report('inventory', (await cellTexts(bob, '#sla tbody td:first-child')).includes('default'));
  // On a phone, tables are cards: nothing scrolls sideways, each cell names its column, and
  // each row's action is on screen.
  await bob.setViewportSize({ width: 390, height: 844 });
  const cards = {};
  for (const [path, button] of [['/console/tokens', 'Revoke'], ['/console/people', 'Disable'], ['/console/vulns', null]]) {
    await bob.goto(`${base}${path}`);
    const sideways = await bob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const label = await bob.locator('main table tbody td[data-label]').first().getAttribute('data-label');
    let inside = true;
    if (button) {
      const box = await bob.locator(`main table tbody button:has-text("${button}")`).first().boundingBox();
      inside = box !== null && box.x >= 0 && box.x + box.width <= 390;
    }
    cards[path] = { sideways, label, inside };
  }
  await shot(bob, 'vulns-phone.png');
  report('cards', Object.values(cards).every((c) => c.sideways <= 0 && c.label && c.inside), cards);
  await bob.setViewportSize({ width: 1280, height: 900 });
  // Accessibility: axe-core on every page as bob sees it, at a desktop's and a phone's
  // width; no serious or critical violation. axe is injected into a context that shares
  // bob's session but lets its script in past the CSP; the pages are the same.
  const stored = await bob.context().storageState();
  const audit = await browser.newContext({ storageState: stored, bypassCSP: true, viewport: { width: 1280, height: 900 } });
  const a11y = await audit.newPage();
  const found = [];
  const pages = ['/console', '/console/approvals', '/console/reviews', '/console/reviews/new', '/console/sessions',
    '/console/audit', '/console/compliance', '/console/people', '/console/people/invite', '/console/groups',
    '/console/groups/new', '/console/groups/ops', '/console/tokens', '/console/hosts', '/console/hosts/join',
    '/console/policy', '/console/policy/edit', '/console/vulns', '/console/vulns?overdue=1', '/console/settings',
    '/account', '/no/such/page'];
  await a11y.goto(`${base}/console/vulns`);
  const first = await a11y.locator('#findings tbody a').first().getAttribute('href');
  pages.push(first);
  for (const [width, list] of [[1280, pages], [390, pages]]) {
    await a11y.setViewportSize({ width, height: 900 });
    for (const path of list) {
      await a11y.goto(`${base}${path}`);
      // Every page kept as a picture, at both widths.
      await a11y.screenshot({ path: join(shots, `page${path.replace(/[^a-z0-9]+/gi, '-')}-${width}.png`), fullPage: true });
      await a11y.addScriptTag({ path: axePath });
      const result = await a11y.evaluate(async () => {
        // eslint-disable-next-line no-undef
        const r = await axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
      });
      for (const v of result) {
        if (v.impact === 'serious' || v.impact === 'critical') found.push({ path, width, ...v });
      }
    }
  }
  report('axe', found.length === 0, { checked: pages.length * 2, found });
  await audit.close();
  report('csp', violations.length === 0, violations);
} catch (error) {
  report('error', false, String(error && error.stack || error));
} finally {
  await browser.close();
}

// An administrator's day in Warden's console, in Debian's Chromium with a CDP virtual
// authenticator, alongside a test that plays the world outside the browser (the host that
// runs the agent, the person on SSH): the getting-started checklist; invite a person, who
// enrolls a passkey and signs in, then disable them and see what offboarding ended and that
// their browser is signed out; make a join token, run its command (the test does), see the
// host online with its agent's version, stop the agent (the test does) and see it offline;
// end a live SSH session with a reason; start a review campaign and decide every item at once
// with one justification; and see the checklist tick off what was done. Any
// Content-Security-Policy violation fails.
// Usage: node console-admin-journey.mjs BASE DANA_ENROLL_URL SHOTS_DIR SIGNALS_DIR
// Prints one JSON line per step; a `wait` step asks the test to act (see `ask`).
import { ask, launch, person as enrolled, report, shot as shotInto, until } from './console-lib.mjs';

const [base, danaLink, shots, signals] = process.argv.slice(2);
const violations = [];
const browser = await launch();
const person = (name, link) => enrolled(browser, base, name, link, violations);
const shot = (page, file) => shotInto(page, shots, file);
const ticked = (page) => page.locator('#getting-started li.done').evaluateAll((items) => items.map((i) => i.id));

try {
  const dana = await person('dana', danaLink);

  // The checklist, before: the lab's hosts joined and the policy made its own, but no SCIM
  // token and no scan imported.
  const before = await ticked(dana);
  const steps = await dana.locator('#getting-started li').count();
  report('checklist-before', steps === 5 && !before.includes('scim') && !before.includes('first-import'), { steps, before });
  await shot(dana, 'admin-checklist-before.png');

  // Groups are not hers: the form is refused (and the refusal recorded).
  const refused = await dana.goto(`${base}/console/groups/new`);
  report('groups-refused', refused.status() === 403, refused.status());
  await dana.goto(`${base}/console`);

  // Invite erin: her one-time link is shown once; she enrolls a passkey with it and signs in.
  await dana.click('a:has-text("People")');
  await dana.click('a:has-text("Invite a person")');
  await dana.fill('#invite-name', 'erin');
  await dana.fill('#invite-display_name', 'Erin Example');
  await dana.fill('#invite-email', 'erin@example.com');
  await dana.click('button:has-text("Invite")');
  const link = await dana.inputValue('#enrollment-link');
  report('invited', link.startsWith(`${base}/`), link);
  await shot(dana, 'admin-invited.png');
  const erin = await person('erin', link);
  report('erin-signed-in', erin.url() === `${base}/console`, erin.url());

  // Disable her: the page says what offboarding ended, and her browser is signed out.
  await dana.goto(`${base}/console/people`);
  await dana.click('button[aria-label="Disable erin"]');
  await dana.waitForURL(/done=disabled/);
  const offboarded = (await dana.locator('.notice').first().textContent()).trim();
  report('disabled', offboarded.includes('Disabled erin.') && offboarded.includes('1 web session'), offboarded);
  await shot(dana, 'admin-disabled.png');
  await erin.goto(`${base}/console`);
  const signedOut = (await erin.locator('#passkey-signin').count()) === 1;
  report('erin-signed-out', signedOut && erin.url() !== `${base}/console`, erin.url());
  await erin.context().close();

  // Join a host: the token comes inside the agent command, which the test runs on "the host".
  await dana.goto(`${base}/console/hosts`);
  await dana.click('a:has-text("Join a host")');
  await dana.fill('#join-host', 'app-1');
  await dana.fill('#join-labels', 'env=prod');
  await dana.click('button:has-text("Make a join token")');
  const command = await dana.inputValue('#agent-command');
  report('join-token', command.includes('warden agent') && command.includes('--join-token'), command);
  await shot(dana, 'admin-join.png');
  await ask(signals, 'agent-started', command);
  const row = () => dana.locator('#hosts tbody tr', { hasText: 'app-1' });
  // Online from the join's first contact; the agent's version comes with its first report.
  const online = await until(dana, `${base}/console/hosts`, async () => (await row().count()) === 1
    && (await row().locator('td.health').textContent()).includes('online')
    && (await row().locator('td.agent code').count()) === 1);
  const version = online ? (await row().locator('td.agent code').allTextContents()) : [];
  report('host-online', online, { version });
  await shot(dana, 'admin-host-online.png');
  await ask(signals, 'agent-stopped', 'app-1');
  const offline = await until(dana, `${base}/console/hosts`, async () => (await row().locator('td.health').textContent()).includes('offline'), 30);
  report('host-offline', offline, (await row().textContent()).replace(/\s+/g, ' '));
  await shot(dana, 'admin-host-offline.png');

  // End a live session: the test opens one as alice on db-1 through the recording proxy.
  await ask(signals, 'session-open', 'alice on db-1');
  await dana.goto(`${base}/console/sessions?active=1`);
  await dana.locator('table tbody tr', { hasText: 'open' }).first().locator('a').first().click();
  await dana.fill('#end-reason', 'INC-9: patching db-1');
  await dana.click('button:has-text("End the session")');
  await dana.waitForURL(/done=ended/);
  const ending = (await dana.locator('.notice').first().textContent()).trim();
  report('session-ended', ending.startsWith('Ending the session'), ending);
  await shot(dana, 'admin-session-ended.png');
  // The proxy ends it within a second: the page then shows when, and why.
  const ended = await until(dana, dana.url().replace(/\?.*$/, ''), async () => !(await dana.locator('dl').first().textContent()).includes('still open'));
  report('session-closed', ended, (await dana.locator('dl').first().textContent()).replace(/\s+/g, ' '));

  // A review campaign, started here, with every item decided at once with one reason.
  await dana.goto(`${base}/console/reviews`);
  await dana.click('a:has-text("Start a review")');
  await dana.fill('#review-name', 'Ops access, December');
  await dana.fill('#review-scope', 'groups:ops');
  await dana.fill('#review-reviewer', 'dana');
  await dana.fill('#review-due', '7d');
  await dana.click('button:has-text("Start the review")');
  await dana.waitForSelector('#review-items');
  const items = await dana.locator('#review-items tbody tr').count();
  await dana.check('#all');
  const selected = await dana.locator('#review-items tbody input[name=item]:checked').count();
  await dana.fill('#reason', 'still on the ops rota');
  await dana.click('button:has-text("Keep access")');
  await dana.waitForURL(/done=decided/);
  const decisions = await dana.locator('#review-items tbody td.decision').allTextContents();
  report('bulk-reviewed', items >= 2 && selected === items && decisions.length === items
    && decisions.every((d) => d.includes('keep') && d.includes('still on the ops rota')), { items, selected, decisions });
  await shot(dana, 'admin-review.png');

  // The checklist ticks off SCIM and the findings once the test made a SCIM token and
  // imported a scan.
  await ask(signals, 'imported', 'a scan');
  await dana.goto(`${base}/console`);
  const after = await ticked(dana);
  // Every step is done but the identity provider: the checklist stays, with four ticked.
  report('checklist-after', after.includes('scim') && after.includes('first-import') && after.length > before.length, { before, after });
  await shot(dana, 'admin-checklist-after.png');

  report('csp', violations.length === 0, violations);
} catch (error) {
  report('error', false, String(error && error.stack || error));
} finally {
  await browser.close();
}

// Drives the saga dashboard (GET /ui on saga-coordinator) in headless Chromium, as an operator
// would, against a stack that tests/e2e/tests/e2e/dashboard.rs prepared, and takes the screenshots of
// docs/screenshots. Exits non-zero on the first failed check, on any error of the page's script
// or console, and if the page sent any request outside its own origin.
//
// Environment (set by dashboard.rs):
//   SAGA_UI_URL          the page, e.g. http://127.0.0.1:3008/ui
//   SAGA_UI_TOKEN        the admin token
//   SAGA_UI_NEW_SAGA     a saga created just before (the list's newest)
//   SAGA_UI_NEW_EVENTS   its history's event types, comma-separated, oldest first
//   SAGA_UI_FAILED_SAGA  a FAILED saga, to retry from the page
//   SAGA_UI_DLQ_JSON     a dead letter whose payload is JSON (shown in a screenshot)
//   SAGA_UI_DLQ_DISCARD  a DEAD dead letter, to discard from the page
//   SAGA_UI_DLQ_REPLAY   another, to replay from the page
//   SAGA_UI_SCREENSHOTS  where the screenshots go (default: a directory under the temp dir)
//   SAGA_UI_CHROMIUM     the browser (default /usr/bin/chromium)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const started = Date.now();
const log = (message) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`${name} is not set (tests/e2e/tests/e2e/dashboard.rs sets it)`);
    process.exit(2);
  }
  return value;
}

const PAGE = env('SAGA_UI_URL');
const TOKEN = env('SAGA_UI_TOKEN');
const NEW_SAGA = env('SAGA_UI_NEW_SAGA');
const NEW_EVENTS = env('SAGA_UI_NEW_EVENTS').split(',');
const FAILED_SAGA = env('SAGA_UI_FAILED_SAGA');
const DLQ_JSON = env('SAGA_UI_DLQ_JSON');
const DLQ_DISCARD = env('SAGA_UI_DLQ_DISCARD');
const DLQ_REPLAY = env('SAGA_UI_DLQ_REPLAY');
const SHOTS = env('SAGA_UI_SCREENSHOTS', path.join(os.tmpdir(), 'saga-dashboard-screenshots'));
const CHROMIUM = env('SAGA_UI_CHROMIUM', '/usr/bin/chromium');
const NOTE = 'discarded from the dashboard';
const ORIGIN = new URL(PAGE).origin;

class CheckFailed extends Error {}
function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

const requests = [];
const problems = [];
/** Console errors the browser logs for a refused token, which the test provokes once. */
let allowedUnauthorized = 0;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'saga-dashboard-chromium-'));
fs.mkdirSync(SHOTS, { recursive: true });
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 900 },
  deviceScaleFactor: 1,
  locale: 'en-GB',
  timezoneId: 'UTC',
});
context.on('request', (request) => requests.push(request.url()));
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(15000);
page.on('pageerror', (error) => problems.push(`uncaught error in the page: ${error.message}`));
page.on('console', (message) => {
  if (message.type() !== 'error') return;
  if (allowedUnauthorized > 0 && /status of 401/.test(message.text())) {
    allowedUnauthorized -= 1;
    return;
  }
  problems.push(`console error: ${message.text()}`);
});
page.on('dialog', (dialog) => {
  problems.push(`unexpected ${dialog.type()} dialog: ${dialog.message()}`);
  dialog.dismiss().catch(() => {});
});

const sagaRow = (id) => `[data-testid="saga-row"][data-saga-id="${id}"]`;
const dlqRow = (id) => `[data-testid="dlq-row"][data-dlq-id="${id}"]`;
const refreshes = () => page.evaluate(() => Number(document.body.dataset.refreshes || 0));

async function waitForRefreshes(n) {
  const from = await refreshes();
  await page.waitForFunction((target) => Number(document.body.dataset.refreshes || 0) >= target, from + n, { timeout: 15000 });
}

async function dismissToasts() {
  await page.$$eval('[data-testid="toast"] button', (buttons) => buttons.forEach((b) => b.click()));
}

async function shot(name, options = {}) {
  await dismissToasts();
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await page.mouse.move(0, 0);
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, ...options });
  log(`screenshot ${file}`);
}

/** Where the regions of the overview are, to see that refreshing moves nothing. */
async function layout() {
  return page.evaluate(() => ['#stats', '#chart', '.side-panel', '#saga-filters', '#saga-table-wrap', '#saga-detail', '.pager']
    .map((selector) => {
      const r = document.querySelector(selector).getBoundingClientRect();
      return `${selector} ${Math.round(r.x)},${Math.round(r.y)} ${Math.round(r.width)}x${Math.round(r.height)}`;
    }));
}

async function run() {
  // The overview: counts, the chart, and the list with the saga just created on top.
  await page.goto(PAGE);
  await page.waitForSelector(sagaRow(NEW_SAGA));
  const first = await page.$eval('#saga-rows > tr:first-child', (tr) => tr.dataset.sagaId);
  check(first === NEW_SAGA, `the newest saga should be listed first, found ${first}`);
  await page.waitForFunction(() => {
    const value = document.querySelector('[data-testid="stat-COMPLETED"] [data-testid="stat-value"]');
    return value && /^\d+$/.test(value.textContent) && Number(value.textContent) > 0;
  });
  check(await page.$('#chart rect.bar-completed'), 'the chart should show the completed sagas');
  check(await page.$('#chart rect.bar-compensated'), 'the chart should show the compensated sagas');
  const failedCount = await page.textContent('[data-testid="stat-FAILED"] [data-testid="stat-value"]');
  check(Number(failedCount) >= 1, `the FAILED count should be at least 1, is ${failedCount}`);
  log('the list shows the saga just created, first; counts and chart are there');

  const before = await layout();
  await waitForRefreshes(2);
  const after = await layout();
  check(JSON.stringify(before) === JSON.stringify(after),
    `refreshing moved the layout:\n  before ${before.join('\n         ')}\n  after  ${after.join('\n         ')}`);
  log('two refreshes later nothing moved');
  await shot('overview.png');

  // The saga's timeline: every event of its history, in order, with times from its start.
  await page.click(sagaRow(NEW_SAGA));
  await page.waitForFunction((id) => document.querySelector('[data-testid="detail-saga-id"]')?.textContent === id, NEW_SAGA);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="timeline-entry"]').length >= n, NEW_EVENTS.length);
  const shown = await page.$$eval('[data-testid="timeline-entry"]', (items) => items.map((li) => li.dataset.eventType));
  check(JSON.stringify(shown) === JSON.stringify(NEW_EVENTS),
    `the timeline should show ${NEW_EVENTS.join(', ')}; it shows ${shown.join(', ')}`);
  const offsets = await page.$$eval('[data-testid="timeline-entry"] .tl-time', (cells) => cells.map((c) => c.textContent));
  check(offsets.every((o) => /^[+−]\d+\.\d{3}s$/.test(o)), `times relative to the start, like +0.012s: ${offsets.join(' ')}`);
  check(await page.getAttribute('[data-testid="detail-status"]', 'data-status') === 'COMPLETED', 'the new saga is COMPLETED');
  check(await page.textContent('[data-testid="participant-payment"]').then((t) => t.includes('CONFIRMED')), 'payment CONFIRMED');
  check(await page.textContent('[data-testid="participant-inventory"]').then((t) => t.includes('COMMITTED')), 'inventory COMMITTED');
  check(await page.isDisabled('[data-testid="action-retry"]') && await page.isDisabled('[data-testid="action-abort"]'),
    'a COMPLETED saga can be neither retried nor aborted');
  log(`its timeline shows ${shown.length} events: ${shown.join(' → ')}`);

  // The FAILED saga, found with the status filter, retried from the page.
  await page.selectOption('#filter-status', 'FAILED');
  await page.waitForSelector(sagaRow(FAILED_SAGA));
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-testid="saga-row"]')];
    return rows.length > 0 && rows.every((tr) => tr.dataset.status === 'FAILED');
  });
  check(page.url().includes('status=FAILED'), `the filter should be in the address: ${page.url()}`);
  await page.click(sagaRow(FAILED_SAGA));
  await page.waitForSelector('[data-testid="detail-status"][data-status="FAILED"]');
  check(!(await page.isDisabled('[data-testid="action-retry"]')), 'a FAILED saga can be retried');
  check(await page.isDisabled('[data-testid="action-abort"]'), 'a FAILED saga cannot be aborted');

  await page.click('[data-testid="action-retry"]');
  await page.waitForSelector('#token-dialog[open]');
  allowedUnauthorized = 1;
  await page.fill('#token-input', 'not-the-token');
  await page.click('#token-submit');
  await page.waitForSelector('#token-error:not([hidden])');
  const refused = await page.textContent('#token-error');
  check(/UNAUTHORIZED/.test(refused), `a refused token should show the API's error, shows: ${refused}`);
  await page.fill('#token-input', TOKEN);
  await page.click('#token-submit');
  await page.waitForSelector('#token-dialog:not([open])', { state: 'attached' });
  await page.waitForSelector('[data-testid="toast"][data-kind="ok"]');
  log('retried from the page (a wrong token first: the API\'s UNAUTHORIZED shown, asked again)');

  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  check(!stored.includes(TOKEN), 'the token must not be stored anywhere but in the page\'s memory');

  await page.waitForSelector('[data-testid="detail-status"][data-status="COMPENSATED"]', { timeout: 30000 });
  await page.waitForSelector('[data-testid="timeline-entry"][data-event-type="operator.retry"]');
  const actor = await page.textContent('[data-testid="timeline-entry"][data-event-type="operator.retry"] [data-testid="event-actor"]');
  check(/token:[0-9a-f]{12}/.test(actor), `operator.retry should show who asked: ${actor}`);
  check(!actor.includes(TOKEN), 'the actor is a fingerprint, not the token');
  log('the page, refreshing itself, shows it COMPENSATED, with operator.retry by its token\'s fingerprint');

  await page.click('[data-testid="filter-clear"]');
  await page.waitForSelector(sagaRow(NEW_SAGA));
  await page.waitForSelector(`${sagaRow(FAILED_SAGA)}[data-status="COMPENSATED"]`);
  // A taller window, for the whole of the saga's panel in one picture.
  await page.setViewportSize({ width: 1400, height: 1160 });
  await waitForRefreshes(1);
  await shot('saga-timeline.png');
  await page.setViewportSize({ width: 1400, height: 900 });

  // The dead letters: a discard from the page, and the original payloads.
  await page.click('[data-testid="tab-dlq"]');
  await page.waitForSelector(dlqRow(DLQ_JSON));
  await page.waitForSelector(`${dlqRow(DLQ_DISCARD)}[data-status="DEAD"]`);
  await page.click(dlqRow(DLQ_DISCARD));
  await page.waitForFunction((id) => document.querySelector('[data-testid="detail-dlq-id"]')?.textContent === `#${id}`, DLQ_DISCARD);
  const raw = await page.textContent('[data-testid="dlq-payload"]');
  check(raw === '{not an event', `a payload that is not JSON is shown as it came: ${raw}`);
  await page.click('[data-testid="dlq-discard"]');
  await page.waitForSelector('#confirm-dialog[open]');
  await page.fill('#confirm-note', NOTE);
  await page.click('#confirm-ok');
  check(!(await page.$('#token-dialog[open]')), 'the token is asked once per page');
  await page.waitForSelector('[data-testid="dlq-status"][data-status="DISCARDED"]');
  await page.waitForSelector(`${dlqRow(DLQ_DISCARD)}[data-status="DISCARDED"]`);
  await page.waitForFunction((note) => document.querySelector('[data-testid="dlq-note"]')?.textContent === note, NOTE);
  check(await page.isDisabled('[data-testid="dlq-discard"]') && await page.isDisabled('[data-testid="dlq-replay"]'),
    'a DISCARDED entry can be neither replayed nor discarded');
  await waitForRefreshes(1);
  check(await page.getAttribute('[data-testid="dlq-status"]', 'data-status') === 'DISCARDED', 'still DISCARDED after a refresh');
  log('discarded a dead letter from the page: DISCARDED, with the note');

  await page.click(dlqRow(DLQ_REPLAY));
  await page.waitForFunction((id) => document.querySelector('[data-testid="detail-dlq-id"]')?.textContent === `#${id}`, DLQ_REPLAY);
  await page.click('[data-testid="dlq-replay"]');
  await page.waitForSelector('[data-testid="dlq-status"][data-status="REPLAYED"]');
  await page.waitForSelector(`${dlqRow(DLQ_REPLAY)}[data-status="REPLAYED"]`);
  // The poison fails again and comes back as a new DEAD entry, which the page shows by itself.
  await page.waitForFunction((id) => [...document.querySelectorAll('[data-testid="dlq-row"][data-status="DEAD"]')]
    .some((tr) => Number(tr.dataset.dlqId) > Number(id)), DLQ_REPLAY, { timeout: 20000 });
  log('replayed another: REPLAYED, and its poison is back as a new DEAD entry');

  await page.click(dlqRow(DLQ_JSON));
  await page.waitForSelector('[data-testid="dlq-payload"] .j-key');
  const payload = await page.textContent('[data-testid="dlq-payload"]');
  check(JSON.parse(payload).eventType === 'order.created', `the JSON payload, pretty: ${payload.slice(0, 200)}`);
  await shot('dead-letters.png');

  // A narrow window: the sections stack, the rows become cards.
  await page.click('[data-testid="tab-sagas"]');
  await page.keyboard.press('Escape');
  await page.setViewportSize({ width: 420, height: 900 });
  await page.waitForSelector(sagaRow(NEW_SAGA));
  await waitForRefreshes(1);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `at 420px the page should not scroll sideways (${overflow}px too wide)`);
  await shot('overview-narrow.png', { fullPage: true });
}

let failure = null;
try {
  await run();
} catch (error) {
  failure = error;
}

try {
  if (failure) await page.screenshot({ path: path.join(SHOTS, 'failure.png') }).catch(() => {});
  else fs.rmSync(path.join(SHOTS, 'failure.png'), { force: true });
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

const foreign = requests.filter((url) => !url.startsWith('data:') && new URL(url).origin !== ORIGIN);
if (foreign.length) problems.push(`requests outside ${ORIGIN}:\n  ${[...new Set(foreign)].join('\n  ')}`);
if (failure) problems.unshift(failure instanceof CheckFailed ? failure.message : failure.stack || String(failure));

log(`${requests.length} requests, all to ${ORIGIN}${foreign.length ? ' (NOT)' : ''}`);
if (problems.length) {
  console.error(`FAILED:\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
log('dashboard: every check passed');

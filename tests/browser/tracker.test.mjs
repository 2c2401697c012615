// The browser tracker (/sluice.js) in real headless Chromium: the page on one origin (a
// static server here), Sluice on another, reached through a TCP proxy this test cuts and
// restores to take the server away from the page. What was stored is read back with the
// admin procedures (forceFlush, getMetrics).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { test, before, after } from 'node:test';

import { chromium } from 'playwright-core';

import { buildTracker, built } from './build-tracker.mjs';

const { SLUICE_URL, SLUICE_LIMITED_URL, SLUICE_ADMIN_TOKEN, SLUICE_SCREENSHOT } = process.env;
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

// A TCP proxy in front of Sluice: `cut()` closes every connection and refuses new ones.
function startProxy() {
  const target = new URL(SLUICE_URL);
  const sockets = new Set();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) { client.destroy(); return; }
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.unref();
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    cut() { up = false; for (const socket of sockets) socket.destroy(); },
    restore() { up = true; },
    close() { server.close(); for (const socket of sockets) socket.destroy(); },
  })));
}

// The site: every path serves the same page embedding the tracker from the proxy.
function startSite(sluice, attributes = '') {
  const server = createServer((request, response) => {
    response.setHeader('content-type', 'text/html');
    response.end(`<!doctype html><title>site</title><h1>${request.url}</h1>` +
      `<script defer src="${sluice}/sluice.js" data-endpoint="${sluice}" ${attributes}></script>`);
  });
  server.unref();
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
    resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() })));
}

async function admin(method, params = {}, url = SLUICE_URL) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SLUICE_ADMIN_TOKEN}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: `eventIngestion.${method}`, params }),
  });
  const reply = await response.json();
  assert.ok(reply.result, JSON.stringify(reply));
  return reply.result;
}

// How many stored events have each event type / path (metrics of the last day).
async function stored(url = SLUICE_URL) {
  await admin('forceFlush', {}, url);
  const from = new Date(Date.now() - 36e5).toISOString();
  const to = new Date(Date.now() + 36e5).toISOString();
  const report = await admin('getMetrics', { from, to, limit: 100 }, url);
  const count = (list) => Object.fromEntries(list.map((item) => [item.value, item.events]));
  return { types: count(report.eventTypes), pages: count(report.topPages),
    sources: count(report.topUtmSources), referrers: count(report.topReferrers), report };
}

async function waitFor(check, what, ms = 8000, url = SLUICE_URL) {
  const deadline = Date.now() + ms;
  for (;;) {
    const seen = await stored(url);
    if (check(seen)) return seen;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(seen.types)} ${JSON.stringify(seen.pages)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const queued = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('sluice.queue') || '[]').length);

let browser, proxy, site;
before(async () => {
  proxy = await startProxy();
  site = await startSite(proxy.url);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  await browser?.close();
  proxy?.close();
  site?.close();
});

const context = () => browser.newContext({ userAgent: USER_AGENT });

test('the served script is the current build, at most 2 000 bytes gzipped, cached by ETag', async () => {
  const source = await buildTracker();
  assert.equal(await readFile(built, 'utf8'), source, 'run `node tests/browser/build-tracker.mjs`');
  const response = await fetch(`${SLUICE_URL}/sluice.js`);
  const served = await response.text();
  assert.equal(served, source);
  assert.match(response.headers.get('content-type'), /^text\/javascript/);
  assert.equal(response.headers.get('cache-control'), 'public, max-age=3600');
  const size = gzipSync(served, { level: 9 }).length;
  assert.ok(size <= 2000, `${size} bytes gzipped`);
  const again = await fetch(`${SLUICE_URL}/sluice.js`, { headers: { 'if-none-match': response.headers.get('etag') } });
  assert.equal(again.status, 304);
});

test('a page view and a custom event arrive with session, attribution and path', async () => {
  const tab = await context();
  const page = await tab.newPage();
  await page.goto(`${site.url}/landing?utm_source=newsletter&utm_medium=email&utm_campaign=winter`,
    { referer: 'http://news.example.com/post' });
  await page.waitForFunction(() => window.sluice);
  await page.evaluate(() => sluice.track('signup_clicked', { plan: 'pro' }));
  const seen = await waitFor((s) => s.types.page_viewed >= 1 && s.types.signup_clicked === 1, 'page view and click');
  assert.equal(seen.pages['/landing'], 2, 'both events on /landing');
  assert.equal(seen.sources.newsletter, 2);
  assert.equal(seen.referrers['news.example.com'], 2);
  const session = await page.evaluate(() => localStorage.getItem('sluice.session'));
  assert.match(session, /^[0-9a-f-]{36}$/);
  assert.equal(seen.report.totals.sessions, 1, 'one session so far');
  if (SLUICE_SCREENSHOT) await page.screenshot({ path: SLUICE_SCREENSHOT });
  await tab.close();
});

test('events made while the server is down wait in the queue and are stored once when it is back', async () => {
  const tab = await context();
  const page = await tab.newPage();
  await page.goto(`${site.url}/offline`);
  await page.waitForFunction(() => window.sluice);
  await waitFor((s) => s.pages['/offline'] === 1, 'the page view');
  proxy.cut();
  await page.evaluate(() => { sluice.track('offline_a'); sluice.track('offline_b'); });
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('sluice.queue') || '[]').length === 2);
  proxy.restore();
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await waitFor((s) => s.types.offline_a === 1 && s.types.offline_b === 1, 'the queued events');
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('sluice.queue') || '[]').length === 0);
  // Nothing comes twice, even after another flush and a reload.
  await page.evaluate(() => sluice.flush());
  await page.reload();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const seen = await stored();
  assert.equal(seen.types.offline_a, 1);
  assert.equal(seen.types.offline_b, 1);
  await tab.close();
});

test('a page closed while events are queued delivers them by beacon, once', async () => {
  const tab = await context();
  const page = await tab.newPage();
  await page.goto(`${site.url}/leaving`);
  await page.waitForFunction(() => window.sluice);
  proxy.cut();
  await page.evaluate(() => sluice.track('beacon_a'));
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('sluice.queue') || '[]').length >= 1);
  proxy.restore();
  // Closed before the backoff timer fires: only the beacon can deliver it.
  await page.close({ runBeforeUnload: true });
  await waitFor((s) => s.types.beacon_a === 1, 'the beaconed event');
  // The next page of the site resends what it still holds: stored once all the same.
  const next = await tab.newPage();
  await next.goto(`${site.url}/after`);
  await next.waitForFunction(() => JSON.parse(localStorage.getItem('sluice.queue') || '[]').length === 0);
  assert.equal((await stored()).types.beacon_a, 1);
  await tab.close();
});

test('single-page navigation gives one page view per route', async () => {
  const tab = await context();
  const page = await tab.newPage();
  await page.goto(`${site.url}/spa`);
  await page.waitForFunction(() => window.sluice);
  await page.evaluate(() => {
    history.pushState({}, '', '/spa/a');
    history.replaceState({}, '', '/spa/a');
    history.pushState({}, '', '/spa/b');
  });
  // Past the second: the server takes the same page view of one session within one
  // second for a repeat (DESIGN.md's dedup rule).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await page.evaluate(() => history.back());
  await page.waitForFunction(() => location.pathname === '/spa/a');
  const seen = await waitFor((s) => s.pages['/spa/a'] === 2 && s.pages['/spa/b'] === 1 && s.pages['/spa'] === 1,
    'one view per route (and one more for /spa/a on back)');
  assert.equal(seen.pages['/spa/a'], 2);
  await tab.close();
});

test('what the server rate-limits waits and comes back after retryAfterSeconds, stored once', async () => {
  const limitedSite = await startSite(SLUICE_LIMITED_URL);
  const tab = await context();
  const page = await tab.newPage();
  await page.goto(`${limitedSite.url}/burst`);
  await page.waitForFunction(() => window.sluice);
  // 80 events at once against a burst of 50 and 10 a second: some are refused with 429.
  await page.evaluate(() => { for (let i = 0; i < 80; i++) sluice.track('burst', { n: i }); });
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('sluice.queue') || '[]').length > 0);
  const seen = await waitFor((s) => s.types.burst === 80, 'every burst event', 30000, SLUICE_LIMITED_URL);
  assert.equal(seen.types.burst, 80);
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('sluice.queue') || '[]').length === 0);
  await tab.close();
  limitedSite.close();
});

test('a refused event is dropped with a warning, never retried', async () => {
  const tab = await context();
  const page = await tab.newPage();
  const warnings = [];
  page.on('console', (message) => { if (message.type() === 'warning') warnings.push(message.text()); });
  await page.goto(`${site.url}/invalid`);
  await page.waitForFunction(() => window.sluice);
  await page.evaluate(() => sluice.track('asset_viewed'));
  await page.waitForFunction(() => true);
  for (let i = 0; i < 50 && !warnings.length; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.ok(warnings.some((text) => text.includes('[sluice] event dropped') && text.includes('view_duration_ms')), warnings.join('\n'));
  assert.equal(await queued(page), 0);
  await tab.close();
});

test('opting out stops sending, and Do Not Track does with data-respect-dnt', async () => {
  const tab = await context();
  const page = await tab.newPage();
  await page.goto(`${site.url}/private`);
  await page.waitForFunction(() => window.sluice);
  await waitFor((s) => s.pages['/private'] === 1, 'the page view before opting out');
  await page.evaluate(() => sluice.optOut());
  await page.evaluate(() => sluice.track('after_opt_out'));
  await page.evaluate(() => { history.pushState({}, '', '/private/next'); });
  await new Promise((resolve) => setTimeout(resolve, 500));
  let seen = await stored();
  assert.equal(seen.types.after_opt_out, undefined);
  assert.equal(seen.pages['/private/next'], undefined);
  assert.equal(await queued(page), 0);
  await tab.close();

  const dntSite = await startSite(proxy.url, 'data-respect-dnt="true"');
  const dnt = await context();
  await dnt.addInitScript(() => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' }));
  const dntPage = await dnt.newPage();
  await dntPage.goto(`${dntSite.url}/dnt`);
  await dntPage.waitForFunction(() => window.sluice);
  await dntPage.evaluate(() => sluice.track('with_dnt'));
  await new Promise((resolve) => setTimeout(resolve, 500));
  seen = await stored();
  assert.equal(seen.types.with_dnt, undefined);
  assert.equal(seen.pages['/dnt'], undefined);
  await dnt.close();
  dntSite.close();
});

// The /live page in real headless Chromium against a real Sluice (the binary, on SQLite):
// it connects, shows the visitors and active pages of a known sequence of events, shows a
// new event within a second, and shows "disconnected" while the server is down and
// recovers when it is back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';

import { chromium } from 'playwright-core';

const { SLUICE_BIN, SLUICE_PORT, SLUICE_DATABASE_URL, SLUICE_ADMIN_TOKEN, SLUICE_SCREENSHOT } = process.env;
const base = `http://127.0.0.1:${SLUICE_PORT}`;

async function startServer() {
  const child = spawn(SLUICE_BIN, [], {
    env: {
      ...process.env,
      SLUICE_BIND: `127.0.0.1:${SLUICE_PORT}`,
      SLUICE_DATABASE_URL,
      SLUICE_ADMIN_TOKEN,
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return child;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('sluice did not start');
}

async function stopServer(child) {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function track(sessionId, path) {
  const response = await fetch(base, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0', id: 1, method: 'eventIngestion.track',
      params: { eventType: 'page_viewed', sessionId, props: { path } },
    }),
  });
  const reply = await response.json();
  assert.equal(reply.result?.status, 'accepted', JSON.stringify(reply));
  return reply.result.eventId;
}

test('the live page shows who is on the site, new events, and the connection', async () => {
  let server = await startServer();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const [a, b, c] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    await track(a, '/');
    await track(b, '/pricing');
    await track(c, '/');
    await track(a, '/pricing');

    const page = await browser.newPage({ viewport: { width: 1200, height: 720 } });
    // First visit: the page asks for the token and keeps it in sessionStorage.
    await page.goto(`${base}/live`);
    await page.locator('#token').fill(SLUICE_ADMIN_TOKEN);
    await page.locator('#login button').click();
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 5000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('sluice.adminToken')), SLUICE_ADMIN_TOKEN);
    await page.waitForFunction(() => document.getElementById('visitors').textContent === '3');
    const pages = await page.$$eval('#pages li', (rows) =>
      rows.map((row) => [row.dataset.path, row.querySelector('.count').textContent]));
    assert.deepEqual(pages, [['/pricing', '2'], ['/', '1']]);
    assert.equal(await page.locator('#feed li').count(), 4);

    const sent = Date.now();
    const id = await track(crypto.randomUUID(), '/checkout');
    const row = page.locator(`#feed li[data-event-id="${id}"]`);
    await row.waitFor({ timeout: 1000 });
    assert.ok(Date.now() - sent < 1000, 'shown within a second');
    assert.ok(await row.evaluate((element) => element.classList.contains('new')), 'a new row flashes');
    assert.equal(await page.locator('#feed li').first().getAttribute('data-event-id'), id, 'newest first');
    if (SLUICE_SCREENSHOT) await page.screenshot({ path: SLUICE_SCREENSHOT });

    await stopServer(server);
    await page.locator('#status[data-state="disconnected"]').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#status .label').textContent(), 'disconnected');

    server = await startServer();
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10000 });
    const after = await track(crypto.randomUUID(), '/back');
    await page.locator(`#feed li[data-event-id="${after}"]`).waitFor({ timeout: 2000 });
  } finally {
    await browser.close();
    if (server.exitCode === null) await stopServer(server);
  }
});

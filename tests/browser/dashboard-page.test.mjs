// The /dashboard page in real headless Chromium against a real Sluice holding the metrics
// fixture (tests/integration/support/metrics_fixture.rs): it asks for the token once, shows
// the fixture's figures, narrows them when a row is clicked, and follows the range picker.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { chromium } from 'playwright-core';

const { SLUICE_URL, SLUICE_ADMIN_TOKEN, SLUICE_SCREENSHOT, SLUICE_FIXTURE_FROM, SLUICE_FIXTURE_TO } = process.env;

async function totals(page) {
  return page.$$eval('#totals .figure', (figures) => figures.map((figure) => figure.textContent));
}

async function rows(page, list) {
  return page.$$eval(`[data-list="${list}"] tr:not(:first-child)`, (found) =>
    found.map((row) => Array.from(row.cells, (cell) => cell.textContent)));
}

async function waitForTotals(page, expected) {
  await page.waitForFunction((want) =>
    Array.from(document.querySelectorAll('#totals .figure'), (figure) => figure.textContent).join() === want,
  expected.join(), { timeout: 5000 });
}

async function bars(page) {
  return page.$$eval('#series rect', (found) => found.map((bar) => Number(bar.dataset.events)));
}

test('the dashboard shows the figures and filters by a click', async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(`${SLUICE_URL}/dashboard`);
    await page.locator('#token').fill('not-the-token');
    await page.locator('#login button').click();
    await page.locator('#login-error', { hasText: 'refused' }).waitFor({ timeout: 5000 });
    await page.locator('#token').fill(SLUICE_ADMIN_TOKEN);
    await page.locator('#login button').click();

    // The default range, 7 days, holds the whole fixture.
    await waitForTotals(page, ['8', '6', '4', '5']);
    // The fixture's crawler is left out, and the page says so.
    assert.match(await page.locator('#bots').textContent(), /^1 event from bots and tools is not counted/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('sluice.adminToken')), SLUICE_ADMIN_TOKEN);
    assert.equal(await page.locator('#ranges [aria-pressed="true"]').textContent(), '7 days');
    assert.equal(await page.locator('#interval').textContent(), 'day');
    assert.ok(await page.locator('#custom').isHidden(), 'the custom range inputs only for Custom');
    const week = await bars(page);
    // From the day holding `from` to the one before `to`: 8 days, or 7 when `to` is midnight.
    assert.ok([7, 8].includes(week.length), `${week.length} bars`);
    assert.equal(week.reduce((a, b) => a + b, 0), 8);
    assert.deepEqual(await rows(page, 'topPages'), [['/home', '3', '3'], ['/docs', '2', '2'], ['/pricing', '2', '2']]);
    assert.deepEqual(await rows(page, 'topCountries'), [['DE', '4', '2'], ['US', '2', '1'], ['FR', '1', '1']]);
    assert.deepEqual(await rows(page, 'devices'), [['desktop', '4', '2'], ['mobile', '2', '1'], ['tablet', '1', '1']]);
    assert.deepEqual(await rows(page, 'eventTypes'),
      [['page_viewed', '6', '4'], ['signup_clicked', '1', '1'], ['report_exported', '1', '0']]);
    // Three of five sessions bounce; 6 page views in 5 sessions; (5 min + 22 h) / 5.
    assert.deepEqual(await page.$$eval('#visits .figure', (found) => found.map((figure) => figure.textContent)),
      ['60 %', '1.20', '4 h 25 min']);
    assert.deepEqual(await rows(page, 'entryPages'), [['/home', '3', '3'], ['/docs', '2', '2']]);
    assert.deepEqual(await rows(page, 'exitPages'), [['/docs', '2', '2'], ['/home', '2', '2'], ['/pricing', '1', '1']]);
    assert.equal(await page.locator('a[href="/live"]').count(), 1);

    // A click on a row filters by it; filters combine.
    await page.locator('[data-list="topCountries"] tr[data-value="DE"] td').first().click();
    await waitForTotals(page, ['4', '4', '2', '3']);
    assert.deepEqual(await rows(page, 'topCountries'), [['DE', '4', '2']]);
    await page.locator('[data-list="topPages"] tr[data-value="/home"] td').first().click();
    await waitForTotals(page, ['2', '2', '2', '2']);
    assert.ok(await page.locator('#bots').isVisible(), 'the crawler was on /home in Germany');
    assert.deepEqual(await page.$$eval('#filters .chip', (chips) => chips.map((chip) => chip.dataset.key)),
      ['country', 'path']);

    // The view survives a reload (in the URL), and the token is not asked again.
    await page.reload();
    await waitForTotals(page, ['2', '2', '2', '2']);
    assert.ok(await page.locator('#login').isHidden());

    // Removing a filter widens again.
    await page.locator('#filters .chip[data-key="country"]').click();
    await waitForTotals(page, ['3', '3', '3', '3']);
    await page.locator('#filters .chip[data-key="path"]').click();
    await waitForTotals(page, ['8', '6', '4', '5']);
    // The 7 days before held nothing: every total is new.
    assert.equal(await page.locator('#delta-events').textContent(), 'new vs previous period');

    // Retention: the four visitors, each in the week of their first visit.
    const cohortVisitors = await page.$$eval('#retention-rows tr:not(:first-child)', (found) =>
      found.map((row) => Number(row.cells[1].textContent)));
    assert.equal(cohortVisitors.reduce((a, b) => a + b, 0), 4);

    // A goal, defined in the page: one of the four visitors clicked to sign up.
    await page.locator('#goal-name').fill('Signed up');
    await page.locator('#goal-event').fill('signup_clicked');
    await page.locator('#goal-form button').click();
    await page.locator('#goal-rows tr[data-goal="Signed up"]').waitFor({ timeout: 5000 });
    assert.deepEqual(await page.$$eval('#goal-rows tr[data-goal]', (found) =>
      found.map((row) => Array.from(row.cells, (cell) => cell.textContent).slice(0, 3))), [['Signed up', '1', '25 %']]);

    // A funnel of two steps: three visitors landed on /home, one of them then viewed /pricing.
    await page.locator('#step-path').fill('/home');
    await page.locator('#step-form button[type="submit"]').click();
    await page.locator('#step-event').fill('page_viewed');
    await page.locator('#step-path').fill('/pricing');
    await page.locator('#step-form button[type="submit"]').click();
    await page.locator('#funnel-steps .step[data-step="2"]').waitFor({ timeout: 5000 });
    assert.deepEqual(await page.$$eval('#funnel-steps .step .label', (found) => found.map((label) => label.textContent)), [
      '1. /home · 3 visitors · 100 %',
      '2. page_viewed on /pricing · 1 visitor · 33.3 % · 2 dropped',
    ]);
    // Goals and steps are part of the view: a reload keeps them.
    await page.reload();
    await page.locator('#funnel-steps .step[data-step="2"]').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#goal-rows tr[data-goal]').count(), 1);
    if (SLUICE_SCREENSHOT) await page.screenshot({ path: SLUICE_SCREENSHOT, fullPage: true });

    // A custom range: exactly the fixture's three days.
    await page.locator('#ranges [data-range="custom"]').click();
    assert.ok(await page.locator('#custom').isVisible());
    await page.locator('#from').fill(SLUICE_FIXTURE_FROM.slice(0, 16));
    await page.locator('#to').fill(SLUICE_FIXTURE_TO.slice(0, 16));
    await page.locator('#custom button').click();
    await page.waitForFunction(() => document.querySelectorAll('#series rect').length === 3);
    assert.deepEqual(await bars(page), [3, 2, 3]);

    // 24 hours: hourly buckets, every one present.
    await page.locator('#ranges [data-range="24h"]').click();
    await page.waitForFunction(() => document.getElementById('interval').textContent === 'hour');
    await page.waitForFunction(() => document.querySelectorAll('#series rect').length === 24);
    // No bot in the last 24 hours: no line about them.
    await page.waitForFunction(() => document.getElementById('bots').hidden);
  } finally {
    await browser.close();
  }
});

// The tRPC contract of Sluice, exercised with whichever @trpc/client version the caller
// passes in (see v10/ and v11/). Run against a live server: SLUICE_TRPC_URL names its
// /api/trpc endpoint, SLUICE_ADMIN_JWT and SLUICE_VIEWER_JWT are tokens it accepts.
import assert from 'node:assert/strict';
import { test } from 'node:test';

const url = process.env.SLUICE_TRPC_URL;
const adminToken = process.env.SLUICE_ADMIN_JWT;
const viewerToken = process.env.SLUICE_VIEWER_JWT;

let counter = 0;
const pageView = (label) => ({
  eventType: 'page_viewed',
  props: { path: `/${label}/${process.pid}/${counter++}` },
});

/** Asserts that `promise` rejects with a TRPCClientError whose data.code is `code`. */
async function rejectsWith(kit, promise, code, check = () => {}) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof kit.TRPCClientError, `not a TRPCClientError: ${error}`);
    assert.equal(error.data?.code, code, JSON.stringify(error.data));
    assert.equal(typeof error.shape?.code, 'number');
    check(error);
    return true;
  });
}

/**
 * kit: { version, links: string[], client(link, { token, superjson }), TRPCClientError }
 */
export function contract(kit) {
  assert.ok(url, 'SLUICE_TRPC_URL must be set');
  for (const link of kit.links) {
    for (const superjson of [false, true]) {
      const label = `v${kit.version} ${link}${superjson ? ' + superjson' : ''}`;
      const anonymous = kit.client(link, { superjson });
      const admin = kit.client(link, { superjson, token: adminToken });
      const viewer = kit.client(link, { superjson, token: viewerToken });

      test(`${label}: track accepts an event`, async () => {
        const output = await anonymous.eventIngestion.track.mutate(pageView(label));
        assert.equal(output.status, 'accepted');
        assert.equal(output.tracked, true);
        assert.match(output.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
      });

      test(`${label}: trackBatch settles each item on its own`, async () => {
        const output = await anonymous.eventIngestion.trackBatch.mutate({
          events: [pageView(label), { eventType: 'asset_viewed' }, pageView(label)],
        });
        assert.equal(output.total, 3);
        assert.equal(output.successful, 2);
        assert.deepEqual(output.results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
        assert.equal(output.results[1].error.data.code, 'BAD_REQUEST');
      });

      test(`${label}: validation errors carry zodError`, async () => {
        await rejectsWith(kit, anonymous.eventIngestion.track.mutate({ eventType: '' }), 'BAD_REQUEST', (error) => {
          assert.equal(error.data.httpStatus, 400);
          assert.equal(error.data.path, 'eventIngestion.track');
          assert.ok(error.data.zodError.fieldErrors.eventType.length > 0);
        });
        await rejectsWith(
          kit,
          anonymous.eventIngestion.track.mutate({ eventType: 'x', entityId: 'cjld2cjxh0000qzrmn831i7rn' }),
          'BAD_REQUEST',
          (error) => assert.ok(error.data.zodError.fieldErrors.entityType),
        );
        await rejectsWith(kit, anonymous.eventIngestion.trackBatch.mutate({ events: [] }), 'BAD_REQUEST');
      });

      test(`${label}: admin procedures check the caller`, async () => {
        await rejectsWith(kit, anonymous.eventIngestion.getStats.query(), 'UNAUTHORIZED');
        await rejectsWith(kit, viewer.eventIngestion.getStats.query(), 'FORBIDDEN');
        await rejectsWith(kit, viewer.eventIngestion.forceFlush.mutate(), 'FORBIDDEN');
        const stats = await admin.eventIngestion.getStats.query();
        assert.equal(typeof stats.bufferSize, 'number');
        assert.equal(stats.config.batchSize, 100);
        const flush = await admin.eventIngestion.forceFlush.mutate();
        assert.equal(flush.flushed, true);
        assert.equal(typeof flush.persisted, 'number');
      });

      test(`${label}: getMetrics reads the stored events back`, async () => {
        // Node's fetch is an HTTP tool: a server's event (`source: 'api'`) counts, one posing
        // as a browser's is a bot, stored but left out of the figures.
        const event = { ...pageView(label), source: 'api' };
        const posing = pageView(label);
        await anonymous.eventIngestion.track.mutate(event);
        await anonymous.eventIngestion.track.mutate({ ...posing, props: { path: event.props.path, posing: true } });
        await admin.eventIngestion.forceFlush.mutate();
        const to = new Date(Date.now() + 60_000).toISOString();
        const from = new Date(Date.now() - 3_600_000).toISOString();
        const [metrics, all] = await Promise.all([
          admin.eventIngestion.getMetrics.query({ from, to, filters: { path: event.props.path } }),
          admin.eventIngestion.getMetrics.query(),
        ]);
        assert.equal(metrics.interval, 'hour');
        assert.equal(metrics.totals.events, 1);
        assert.equal(metrics.totals.pageviews, 1);
        assert.equal(metrics.totals.botEvents, 1);
        assert.deepEqual(metrics.topPages, [{ value: event.props.path, events: 1, visitors: 0 }]);
        assert.equal(metrics.series.reduce((sum, point) => sum + point.events, 0), 1);
        assert.equal(all.interval, 'day');
        assert.ok(all.totals.events >= 1);
        await rejectsWith(kit, viewer.eventIngestion.getMetrics.query(), 'FORBIDDEN');
        await rejectsWith(kit, admin.eventIngestion.getMetrics.query({ interval: 'minute' }), 'BAD_REQUEST', (error) =>
          assert.ok(error.data.zodError.fieldErrors.interval),
        );
      });

      test(`${label}: getFunnel and getRetention answer as queries`, async () => {
        const path = `/${label}/${process.pid}/funnel`;
        const funnel = await admin.eventIngestion.getFunnel.query({
          steps: [{ path }, { eventType: 'never_tracked' }],
          within: 'visitor',
        });
        assert.deepEqual(funnel.steps.map((step) => [step.index, step.visitors, step.dropOff]), [[1, 0, 0], [2, 0, 0]]);
        assert.equal(funnel.conversionRate, 0);
        const retention = await admin.eventIngestion.getRetention.query({ period: 'day' });
        assert.equal(retention.period, 'day');
        assert.ok(retention.cohorts.length >= 7);
        assert.deepEqual(retention.cohorts.at(-1).retained.length, 1);
        await rejectsWith(kit, admin.eventIngestion.getFunnel.query({ steps: [{ path }] }), 'BAD_REQUEST', (error) =>
          assert.ok(error.data.zodError.fieldErrors.steps),
        );
        await rejectsWith(kit, viewer.eventIngestion.getRetention.query(), 'FORBIDDEN');
      });

      test(`${label}: setConsent suppresses an opted-out session`, async () => {
        const sessionId = crypto.randomUUID();
        const consent = await anonymous.eventIngestion.setConsent.mutate({ sessionId, granted: false });
        assert.deepEqual(consent.subjects, [{ type: 'session', id: sessionId }]);
        const suppressed = await anonymous.eventIngestion.track.mutate({ ...pageView(label), sessionId });
        assert.deepEqual(suppressed, { eventId: null, tracked: false, status: 'suppressed' });
        await anonymous.eventIngestion.setConsent.mutate({ sessionId, granted: true });
        const accepted = await anonymous.eventIngestion.track.mutate({ ...pageView(label), sessionId });
        assert.equal(accepted.status, 'accepted');
        await rejectsWith(kit, anonymous.eventIngestion.setConsent.mutate({ granted: false }), 'BAD_REQUEST');
      });

      test(`${label}: concurrent calls (batched by batch links) each get their own answer`, async () => {
        const [first, bad, second, stats] = await Promise.allSettled([
          anonymous.eventIngestion.track.mutate(pageView(label)),
          anonymous.eventIngestion.track.mutate({ eventType: 'x', source: 'fax' }),
          anonymous.eventIngestion.track.mutate(pageView(label)),
          admin.eventIngestion.getStats.query(),
        ]);
        assert.equal(first.status, 'fulfilled');
        assert.equal(first.value.status, 'accepted');
        assert.equal(second.value.status, 'accepted');
        assert.notEqual(first.value.eventId, second.value.eventId);
        assert.equal(bad.status, 'rejected');
        assert.equal(bad.reason.data.code, 'BAD_REQUEST');
        assert.ok(bad.reason.data.zodError.fieldErrors.source);
        assert.equal(stats.status, 'fulfilled');
      });
    }
  }
}

// The tRPC v11 subscription eventIngestion.live through httpSubscriptionLink, against a
// running Sluice: tracked items, a resume from lastEventId without gaps or repeats, and auth.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createTRPCClient, httpLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';

const url = process.env.SLUICE_TRPC_URL;

function client(token) {
  return createTRPCClient({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({ url, EventSource, connectionParams: () => ({ token }) }),
        false: httpLink({ url }),
      }),
    ],
  });
}

/** Subscribes and collects items; `next(n)` waits for the next n items. */
function watch(trpc, input) {
  const items = [];
  const errors = [];
  let wake = () => {};
  const subscription = trpc.eventIngestion.live.subscribe(input, {
    onData(item) { items.push(item); wake(); },
    onError(error) { errors.push(error); wake(); },
  });
  async function until(check, what) {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(items)}`);
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, 100); });
    }
  }
  return { items, errors, until, stop: () => subscription.unsubscribe() };
}

const track = (trpc, path) =>
  trpc.eventIngestion.track.mutate({ eventType: 'page_viewed', props: { path } });

const events = (items) => items.filter((item) => item.data?.type === 'new_event' || item.type === 'new_event');

test('tracked new_event items carry the event id, and a resume has no gap and no repeat', async () => {
  const trpc = client(process.env.SLUICE_ADMIN_JWT);
  const first = watch(trpc);
  await first.until(() => first.items.length >= 1, 'the first snapshot');
  assert.equal(first.items[0].type, 'stats', 'an untracked snapshot comes first');
  assert.equal(typeof first.items[0].data.currentVisitors, 'number');
  const a = await track(trpc, '/a');
  const b = await track(trpc, '/b');
  await first.until(() => events(first.items).length >= 2, 'two events');
  const seen = events(first.items);
  assert.deepEqual(seen.map((item) => item.id), [a.eventId, b.eventId]);
  assert.equal(seen[0].data.type, 'new_event');
  assert.equal(seen[0].data.data.path, '/a');
  first.stop();

  const c = await track(trpc, '/c');
  const d = await track(trpc, '/d');
  // What httpSubscriptionLink sends when it reconnects: the last id it saw as lastEventId.
  const resumed = watch(trpc, { lastEventId: b.eventId });
  await resumed.until(() => events(resumed.items).length >= 2, 'the replay');
  const e = await track(trpc, '/e');
  await resumed.until(() => events(resumed.items).length >= 3, 'the next event');
  assert.deepEqual(events(resumed.items).map((item) => item.id), [c.eventId, d.eventId, e.eventId]);
  resumed.stop();
});

test('the subscription is for admins only', async () => {
  for (const [token, status] of [[process.env.SLUICE_VIEWER_JWT, 403], ['not-a-token', 401]]) {
    const refused = watch(client(token));
    await refused.until(() => refused.errors.length > 0, `a ${status} refusal`);
    refused.stop();
    assert.equal(refused.items.length, 0);
    // EventSource reports only the status of a refused stream.
    assert.match(refused.errors[0].message, new RegExp(`\\(${status}\\)`));
  }
});

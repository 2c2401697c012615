// The seeds' ingestion router as Node.js would run it (seed 003): tRPC + zod validation, an
// in-memory buffer flushed at 100 events or every 10 s, node-postgres multi-row inserts. It
// keeps no sessions table and does no enrichment: the benchmark's comparison line for what
// Sluice persists into the same PostgreSQL in the same time.
//
// Run: DATABASE_URL=postgres://… PORT=… node server.mjs (prints "ready" when it listens).

import { initTRPC } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import pg from 'pg';
import { z } from 'zod';
import { createHash, randomUUID } from 'node:crypto';

const BATCH_SIZE = 100;
const BATCH_TIMEOUT_MS = 10_000;
const BUFFER_CAPACITY = 100_000;
const DEDUP_TTL_MS = 60_000;

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
await pool.query(`CREATE TABLE IF NOT EXISTS node_events (
  id uuid PRIMARY KEY, event_type text NOT NULL, source text NOT NULL, session_id uuid,
  props jsonb, utm_source text, utm_medium text, utm_campaign text, referrer text,
  landing_page text, dedup_fingerprint text UNIQUE, occurred_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL, user_agent text)`);

const attribution = z.object({
  utmSource: z.string().max(255).optional(),
  utmMedium: z.string().max(255).optional(),
  utmCampaign: z.string().max(255).optional(),
  utmTerm: z.string().max(255).optional(),
  utmContent: z.string().max(255).optional(),
  referrer: z.string().url().or(z.literal('')).optional(),
  landingPage: z.string().url().or(z.literal('')).optional(),
}).strict();

const trackEventInput = z.object({
  eventType: z.string().min(1).max(100),
  source: z.enum(['web', 'api', 'mobile', 'system', 'webhook']).default('web'),
  entityId: z.string().cuid().optional(),
  entityType: z.enum(['project', 'asset', 'license', 'creator', 'brand', 'user', 'royalty',
    'payout', 'post', 'category']).optional(),
  sessionId: z.string().uuid().optional(),
  props: z.record(z.any()).optional(),
  attribution: attribution.optional(),
  idempotencyKey: z.string().uuid().optional(),
}).strict();

const buffer = [];
const recent = new Map();
const counters = { accepted: 0, persisted: 0, duplicates: 0, refused: 0 };
let flushing = Promise.resolve();

function fingerprint(event, occurredAt) {
  const second = Math.floor(occurredAt.getTime() / 1000);
  return createHash('sha256')
    .update(JSON.stringify([event.eventType, event.sessionId ?? '', event.props ?? {}, second]))
    .digest('hex').slice(0, 32);
}

function accept(event, userAgent) {
  if (buffer.length >= BUFFER_CAPACITY) {
    counters.refused += 1;
    return { eventId: null, tracked: false, status: 'refused' };
  }
  const now = new Date();
  const occurred = event.props?.occurred_at ? new Date(event.props.occurred_at) : now;
  const key = fingerprint(event, occurred);
  const seen = recent.get(key);
  if (seen && seen.expires > now.getTime()) {
    counters.duplicates += 1;
    return { eventId: seen.id, tracked: false, status: 'duplicate' };
  }
  const id = randomUUID();
  recent.set(key, { id, expires: now.getTime() + DEDUP_TTL_MS });
  const a = event.attribution ?? {};
  buffer.push([id, event.eventType, event.source, event.sessionId ?? null,
    event.props ? JSON.stringify(event.props) : null, a.utmSource ?? null, a.utmMedium ?? null,
    a.utmCampaign ?? null, a.referrer ?? null, a.landingPage ?? null, key, occurred, now,
    userAgent ?? null]);
  counters.accepted += 1;
  if (buffer.length >= BATCH_SIZE) scheduleFlush();
  return { eventId: id, tracked: true, status: 'accepted' };
}

async function writeBatch(rows) {
  const values = [];
  const placeholders = rows.map((row, r) => {
    values.push(...row);
    return `(${row.map((_, c) => `$${r * row.length + c + 1}`).join(', ')})`;
  });
  const result = await pool.query(`INSERT INTO node_events (id, event_type, source, session_id,
    props, utm_source, utm_medium, utm_campaign, referrer, landing_page, dedup_fingerprint,
    occurred_at, received_at, user_agent) VALUES ${placeholders.join(', ')}
    ON CONFLICT DO NOTHING`, values);
  counters.persisted += result.rowCount;
}

function scheduleFlush() {
  flushing = flushing.then(async () => {
    while (buffer.length >= BATCH_SIZE) {
      const rows = buffer.splice(0, BATCH_SIZE);
      try {
        await writeBatch(rows);
      } catch (error) {
        buffer.unshift(...rows);
        console.error('flush failed', error.message);
        return;
      }
    }
  });
}

setInterval(() => {
  flushing = flushing.then(async () => {
    while (buffer.length > 0) {
      const rows = buffer.splice(0, BATCH_SIZE);
      try {
        await writeBatch(rows);
      } catch (error) {
        buffer.unshift(...rows);
        return;
      }
    }
  });
  const now = Date.now();
  for (const [key, entry] of recent) if (entry.expires <= now) recent.delete(key);
}, BATCH_TIMEOUT_MS);

const t = initTRPC.context().create();
const router = t.router({
  eventIngestion: t.router({
    track: t.procedure.input(trackEventInput)
      .mutation(({ input, ctx }) => accept(input, ctx.userAgent)),
    trackBatch: t.procedure.input(z.object({ events: z.array(z.unknown()).min(1).max(50) }))
      .mutation(({ input, ctx }) => {
        const results = input.events.map((raw, index) => {
          const parsed = trackEventInput.safeParse(raw);
          if (!parsed.success) return { index, status: 'rejected', error: parsed.error.message };
          return { index, status: 'fulfilled', data: accept(parsed.data, ctx.userAgent) };
        });
        const successful = results.filter((r) => r.status === 'fulfilled').length;
        return { total: results.length, successful, failed: results.length - successful, results };
      }),
    getStats: t.procedure.query(() => ({ bufferSize: buffer.length, ...counters })),
  }),
});

const server = createHTTPServer({
  router,
  basePath: '/api/trpc/',
  createContext: ({ req }) => ({ userAgent: req.headers['user-agent'] }),
});
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
console.log('ready');

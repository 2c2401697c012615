// A typed frontend call: the router type is built from schema/sluice.d.ts, so the compiler
// checks inputs and outputs exactly as for a TypeScript tRPC backend. `tsc --strict` runs on
// this file in the test suite.
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { initTRPC } from '@trpc/server';

import type { SluiceProcedures } from '../../../schema/sluice.js';

type Input<P extends keyof SluiceProcedures> = SluiceProcedures[P]['input'];
type Output<P extends keyof SluiceProcedures> = SluiceProcedures[P]['output'];

const t = initTRPC.create();
const typed = <P extends keyof SluiceProcedures>() =>
  t.procedure.input((raw: unknown) => raw as Input<P>);

// Types only: Sluice implements these procedures; this router is never served.
const sluiceRouter = t.router({
  eventIngestion: t.router({
    track: typed<'eventIngestion.track'>().mutation(() => null as unknown as Output<'eventIngestion.track'>),
    trackBatch: typed<'eventIngestion.trackBatch'>().mutation(
      () => null as unknown as Output<'eventIngestion.trackBatch'>,
    ),
    getStats: typed<'eventIngestion.getStats'>().query(() => null as unknown as Output<'eventIngestion.getStats'>),
    forceFlush: typed<'eventIngestion.forceFlush'>().mutation(
      () => null as unknown as Output<'eventIngestion.forceFlush'>,
    ),
    setConsent: typed<'eventIngestion.setConsent'>().mutation(
      () => null as unknown as Output<'eventIngestion.setConsent'>,
    ),
  }),
});
export type SluiceRouter = typeof sluiceRouter;

export async function example(): Promise<void> {
  const sluice = createTRPCClient<SluiceRouter>({
    links: [httpBatchLink({ url: 'http://127.0.0.1:8080/api/trpc' })],
  });
  const tracked = await sluice.eventIngestion.track.mutate({
    eventType: 'page_viewed',
    props: { path: '/pricing' },
    attribution: { utmSource: 'newsletter' },
  });
  const status: 'accepted' | 'replayed' | 'duplicate' | 'suppressed' = tracked.status;
  const stats = await sluice.eventIngestion.getStats.query(undefined);
  const health: 'healthy' | 'degraded' | 'critical' = stats.health;
  const consent = await sluice.eventIngestion.setConsent.mutate({ sessionId: crypto.randomUUID(), granted: false });
  const subjects: Array<{ type: 'session' | 'user'; id: string }> = consent.subjects;
  void subjects;
  void status;
  void health;
  // @ts-expect-error: unknown fields are rejected at compile time too.
  await sluice.eventIngestion.track.mutate({ eventType: 'x', actorId: 'spoofed' });
}

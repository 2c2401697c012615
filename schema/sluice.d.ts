// Generated from the Rust types by `SLUICE_UPDATE_SCHEMA=1 cargo test`; do not edit.
// The wire types of Sluice's eventIngestion procedures (JSON-RPC and tRPC).

/** A page and how many current visitors are on it. */
export interface ActivePage {
  path: string;
  visitors: number;
}

/** Marketing attribution sent with an event. */
export interface Attribution {
  /** An absolute URL, or "". */
  landingPage?: string | null;
  /** An absolute URL, or "". */
  referrer?: string | null;
  utmCampaign?: string | null;
  utmContent?: string | null;
  utmMedium?: string | null;
  utmSource?: string | null;
  utmTerm?: string | null;
}

/** Which database a store writes to. */
export type Backend = "postgres" | "sqlite" | "memory";

/** The outcome of one batch item, in input order. */
export interface BatchItemResult {
  data?: TrackEventOutput | null;
  error?: ItemError | null;
  index: number;
  status: SettledStatus;
}

/** The visitors who first came in one period. */
export interface Cohort {
  /** `retained[i]`: the cohort's visitors with an event in the `i`-th period from its own (so `retained[0] = visitors`), up to the last period of the range. */
  retained: Array<number>;
  /** The period's start, RFC 3339 UTC. */
  start: string;
  visitors: number;
}

/** The range a report is compared with. */
export type Compare = "previousPeriod" | "previousYear";

/** The figures of the range a report is compared with. */
export interface Comparison {
  from: string;
  series: Array<SeriesPoint>;
  to: string;
  totals: MetricsTotals;
}

/** Who a consent decision is about. */
export type ConsentSubject = {
  id: string;
  type: "session";
} | {
  id: string;
  type: "user";
};

/** Counter values at one moment. */
export interface Counters {
  accepted: number;
  deadLettered: number;
  deduplicatedOnWrite: number;
  duplicates: number;
  failedFlushes: number;
  flushes: number;
  persisted: number;
  rejected: number;
  replayed: number;
  retries: number;
  suppressed: number;
}

/** The state of the database. */
export interface DatabaseDiagnosis {
  backend: Backend;
  /** On Citus, how each table is spread and the active workers; null on a single database. */
  distribution?: Distribution | null;
  /** Round trip of `SELECT 1`, in milliseconds. */
  latencyMs?: number | null;
  pendingMigrations?: number | null;
  /** What went wrong, when something did. */
  problems: Array<string>;
  reachable: boolean;
  /** Row count per table; null for a table that could not be read (missing). */
  tables: Array<TableDiagnosis>;
}

/** The output of `eventIngestion.diagnostics`. */
export interface DiagnosticsReport {
  database: DatabaseDiagnosis;
  /** Buffer, counters, rates, health and pool, as getStats reports them. */
  pipeline: StatsReport;
}

/** One table's distribution. */
export interface DistributedTable {
  /** The distribution column of a distributed table. */
  column?: string | null;
  /** `distributed` (by hash of `column`), `reference` (a copy on every node) or `local` (on the coordinator only). */
  method: string;
  name: string;
  shards: number;
}

/** How Sluice's tables are spread over a Citus cluster (`sluice doctor`). */
export interface Distribution {
  /** Each of [`TABLES`], in that order. */
  tables: Array<DistributedTable>;
  /** The active workers. */
  workers: Array<WorkerNode>;
}

/** The kind of domain object an event is about. */
export type EntityType = "project" | "asset" | "license" | "creator" | "brand" | "user" | "royalty" | "payout" | "post" | "category";

/** Where an event was produced. */
export type EventSource = "web" | "api" | "mobile" | "system" | "webhook";

/** A filter's parts; all given parts must hold. */
export interface FilterRule {
  /** The value contains this text. */
  contains?: string | null;
  /** The value is one of these. */
  is?: Array<string> | null;
  /** The value is none of these; an event without the field is kept. */
  isNot?: Array<string> | null;
}

/** What one filter keeps: a value equal to a string, or a rule whose every part holds. */
export type FilterValue = string | FilterRule;

/** The output of `eventIngestion.forceFlush`. */
export interface ForceFlushOutput {
  /** True when the buffer was emptied into the database. */
  flushed: boolean;
  message: string;
  /** Events written by this flush. */
  persisted: number;
}

/** The answer of `getFunnel`. */
export interface FunnelReport {
  /** The last step's visitors over the first step's. */
  conversionRate: number;
  from: string;
  steps: Array<StepReport>;
  to: string;
}

/** One step: events of a type, or page views of a path (`*` at the end: a prefix), or both. */
export interface FunnelStep {
  eventType?: string | null;
  path?: string | null;
}

/** The input of `eventIngestion.getFunnel` (docs/live-and-metrics.md "Funnels"). */
export interface GetFunnelInput {
  filters?: MetricsFilters | null;
  /** RFC 3339, inclusive; default `to` minus 7 days. */
  from?: string | null;
  /** 2 to 8 steps, each naming an event type, a path (`*` at the end: a prefix) or both. */
  steps: Array<FunnelStep>;
  /** RFC 3339, exclusive; default now. At most 366 days after `from`. */
  to?: string | null;
  /** Default `session`. */
  within?: Within | null;
}

/** The input of `eventIngestion.getMetrics` (docs/live-and-metrics.md "Metrics and the dashboard"); every field optional. */
export interface GetMetricsInput {
  /** Also report the range of equal length just before, or a year before. */
  compare?: Compare | null;
  eventType?: string | null;
  filters?: MetricsFilters | null;
  /** RFC 3339, inclusive; default `to` minus 7 days. */
  from?: string | null;
  /** Up to 20 goals, each naming an event type, a path (`*` at the end: a prefix) or both. */
  goals?: Array<Goal> | null;
  /** Default: `hour` for ranges up to 2 days, else `day`. */
  interval?: Interval | null;
  /** Rows per top list, 1..=100 (default 10). */
  limit?: number | null;
  /** RFC 3339, exclusive; default now. At most 366 days after `from`. */
  to?: string | null;
}

/** The input of `eventIngestion.getRetention` (docs/live-and-metrics.md "Retention cohorts"); every field optional. */
export interface GetRetentionInput {
  filters?: MetricsFilters | null;
  /** RFC 3339, inclusive; default `to` minus 7 days. */
  from?: string | null;
  /** Default `week`. */
  period?: Period | null;
  /** RFC 3339, exclusive; default now. At most 366 days after `from`. */
  to?: string | null;
}

/** A conversion goal: events of a type, or page views of a path (`*` at the end: a prefix), or both. */
export interface Goal {
  eventType?: string | null;
  name: string;
  path?: string | null;
}

/** How many reached one goal. */
export interface GoalReport {
  /** The goal's visitors over `totals.visitors` (0 when there are none). */
  conversionRate: number;
  events: number;
  name: string;
  visitors: number;
}

/** Overall state, from flush failures and buffer fill. */
export type Health = "healthy" | "degraded" | "critical";

/** The width of one bucket of the series. Every bucket starts on a UTC hour, so an hour of events always falls in one bucket. */
export type Interval = "hour" | "day" | "week" | "month";

/** The error of a rejected batch item: the same shape as a procedure error. */
export interface ItemError {
  code: number;
  data: unknown;
  message: string;
}

/** One event as a live viewer sees it: no IP, no user-agent string, no user id, no props but the path. */
export interface LiveEvent {
  browserName?: string | null;
  country?: string | null;
  deviceType?: string | null;
  eventId: string;
  eventType: string;
  /** RFC 3339, UTC. */
  occurredAt: string;
  path?: string | null;
  referrerHost?: string | null;
  source: string;
  utmSource?: string | null;
  /** A pseudonymous, stable hash of the user id (signed in) or else the session id; none for an event with neither, which counts as no visitor. */
  visitorId?: string | null;
}

/** The input of the subscription: where a reconnecting viewer left off. */
export interface LiveInput {
  /** The id of the last event the viewer received; the events after it that the hub still holds are sent first. */
  lastEventId?: string | null;
}

/** One item of a live stream, the same on every transport: `{"type": …, "data": …}`. */
export type LiveMessage = {
  data: LiveSnapshot;
  type: "connected";
} | {
  data: LiveEvent;
  type: "new_event";
} | {
  data: LiveSnapshot;
  type: "stats";
};

/** What the site looks like now. */
export interface LiveSnapshot {
  /** Each current visitor counted once, on its latest page; most visitors first, then by path; the 100 busiest pages. */
  activePages: Array<ActivePage>;
  /** RFC 3339, UTC. */
  at: string;
  /** Distinct visitors seen in the last `windowSeconds`. */
  currentVisitors: number;
  /** The latest events, newest first (at most 20). */
  recentEvents: Array<LiveEvent>;
  windowSeconds: number;
}

/** Dimensions a query narrows to; every filter given must match (AND). */
export interface MetricsFilters {
  browserName?: FilterValue | null;
  /** ISO 3166-1 alpha-2. */
  country?: FilterValue | null;
  deviceType?: FilterValue | null;
  eventType?: FilterValue | null;
  /** The page path, as in live analytics (`props.path`, else `props.page`, else the landing page's path). */
  path?: FilterValue | null;
  referrerHost?: FilterValue | null;
  utmSource?: FilterValue | null;
}

/** The answer of `getMetrics`. Every figure is exact. */
export interface MetricsReport {
  browsers: Array<TopItem>;
  /** The compared range, when `compare` was asked for. */
  comparison?: Comparison | null;
  devices: Array<TopItem>;
  /** Each session's first page view in range, by path; most sessions first. */
  entryPages: Array<SessionPage>;
  eventTypes: Array<TopItem>;
  /** Each session's last page view in range, by path; most sessions first. */
  exitPages: Array<SessionPage>;
  from: string;
  /** The goals asked for, in their order; absent when none were. */
  goals?: Array<GoalReport> | null;
  interval: Interval;
  /** Every bucket of the range, zeros included, oldest first. */
  series: Array<SeriesPoint>;
  to: string;
  topCountries: Array<TopItem>;
  topPages: Array<TopItem>;
  topReferrers: Array<TopItem>;
  topUtmSources: Array<TopItem>;
  totals: MetricsTotals;
}

/** What the range held. */
export interface MetricsTotals {
  /** Events in range and filters from bots and tools, left out of every other figure (docs/live-and-metrics.md, who counts as a visitor). Counted from this version on: bots stored before are not in the reports' segments. */
  botEvents: number;
  /** Share of the sessions whose only event in range is a page view (0 without sessions). */
  bounceRate: number;
  events: number;
  /** `page_viewed` events. */
  pageviews: number;
  /** Distinct session ids. */
  sessions: number;
  /** Page views per session (0 without sessions). */
  viewsPerVisit: number;
  /** Mean over sessions of the time from their first to their last event in range; a session of one event counts 0. */
  visitDurationSeconds: number;
  /** Distinct visitors: a signed-in user, else a session (as live analytics counts them). */
  visitors: number;
}

/** The length of a retention period. */
export type Period = "day" | "week";

/** Pool state as getStats reports it. */
export interface PoolReport {
  available: number;
  backend: Backend;
  maxSize: number;
  size: number;
  waiting: number;
}

/** The answer of `getRetention`. */
export interface RetentionReport {
  /** One per period of the range, oldest first, empty ones included. */
  cohorts: Array<Cohort>;
  from: string;
  period: Period;
  to: string;
}

/** One bucket of the series. */
export interface SeriesPoint {
  events: number;
  /** The bucket's start, RFC 3339 UTC. */
  t: string;
  visitors: number;
}

/** One row of the entry or exit pages: sessions that began (or ended) there. */
export interface SessionPage {
  sessions: number;
  value: string;
  visitors: number;
}

/** The input of `eventIngestion.setConsent`: the caller's session (and, when signed in, the user) opts in or out of analytics. */
export interface SetConsentInput {
  /** true: analytics allowed; false: opted out, later events are not stored. */
  granted: boolean;
  sessionId?: string | null;
}

/** The output of `eventIngestion.setConsent`. */
export interface SetConsentOutput {
  granted: boolean;
  /** Whom the decision was recorded for. */
  subjects: Array<ConsentSubject>;
}

/** Whether one batch item was accepted. */
export type SettledStatus = "fulfilled" | "rejected";

/** The configuration getStats echoes. */
export interface StatsConfig {
  batchSize: number;
  batchTimeoutMs: number;
  bufferCapacity: number;
  deduplicationTtlSeconds: number;
  enableDeduplication: boolean;
  enableEnrichment: boolean;
}

/** The output of `eventIngestion.getStats`. */
export interface StatsReport {
  /** Mean duration of successful flushes, in milliseconds. */
  averageFlushMs: number;
  bufferSize: number;
  config: StatsConfig;
  consecutiveFlushFailures: number;
  counters: Counters;
  /** Share of accepted events already in the database, written now or found there already (1 when nothing was accepted). */
  deliveryRate: number;
  /** Share of flush attempts that failed (0 when none were made). */
  failureRate: number;
  health: Health;
  isProcessing: boolean;
  pool: PoolReport;
  /** Why the node is not ready (`/readyz` answers 503 with it): the buffer is full, or every write has failed for 10 s. Null when it is ready as far as the pipeline goes. */
  unavailableReason?: string | null;
  /** The error of the last write when writes are failing (the events wait in the buffer); null once one succeeds. */
  writeError?: string | null;
}

/** How many reached one step. */
export interface StepReport {
  /** This step's visitors over the first step's (0 when nobody did the first). */
  conversionRate: number;
  /** The previous step's visitors less this one's (0 for the first step). */
  dropOff: number;
  eventType?: string | null;
  /** From 1. */
  index: number;
  path?: string | null;
  visitors: number;
}

/** One table. */
export interface TableDiagnosis {
  name: string;
  rows?: number | null;
}

/** One row of a top list. */
export interface TopItem {
  events: number;
  value: string;
  visitors: number;
}

/** The input of `eventIngestion.trackBatch`. */
export interface TrackBatchInput {
  events: Array<TrackEventInput>;
}

/** The output of `eventIngestion.trackBatch`. */
export interface TrackBatchOutput {
  failed: number;
  results: Array<BatchItemResult>;
  successful: number;
  total: number;
}

/** The input of `eventIngestion.track`, one item of `eventIngestion.trackBatch`. */
export interface TrackEventInput {
  attribution?: Attribution | null;
  entityId?: string | null;
  entityType?: EntityType | null;
  eventType: string;
  idempotencyKey?: string | null;
  props?: Record<string, unknown> | null;
  sessionId?: string | null;
  source?: EventSource;
  /** The user a trusted server tracks for: only from a SERVICE JWT or the admin token; from anyone else it is an unknown field. */
  userId?: string | null;
}

/** The output of `eventIngestion.track`. */
export interface TrackEventOutput {
  eventId?: string | null;
  status: TrackStatus;
  tracked: boolean;
}

/** What happened to one tracked event. */
export type TrackStatus = "accepted" | "replayed" | "duplicate" | "suppressed";

/** Where the steps must follow each other. */
export type Within = "session" | "visitor";

/** An active Citus worker. */
export interface WorkerNode {
  host: string;
  port: number;
  /** Shard placements on the worker (reference tables included). */
  shardPlacements: number;
}

/** Input and output of each procedure, by path. */
export interface SluiceProcedures {
  "eventIngestion.track": { type: "mutation"; input: TrackEventInput; output: TrackEventOutput };
  "eventIngestion.trackBatch": { type: "mutation"; input: TrackBatchInput; output: TrackBatchOutput };
  "eventIngestion.getStats": { type: "query"; input: Record<string, never> | undefined; output: StatsReport };
  "eventIngestion.forceFlush": { type: "mutation"; input: Record<string, never> | undefined; output: ForceFlushOutput };
  "eventIngestion.setConsent": { type: "mutation"; input: SetConsentInput; output: SetConsentOutput };
  "eventIngestion.diagnostics": { type: "query"; input: Record<string, never> | undefined; output: DiagnosticsReport };
  "eventIngestion.getMetrics": { type: "query"; input: GetMetricsInput | undefined; output: MetricsReport };
  "eventIngestion.getFunnel": { type: "query"; input: GetFunnelInput; output: FunnelReport };
  "eventIngestion.getRetention": { type: "query"; input: GetRetentionInput | undefined; output: RetentionReport };
  "eventIngestion.live": { type: "subscription"; input: LiveInput | undefined; output: LiveMessage };
}

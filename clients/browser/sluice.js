/* Sluice browser tracker (clients/browser/README.md). No dependencies. */
((w, d) => {
  "use strict";
  if (w.sluice) return;
  const tag = d.currentScript || {}, data = tag.dataset || {}, nav = navigator, loc = location;
  const endpoint = (data.endpoint || new URL(tag.src || "/", loc.href).origin).replace(/\/$/, "") + "/";
  const QMAX = 500, BATCH = 50;
  let timer, wait = 0, sending = 0, path;

  const get = (k) => { try { return localStorage.getItem("sluice." + k); } catch (e) {} };
  const set = (k, v) => { try { localStorage.setItem("sluice." + k, v); } catch (e) {} };
  const queue = () => { try { return JSON.parse(get("queue")) || []; } catch (e) { return []; } };
  // Past QMAX waiting events the oldest go, counted in `sluice.dropped`.
  const save = (q) => {
    const over = q.length - QMAX;
    if (over > 0) set("dropped", (+get("dropped") || 0) + q.splice(0, over).length);
    set("queue", JSON.stringify(q));
  };
  const uuid = () => crypto.randomUUID ? crypto.randomUUID() :
    "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
      (c ^ crypto.getRandomValues(new Uint8Array(1))[0] & 15 >> c / 4).toString(16));
  // A session renews after 30 minutes without an event; its landing page is its first.
  const session = () => {
    let id = get("session");
    const now = Date.now();
    if (!id || now - get("seen") > 18e5) {
      set("session", id = uuid());
      set("landing", loc.href);
    }
    set("seen", now);
    return id;
  };
  const attribution = () => {
    const q = new URLSearchParams(loc.search), a = { landingPage: get("landing") || loc.href }, ref = d.referrer;
    for (const k of ["Source", "Medium", "Campaign", "Term", "Content"]) {
      const v = q.get("utm_" + k.toLowerCase());
      if (v) a["utm" + k] = v.slice(0, 255);
    }
    if (ref && new URL(ref).host != loc.host) a.referrer = ref;
    return a;
  };
  const blocked = () => get("optout") == 1 || (data.respectDnt == "true" &&
    (nav.doNotTrack == 1 || w.doNotTrack == 1 || nav.globalPrivacyControl));
  const rpc = (method, params) =>
    JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eventIngestion." + method, params });
  // An answer's error: undefined to keep retrying (429, 5xx, SERVICE_UNAVAILABLE, with
  // the seconds the server asked for, or 0), else null: done, or refused and dropped.
  const retryAfter = (error) => {
    const info = (error && error.data) || {};
    if (!error) return null;
    if (/^(TOO_MANY_REQUESTS|SERVICE_UNAVAILABLE)$/.test(info.code) || info.httpStatus >= 500) {
      return info.retryAfterSeconds || 0;
    }
    console.warn("[sluice] event dropped:", error.message);
    return null;
  };
  // Text/plain, so that no CORS preflight holds the first event back.
  const post = (body) => fetch(endpoint, { method: "POST", body, keepalive: body.length < 6e4,
    headers: { "Content-Type": "text/plain" }, credentials: "omit" })
    .then((r) => {
      if (r.status == 429 || r.status >= 500) throw { later: +r.headers.get("Retry-After") };
      return r.json();
    });
  // One flush at a time is scheduled: after the backoff (2 s, doubling with each failed
  // flush to 5 min, jittered by ±50 %), never sooner than the server asked.
  const schedule = (seconds) => timer || (timer = setTimeout(() => { timer = 0; flush(); },
    1e3 * Math.max(seconds || 0, (wait || 2) * (0.5 + Math.random()))));
  const failed = (seconds) => {
    wait = Math.min(wait * 2 || 2, 300);
    clearTimeout(timer);
    timer = 0;
    schedule(seconds);
  };
  const enqueue = (event, seconds) => { save([...queue(), event]); schedule(seconds); };
  const send = (event) => blocked() || post(rpc("track", event)).then((r) => {
    const s = retryAfter(r.error);
    if (s != null) enqueue(event, s);
  }, (e) => enqueue(event, e.later));

  // The queue goes out with trackBatch, 50 at a time; what is not done stays queued.
  const key = (e) => e.props.occurred_at + e.eventType + JSON.stringify(e.props);
  function flush() {
    const batch = queue().slice(0, BATCH);
    if (sending || !batch.length || blocked()) return Promise.resolve();
    sending = 1;
    return post(rpc("trackBatch", { events: batch })).then((r) => {
      let retry = [], after = retryAfter(r.error);
      if (after != null) retry = batch;
      else if (r.result) r.result.results.forEach((item, i) => {
        const s = retryAfter(item.error);
        if (s != null) retry.push(batch[i]), after = Math.max(after, s);
      });
      const sent = batch.map(key);
      save(retry.concat(queue().filter((e) => !sent.includes(key(e)))));
      sending = 0;
      if (retry.length) return failed(after);
      wait = 0;
      return flush();
    }, (e) => { sending = 0; failed(e.later); });
  }

  // The page goes away: what waits goes out by beacon. It stays queued as well, and a
  // resend is stored once: the stored fingerprint holds `occurred_at`, stamped at creation.
  const beacon = () => {
    const q = queue();
    if (nav.sendBeacon && !blocked()) for (let i = 0; i < q.length; i += BATCH) {
      nav.sendBeacon(endpoint, new Blob([rpc("trackBatch", { events: q.slice(i, i + BATCH) })], { type: "text/plain" }));
    }
  };
  const track = (eventType, props, options) => send(Object.assign({ eventType, sessionId: session(),
    attribution: attribution(), props: Object.assign({ path: loc.pathname }, props,
      { occurred_at: new Date().toISOString() }) }, options));
  const pageview = () => loc.pathname == path || track("page_viewed", { path: path = loc.pathname });
  const consent = (granted) => {
    set("optout", +!granted);
    return post(rpc("setConsent", { sessionId: session(), granted })).catch(() => {});
  };

  w.sluice = { track, pageview, flush, optOut: () => consent(false), optIn: () => consent(true).then(flush) };
  if (data.auto != "false") {
    for (const name of ["pushState", "replaceState"]) {
      const original = history[name];
      history[name] = function () { const r = original.apply(this, arguments); pageview(); return r; };
    }
    w.addEventListener("popstate", pageview);
    pageview();
  }
  w.addEventListener("online", () => { wait = 0; flush(); });
  w.addEventListener("pagehide", beacon);
  d.addEventListener("visibilitychange", () => d.visibilityState == "hidden" && beacon());
  flush();
})(window, document);

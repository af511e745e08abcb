/* Igloo event stream: the one owner of the /api/events WebSocket.
 *
 * Connects (ws/wss from the page's protocol), resumes from the last numeric seq it saw, drops duplicates,
 * reconnects with exponential backoff and jitter, stops on a normal close or when the page goes away, and
 * sends the user to /login when the session has ended. Other scripts listen through window.IglooEvents:
 *
 *   IglooEvents.on(type | '*', fn)   -> unsubscribe function; fn(frame) for every accepted frame
 *   IglooEvents.onState(fn)          -> unsubscribe function; fn(state, detail) on every state change
 *   IglooEvents.state                'connecting' | 'live' | 'reconnecting' | 'offline' | 'signed-out'
 *   IglooEvents.lastSeq              last numeric seq seen (null before the first one)
 *   IglooEvents.send(obj)            send a JSON command when live (returns false otherwise)
 *   IglooEvents.stats                {attempts, opens, delays: [ms...], closes: [code...]} for tests/diagnostics
 *
 * Timing can be tuned before this script loads: window.IglooEventsConfig = {baseDelay, maxDelay, ...}.
 * An element with [data-igloo-conn] shows the state; the script tag may carry data-since="N" to ask for
 * the backlog after seq N on the first connection. Without it the first connection asks for the last
 * data-history="N" stored events (default 100) with ?history=N: the server sends a client that names
 * neither only live events, as Igloo Server did.
 */
(function () {
  'use strict';

  var cfg = window.IglooEventsConfig || {};
  var BASE_DELAY = cfg.baseDelay || 1000;
  var MAX_DELAY = cfg.maxDelay || 30000;
  var SOON_DELAY = cfg.soonDelay || 250;          // after 1013 "too slow": come back quickly and resume
  var HEARTBEAT = cfg.heartbeat || 25000;         // app-level ping so a dead link is noticed from this side
  var PATH = cfg.path || '/api/events';
  var LOGIN_PATH = cfg.loginPath || '/login';
  var AUTH_STATUS_PATH = cfg.authStatusPath || '/api/auth/status';

  var script = document.currentScript;
  var initialSince = script && script.dataset.since !== undefined && script.dataset.since !== ''
    ? Number(script.dataset.since) : null;

  var ws = null;
  var state = 'connecting';
  var HISTORY = script && script.dataset.history !== undefined && script.dataset.history !== ''
    ? Number(script.dataset.history) : (cfg.history !== undefined ? cfg.history : 100);
  var lastSeq = Number.isFinite(initialSince) ? initialSince : null;
  var failures = 0;            // consecutive failed attempts; reset on open
  var retryTimer = null;
  var countdownTimer = null;
  var heartbeatTimer = null;
  var retryAt = 0;
  var stopped = false;         // true after a normal close, sign-out or page exit: never reconnect by itself
  var lastFrameAt = 0;
  var listeners = Object.create(null);
  var stateListeners = [];
  var stats = { attempts: 0, opens: 0, delays: [], closes: [] };

  var LABELS = {
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Reconnecting',
    offline: 'Offline',
    'signed-out': 'Signed out'
  };

  function label() {
    if (state === 'reconnecting') {
      var secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      return secs > 0 ? 'Reconnecting in ' + secs + ' s' : 'Reconnecting…';
    }
    return LABELS[state] || state;
  }

  function render() {
    var nodes = document.querySelectorAll('[data-igloo-conn]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].setAttribute('data-state', state);
      var text = nodes[i].querySelector('[data-igloo-conn-text]') || nodes[i];
      text.textContent = label();
    }
  }

  function setState(next, detail) {
    var changed = next !== state;
    state = next;
    render();
    if (!changed) return;
    for (var i = 0; i < stateListeners.length; i++) {
      try { stateListeners[i](state, detail || {}); } catch (err) { console.error(err); }
    }
  }

  function clearTimers() {
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (countdownTimer) { clearInterval(countdownTimer); countdownTimer = null; }
  }

  function stopHeartbeat() {
    if (heartbeatTimer) { clearInterval(heartbeatTimer); heartbeatTimer = null; }
  }

  function socketUrl() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var url = proto + '//' + location.host + PATH;
    if (lastSeq !== null) url += '?since=' + encodeURIComponent(String(lastSeq));
    else if (Number.isFinite(HISTORY) && HISTORY > 0) url += '?history=' + encodeURIComponent(String(HISTORY));
    return url;
  }

  function dispatch(frame) {
    var lists = [listeners[frame.type], listeners['*']];
    for (var l = 0; l < lists.length; l++) {
      var fns = lists[l];
      if (!fns) continue;
      fns = fns.slice();
      for (var i = 0; i < fns.length; i++) {
        try { fns[i](frame); } catch (err) { console.error(err); }
      }
    }
  }

  function onMessage(ev) {
    lastFrameAt = Date.now();
    var frame;
    try { frame = JSON.parse(ev.data); } catch (err) { return; }
    if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
    if (frame.type === 'system' && frame.data && frame.data.reset === true && typeof frame.data.lastSeq === 'number') {
      lastSeq = frame.data.lastSeq;   // the server lost its history: follow its numbering from here on
    }
    if (typeof frame.seq === 'number') {
      if (lastSeq !== null && frame.seq <= lastSeq) return;   // already seen (replay overlap)
      lastSeq = frame.seq;
    }
    dispatch(frame);
  }

  function connect() {
    clearTimers();
    if (stopped) return;
    if (ws && (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN)) return;
    stats.attempts += 1;
    setState(failures > 0 ? 'reconnecting' : 'connecting');
    render();
    var sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (err) {
      scheduleRetry();
      return;
    }
    ws = sock;
    var opened = false;
    sock.onopen = function () {
      if (ws !== sock) return;
      opened = true;
      failures = 0;
      lastFrameAt = Date.now();
      stats.opens += 1;
      setState('live');
      startHeartbeat(sock);
    };
    sock.onmessage = function (ev) { if (ws === sock) onMessage(ev); };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      stopHeartbeat();
      stats.closes.push(ev.code);
      onClosed(ev.code, opened);
    };
  }

  function onClosed(code, opened) {
    if (stopped) return;
    if (code === 4401) { signedOut(); return; }
    if (code === 1000) { stopped = true; setState('offline', { code: code }); return; }
    if (!opened) {
      // The upgrade was refused or the server is down: only the auth status tells a 401 from an outage.
      checkAuthThenRetry();
      return;
    }
    if (code === 1013) { scheduleRetry(SOON_DELAY); return; }
    scheduleRetry();
  }

  function checkAuthThenRetry() {
    failures += 1;
    setState('reconnecting');
    fetch(AUTH_STATUS_PATH, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (body) {
        if (stopped) return;
        if (body && body.authenticated === false && body.authEnabled !== false) signedOut();
        else scheduleRetry(undefined, true);
      })
      .catch(function () { if (!stopped) scheduleRetry(undefined, true); });
  }

  /** Exponential backoff with jitter: BASE doubling to MAX, each delay in [0.8, 1.0] of its step. */
  function backoffDelay(n) {
    var step = Math.min(MAX_DELAY, BASE_DELAY * Math.pow(2, Math.max(0, n - 1)));
    return Math.round(step * (0.8 + 0.2 * Math.random()));
  }

  function scheduleRetry(fixedDelay, alreadyCounted) {
    clearTimers();
    if (stopped) return;
    if (!alreadyCounted) failures += 1;
    if (navigator.onLine === false) { setState('offline', { waiting: 'network' }); return; }
    var delay = fixedDelay !== undefined ? fixedDelay : backoffDelay(failures);
    stats.delays.push(delay);
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    countdownTimer = setInterval(render, 500);
    setState('reconnecting', { delay: delay });
    render();
  }

  function startHeartbeat(sock) {
    stopHeartbeat();
    heartbeatTimer = setInterval(function () {
      if (ws !== sock || sock.readyState !== WebSocket.OPEN) return;
      if (Date.now() - lastFrameAt > HEARTBEAT * 2.5) {
        sock.close(4000, 'heartbeat timeout');   // onclose schedules the reconnect
        return;
      }
      try { sock.send(JSON.stringify({ type: 'ping' })); } catch (err) { /* onclose follows */ }
    }, HEARTBEAT);
  }

  function signedOut() {
    stopped = true;
    clearTimers();
    stopHeartbeat();
    setState('signed-out');
    var next = location.pathname + location.search;
    location.assign(LOGIN_PATH + '?next=' + encodeURIComponent(next));
  }

  /** Reconnect right now if a retry is pending (network back, tab visible again). */
  function reconnectNow() {
    if (stopped) return;
    if (ws) return;
    if (state === 'reconnecting' || state === 'offline') connect();
  }

  function leave() {
    stopped = true;
    clearTimers();
    stopHeartbeat();
    if (ws) {
      var sock = ws;
      ws = null;
      try { sock.close(1000, 'page closed'); } catch (err) { /* ignore */ }
    }
  }

  window.addEventListener('online', reconnectNow);
  window.addEventListener('offline', function () {
    if (!ws && !stopped) { clearTimers(); setState('offline', { waiting: 'network' }); }
  });
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') reconnectNow();
  });
  window.addEventListener('pagehide', leave);
  window.addEventListener('beforeunload', leave);
  window.addEventListener('pageshow', function (ev) {
    // Back/forward cache restored the page: its socket was closed on pagehide, so start again.
    if (ev.persisted && stopped && state !== 'signed-out') { stopped = false; failures = 0; connect(); }
  });

  window.IglooEvents = {
    on: function (type, fn) {
      (listeners[type] = listeners[type] || []).push(fn);
      return function () {
        var fns = listeners[type] || [];
        var i = fns.indexOf(fn);
        if (i >= 0) fns.splice(i, 1);
      };
    },
    onState: function (fn) {
      stateListeners.push(fn);
      return function () {
        var i = stateListeners.indexOf(fn);
        if (i >= 0) stateListeners.splice(i, 1);
      };
    },
    send: function (obj) {
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(obj));
      return true;
    },
    get state() { return state; },
    get lastSeq() { return lastSeq; },
    get label() { return label(); },
    stats: stats,
    backoffDelay: backoffDelay
  };

  render();
  connect();
})();

/* Igloo dashboard: renders the live event log and the peers panel from window.IglooEvents.
 * It never opens a socket itself; events.js owns the stream. Loaded right after events.js (both at the end of body), so no frame arrives before it listens.
 */
(function () {
  'use strict';

  var MAX_ROWS = 500;
  var HIDDEN_TYPES = { pong: true };   // replies to our own heartbeat, not news
  var PEER_TYPES = ['peer-status-internal', 'peer-ping-internal'];

  var E = window.IglooEvents;
  if (!E) return;

  function $(sel, root) { return (root || document).querySelector(sel); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmtTime(iso) {
    var d = iso ? new Date(iso) : new Date();
    if (isNaN(d.getTime())) return String(iso);
    return d.toLocaleTimeString([], { hour12: false });
  }

  function ago(iso) {
    if (!iso) return 'never';
    var t = new Date(iso).getTime();
    if (isNaN(t)) return 'never';
    var s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  /* ---------------------------------------------------------------- event log */

  var log = $('#event-log');
  var list = log && $('[data-log-list]', log);
  var countEl = log && $('[data-log-count]', log);
  var filterEl = log && $('[data-log-filter]', log);
  var clearBtn = log && $('[data-log-clear]', log);
  var emptyEl = log && $('[data-log-empty]', log);
  var knownTypes = Object.create(null);

  function applyFilter(row) {
    var want = filterEl ? filterEl.value : '';
    row.hidden = !!want && row.getAttribute('data-type') !== want;
  }

  function updateCount() {
    if (!list) return;
    var total = list.children.length;
    var shown = 0;
    for (var i = 0; i < list.children.length; i++) if (!list.children[i].hidden) shown += 1;
    if (countEl) {
      countEl.textContent = total === shown
        ? total + (total === 1 ? ' event' : ' events')
        : shown + ' of ' + total + ' events';
    }
    if (emptyEl) emptyEl.hidden = shown > 0;
  }

  function addTypeOption(type) {
    if (!filterEl || knownTypes[type]) return;
    knownTypes[type] = true;
    var opt = el('option', null, type);
    opt.value = type;
    var opts = filterEl.options;
    var at = opts.length;
    for (var i = 1; i < opts.length; i++) if (opts[i].value > type) { at = i; break; }
    filterEl.add(opt, at < opts.length ? opts[at] : null);
  }

  /** A one-line summary for frames that come without a message (peer status and ping updates). */
  function describe(frame) {
    var d = frame.data || {};
    var st = d.status || {};
    var pk = st.pubkey || d.pubkey;
    if (!pk) return '';
    var text = 'Peer ' + shortKey(pk) + (st.online === true ? ' online' : (st.online === false ? ' offline' : ''));
    if (typeof st.latency === 'number' && st.latency > 0) text += ', ' + Math.round(st.latency) + ' ms';
    return text;
  }

  function renderRow(frame) {
    var row = el('li', 'ev');
    row.setAttribute('data-type', frame.type);
    if (typeof frame.seq === 'number') row.setAttribute('data-seq', String(frame.seq));
    var head = el('div', 'ev-head');
    var time = el('time', 'ev-time', fmtTime(frame.timestamp));
    if (frame.timestamp) time.dateTime = frame.timestamp;
    head.appendChild(time);
    head.appendChild(el('span', 'badge ev-type t-' + frame.type.replace(/[^a-z0-9-]/gi, ''), frame.type));
    head.appendChild(el('span', 'ev-msg', frame.message || describe(frame)));
    if (typeof frame.seq === 'number') head.appendChild(el('span', 'ev-seq', '#' + frame.seq));
    row.appendChild(head);
    if (frame.data !== undefined && frame.data !== null) {
      var det = el('details', 'ev-data');
      det.appendChild(el('summary', null, 'data'));
      var pre = el('pre');
      try { pre.textContent = JSON.stringify(frame.data, null, 2); } catch (err) { pre.textContent = String(frame.data); }
      det.appendChild(pre);
      row.appendChild(det);
    }
    return row;
  }

  function addEvent(frame) {
    if (!list || HIDDEN_TYPES[frame.type]) return;
    addTypeOption(frame.type);
    var row = renderRow(frame);
    applyFilter(row);
    list.insertBefore(row, list.firstChild);            // newest first
    while (list.children.length > MAX_ROWS) list.removeChild(list.lastChild);
    updateCount();
  }

  if (list) {
    E.on('*', addEvent);
    if (filterEl) {
      filterEl.addEventListener('change', function () {
        for (var i = 0; i < list.children.length; i++) applyFilter(list.children[i]);
        updateCount();
      });
    }
    if (clearBtn) {
      clearBtn.addEventListener('click', function () {
        list.textContent = '';
        updateCount();
      });
    }
    updateCount();
  }

  /* ---------------------------------------------------------------- signer state */

  var runEl = $('[data-signer-running]');
  function setRunning(on, text) {
    if (!runEl) return;
    runEl.setAttribute('data-running', on ? 'true' : 'false');
    var t = $('[data-signer-running-text]', runEl);
    if (t && text) t.textContent = text;
  }
  E.on('ready', function () { setRunning(true, 'Signer running'); });

  /* ---------------------------------------------------------------- relay states */

  // Relay events carry data.url (and data.state when known); keep the relay list's dots current.
  E.on('*', function (frame) {
    var d = frame.data;
    if (!d || typeof d.url !== 'string') return;
    var rows = document.querySelectorAll('#relays [data-relay]');
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute('data-relay') !== d.url) continue;
      var st = typeof d.state === 'string' ? d.state
        : (/disconnected/i.test(frame.message || '') ? 'disconnected'
          : (/connected/i.test(frame.message || '') ? 'connected' : null));
      if (!st) return;
      rows[i].setAttribute('data-state', st);
      var pill = rows[i].querySelector('.pill');
      if (pill) { pill.textContent = st; pill.hidden = false; }
    }
  });

  /* ---------------------------------------------------------------- peers panel */

  var panel = $('#peers');
  var peersUrl = panel && panel.getAttribute('data-peers-url');
  var peerList = panel && $('[data-peer-list]', panel);
  var peerNote = panel && $('[data-peer-note]', panel);
  var onlineEl = panel && $('[data-peer-online]', panel);
  var totalEl = panel && $('[data-peer-total]', panel);
  var peers = [];   // [{pubkey, online, lastSeen, latency, policy}]

  /** Peer keys arrive both x-only and 33-byte compressed; compare on the x coordinate. */
  function xkey(pk) {
    pk = String(pk || '').toLowerCase();
    return pk.length === 66 && (pk.indexOf('02') === 0 || pk.indexOf('03') === 0) ? pk.slice(2) : pk;
  }

  function shortKey(pk) {
    var x = xkey(pk);
    return x.length > 20 ? x.slice(0, 8) + '…' + x.slice(-8) : x;
  }

  function note(text) {
    if (!peerNote) return;
    peerNote.textContent = text || '';
    peerNote.hidden = !text;
  }

  function renderPeers() {
    if (!peerList) return;
    peerList.textContent = '';
    var online = 0;
    for (var i = 0; i < peers.length; i++) {
      var p = peers[i];
      if (p.online) online += 1;
      var li = el('li', 'peer');
      li.setAttribute('data-pubkey', xkey(p.pubkey));
      li.setAttribute('data-online', p.online ? 'true' : 'false');
      var dot = el('span', 'dot');
      dot.title = p.online ? 'online' : 'offline';
      li.appendChild(dot);
      var key = el('code', 'peer-key', shortKey(p.pubkey));
      key.title = String(p.pubkey);
      li.appendChild(key);
      var meta = el('span', 'peer-meta');
      meta.appendChild(el('span', 'peer-seen', p.online ? 'online' : 'seen ' + ago(p.lastSeen)));
      if (typeof p.latency === 'number' && p.latency > 0) {
        meta.appendChild(el('span', 'peer-latency', Math.round(p.latency) + ' ms'));
      }
      li.appendChild(meta);
      peerList.appendChild(li);
    }
    if (onlineEl) onlineEl.textContent = String(online);
    if (totalEl) totalEl.textContent = String(peers.length);
    panel.setAttribute('data-online', String(online));
  }

  function loadPeers() {
    if (!peersUrl) return;
    fetch(peersUrl, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (body) {
          return { status: res.status, body: body };
        });
      })
      .then(function (r) {
        if (r.status === 503) {
          peers = [];
          renderPeers();
          panel.setAttribute('data-node', 'none');
          note('No signer node is running yet — peers appear here once credentials are configured.');
          return;
        }
        if (r.status === 401) return;   // events.js notices the ended session and sends the user to /login
        if (r.status !== 200 || !r.body || !Array.isArray(r.body.peers)) {
          note('Could not load peers' + (r.body && r.body.error ? ': ' + r.body.error : '') + '.');
          return;
        }
        panel.setAttribute('data-node', 'running');
        peers = r.body.peers.map(function (p) {
          return { pubkey: p.pubkey, online: !!p.online, lastSeen: p.lastSeen || null,
                   latency: typeof p.latency === 'number' ? p.latency : null, policy: p.policy };
        });
        note(peers.length ? '' : 'This group has no other members.');
        renderPeers();
      })
      .catch(function () { note('Could not load peers (server unreachable).'); });
  }

  function onPeerEvent(frame) {
    var d = frame.data || {};
    var s = d.status || {};
    var pk = s.pubkey || d.pubkey;
    if (!pk) return;
    var k = xkey(pk);
    var peer = null;
    for (var i = 0; i < peers.length; i++) if (xkey(peers[i].pubkey) === k) { peer = peers[i]; break; }
    if (!peer) {
      peer = { pubkey: pk, online: false, lastSeen: null, latency: null };
      peers.push(peer);
    }
    if (typeof s.online === 'boolean') peer.online = s.online;
    if (s.lastSeen) peer.lastSeen = s.lastSeen;
    if (typeof s.latency === 'number' && s.latency > 0) peer.latency = s.latency;
    panel.setAttribute('data-node', 'running');
    note('');
    renderPeers();
  }

  if (panel) {
    for (var t = 0; t < PEER_TYPES.length; t++) E.on(PEER_TYPES[t], onPeerEvent);
    // (Re)load the snapshot whenever the stream comes (back) up, so a gap never leaves the panel stale.
    E.onState(function (state) { if (state === 'live') loadPeers(); });
    if (E.state === 'live') loadPeers();
    setInterval(function () { if (peers.length) renderPeers(); }, 15000);   // keep "seen … ago" fresh
  }

  /* ---------------------------------------------------------------- copy buttons */

  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest && ev.target.closest('[data-copy]');
    if (!btn || !navigator.clipboard) return;
    navigator.clipboard.writeText(btn.getAttribute('data-copy')).then(function () {
      btn.setAttribute('data-copied', 'true');
      setTimeout(function () { btn.removeAttribute('data-copied'); }, 1200);
    }, function () { /* clipboard refused (http): the value is selectable on the page */ });
  });

  window.IglooDashboard = { addEvent: addEvent, reloadPeers: loadPeers, peers: function () { return peers.slice(); } };
})();

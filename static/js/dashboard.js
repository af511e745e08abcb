/* Igloo dashboard: the live event log (filter by several types and by text, pause and resume, download what is
 * shown as JSON lines), the signer's running state and the copy buttons. It never opens a socket itself:
 * events.js owns the stream. Loaded right after events.js, so no frame arrives before it listens.
 * The relays, peers and activity cards have their own scripts (relays.js, peers.js, activity.js).
 */
(function () {
  'use strict';

  var MAX_ROWS = 500;
  var HIDDEN_TYPES = { pong: true };   // replies to our own heartbeat, not news

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

  /** Peer keys arrive both x-only and 33-byte compressed; show the x coordinate, shortened. */
  function shortKey(pk) {
    var x = String(pk || '').toLowerCase();
    if (x.length === 66 && (x.indexOf('02') === 0 || x.indexOf('03') === 0)) x = x.slice(2);
    return x.length > 20 ? x.slice(0, 8) + '…' + x.slice(-8) : x;
  }

  /* ---------------------------------------------------------------- event log */

  var log = $('#event-log');
  var list = log && $('[data-log-list]', log);
  var countEl = log && $('[data-log-count]', log);
  var emptyEl = log && $('[data-log-empty]', log);
  var typesBox = log && $('[data-log-types]', log);
  var typeList = log && $('[data-log-type-list]', log);
  var typesSummary = log && $('[data-log-types-summary]', log);
  var searchEl = log && $('[data-log-search]', log);
  var pauseBtn = log && $('[data-log-pause]', log);
  var pausedChip = log && $('[data-log-paused]', log);
  var downloadBtn = log && $('[data-log-download]', log);
  var clearBtn = log && $('[data-log-clear]', log);
  var frames = new WeakMap();        // row -> the frame it shows (for the download)
  var wanted = Object.create(null);  // checked types; none checked = every type
  var query = '';
  var paused = false;
  var held = [];                     // frames that arrived while paused, oldest first

  function typeBoxes() { return typeList ? typeList.querySelectorAll('input[data-log-type]') : []; }

  function readTypes() {
    wanted = Object.create(null);
    var names = [];
    var boxes = typeBoxes();
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].checked) { wanted[boxes[i].value] = true; names.push(boxes[i].value); }
    }
    if (typesSummary) {
      typesSummary.textContent = !names.length ? 'All types'
        : (names.length <= 2 ? 'Types: ' + names.join(', ') : names.length + ' types');
    }
    return names.length;
  }

  function matches(row) {
    var anyType = false;
    for (var k in wanted) { anyType = true; break; }
    if (anyType && !wanted[row.getAttribute('data-type')]) return false;
    return !query || row._text.indexOf(query) >= 0;
  }

  function applyFilter(row) { row.hidden = !matches(row); }

  function applyAll() {
    if (!list) return;
    for (var i = 0; i < list.children.length; i++) applyFilter(list.children[i]);
    updateCount();
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
    if (pausedChip) {
      pausedChip.hidden = !paused;
      pausedChip.textContent = held.length ? 'Paused · ' + held.length + ' new' : 'Paused';
    }
  }

  function addTypeOption(type) {
    if (!typeList) return;
    var boxes = typeBoxes();
    for (var i = 0; i < boxes.length; i++) if (boxes[i].value === type) return;
    var label = el('label', 'check');
    var box = el('input');
    box.type = 'checkbox';
    box.value = type;
    box.setAttribute('data-log-type', '');
    label.appendChild(box);
    label.appendChild(document.createTextNode(' ' + type));
    typeList.appendChild(label);
  }

  /** A one-line summary for frames that come without a message (peer and relay status updates). */
  function describe(frame) {
    var d = frame.data || {};
    if (frame.type === 'relay-status-internal' && typeof d.url === 'string') {
      var text = 'Relay ' + d.url + ' ' + (d.state || '');
      if (typeof d.rtt === 'number') text += ', round trip ' + Math.round(d.rtt) + ' ms';
      return text;
    }
    var st = d.status || {};
    var pk = st.pubkey || d.pubkey;
    if (!pk) return '';
    var line = 'Peer ' + shortKey(pk) + (st.online === true ? ' online' : (st.online === false ? ' offline' : ''));
    if (typeof st.latency === 'number' && st.latency > 0) line += ', ' + Math.round(st.latency) + ' ms';
    return line;
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
    var message = frame.message || describe(frame);
    head.appendChild(el('span', 'ev-msg', message));
    if (typeof frame.seq === 'number') head.appendChild(el('span', 'ev-seq', '#' + frame.seq));
    row.appendChild(head);
    var dataText = '';
    if (frame.data !== undefined && frame.data !== null) {
      var det = el('details', 'ev-data');
      det.appendChild(el('summary', null, 'data'));
      var pre = el('pre');
      try { dataText = JSON.stringify(frame.data, null, 2); } catch (err) { dataText = String(frame.data); }
      pre.textContent = dataText;
      det.appendChild(pre);
      row.appendChild(det);
    }
    row._text = (frame.type + ' ' + message + ' ' + dataText).toLowerCase();
    frames.set(row, frame);
    return row;
  }

  function insert(frame) {
    addTypeOption(frame.type);
    var row = renderRow(frame);
    applyFilter(row);
    list.insertBefore(row, list.firstChild);            // newest first
    while (list.children.length > MAX_ROWS) list.removeChild(list.lastChild);
  }

  function addEvent(frame) {
    if (!list || HIDDEN_TYPES[frame.type]) return;
    if (paused) {
      held.push(frame);
      if (held.length > MAX_ROWS) held.shift();
    } else {
      insert(frame);
    }
    updateCount();
  }

  function setPaused(on) {
    paused = on;
    if (pauseBtn) {
      pauseBtn.setAttribute('aria-pressed', on ? 'true' : 'false');
      pauseBtn.textContent = on ? 'Resume' : 'Pause';
    }
    if (!on) {
      var waiting = held;
      held = [];
      for (var i = 0; i < waiting.length; i++) insert(waiting[i]);
    }
    updateCount();
  }

  /** The rows shown (filters applied), oldest first, one JSON frame per line. */
  function visibleJsonl() {
    var lines = [];
    for (var i = list.children.length - 1; i >= 0; i--) {
      var row = list.children[i];
      if (!row.hidden && frames.has(row)) lines.push(JSON.stringify(frames.get(row)));
    }
    return lines.length ? lines.join('\n') + '\n' : '';
  }

  function download() {
    var text = visibleJsonl();
    var blob = new Blob([text], { type: 'application/x-ndjson' });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'igloo-events-' + new Date().toISOString().replace(/[:.]/g, '-') + '.jsonl';
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  if (list) {
    E.on('*', addEvent);
    if (typeList) {
      typeList.addEventListener('change', function () { readTypes(); applyAll(); });
    }
    var clearTypes = log.querySelector('[data-log-types-clear]');
    if (clearTypes) {
      clearTypes.addEventListener('click', function () {
        var boxes = typeBoxes();
        for (var i = 0; i < boxes.length; i++) boxes[i].checked = false;
        readTypes();
        applyAll();
        if (typesBox) typesBox.open = false;
      });
    }
    if (searchEl) {
      searchEl.addEventListener('input', function () {
        query = searchEl.value.trim().toLowerCase();
        applyAll();
      });
    }
    if (pauseBtn) pauseBtn.addEventListener('click', function () { setPaused(!paused); });
    if (downloadBtn) downloadBtn.addEventListener('click', download);
    if (clearBtn) {
      clearBtn.addEventListener('click', function () {
        list.textContent = '';
        held = [];
        updateCount();
      });
    }
    document.addEventListener('click', function (ev) {
      // The type menu closes when the user clicks elsewhere, as a menu would.
      if (typesBox && typesBox.open && !typesBox.contains(ev.target)) typesBox.open = false;
    });
    readTypes();
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

  /* ---------------------------------------------------------------- copy buttons */

  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest && ev.target.closest('[data-copy]');
    if (!btn || !navigator.clipboard) return;
    navigator.clipboard.writeText(btn.getAttribute('data-copy')).then(function () {
      btn.setAttribute('data-copied', 'true');
      setTimeout(function () { btn.removeAttribute('data-copied'); }, 1200);
    }, function () { /* clipboard refused (http): the value is selectable on the page */ });
  });

  window.IglooDashboard = {
    addEvent: addEvent,
    visibleJsonl: function () { return list ? visibleJsonl() : ''; },
    paused: function () { return paused; },
    held: function () { return held.length; }
  };
})();

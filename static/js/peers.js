/* Peers card: ping one peer or all, the send/receive policy toggles, reset to the default policy, and live
 * updates: peer, signing and policy events on the stream refresh the server-rendered rows (status, latency
 * sparkline, budget). The approvals panel beside it is node-actions.js's. */
(function () {
  'use strict';
  var E = window.IglooEvents;
  var C = window.IglooCards;
  var card = document.getElementById('peers');
  if (!card || !C) return;

  var resultEl = card.querySelector('[data-peers-result]');
  var pingAll = card.querySelector('[data-peers-ping-all]');

  function say(text, bad) {
    if (!resultEl) return;
    resultEl.textContent = text || '';
    resultEl.hidden = !text;
    resultEl.setAttribute('data-bad', bad ? 'true' : 'false');
  }

  function short(pk) { return pk.length > 20 ? pk.slice(0, 8) + '…' + pk.slice(-8) : pk; }

  function agoText(iso) {
    var t = new Date(iso).getTime();
    if (isNaN(t)) return 'never';
    var s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function freshenTimes() {
    var times = card.querySelectorAll('time[data-ago]');
    for (var i = 0; i < times.length; i++) times[i].textContent = agoText(times[i].getAttribute('datetime'));
  }

  function syncCard() {
    var body = card.querySelector('[data-slot="peers-body"]');
    var state = body ? body.getAttribute('data-state') : 'none';
    card.setAttribute('data-node', state);
    var summary = card.querySelector('[data-slot="peers-summary"]');
    card.setAttribute('data-online', summary ? summary.getAttribute('data-online') : '0');
    if (pingAll) pingAll.disabled = state !== 'running' || !card.querySelector('[data-pubkey]');
  }

  function refresh(delay) { C.schedule('peers', delay || 0); }

  /* A control waiting for the server is marked busy rather than disabled: disabling it would take the
     keyboard focus away, and the card's redraw puts the focus back only on the element that had it. */
  function busy(el, on) {
    if (!el) return false;
    if (on && el.getAttribute('aria-busy') === 'true') return false;
    el.setAttribute('aria-busy', on ? 'true' : 'false');
    return true;
  }

  function ping(target, button) {
    if (button && !busy(button, true)) return null;
    return C.api('POST', '/api/peers/ping', { target: target }).then(function (r) {
      busy(button, false);
      if (!r.ok) { say(r.body.error || ('Ping failed (HTTP ' + r.status + ')'), true); return; }
      if (target === 'all') {
        var results = r.body.results || [];
        var answered = results.filter(function (x) { return x.success; });
        say('Pinged ' + results.length + ' peer' + (results.length === 1 ? '' : 's') + ': ' + answered.length +
            ' answered' + (answered.length ? ' (' + answered.map(function (x) { return Math.round(x.latency) + ' ms'; }).join(', ') + ')' : '') + '.',
            answered.length < results.length);
      } else if (r.body.success) {
        say('Peer ' + short(target) + ' answered in ' + Math.round(r.body.latency) + ' ms.');
      } else {
        say('Peer ' + short(target) + ': ' + (r.body.error || 'no answer') + '.', true);
      }
      refresh();
    }, function () {
      busy(button, false);
      say('Could not reach the server.', true);
    });
  }

  function policyUrl(pk) { return '/api/peers/' + encodeURIComponent(pk) + '/policy'; }

  if (pingAll) pingAll.addEventListener('click', function () { say('Pinging every peer…'); ping('all', pingAll); });

  card.addEventListener('click', function (ev) {
    var row = ev.target.closest && ev.target.closest('[data-pubkey]');
    if (!row) return;
    var pk = row.getAttribute('data-pubkey');
    if (ev.target.closest('[data-peer-ping]')) {
      say('Pinging ' + short(pk) + '…');
      ping(pk, ev.target.closest('[data-peer-ping]'));
    } else if (ev.target.closest('[data-peer-reset]')) {
      var reset = ev.target.closest('[data-peer-reset]');
      if (!busy(reset, true)) return;
      C.api('DELETE', policyUrl(pk)).then(function (r) {
        busy(reset, false);
        if (r.ok || r.status === 404) say('Peer ' + short(pk) + ' is back to the default policy: ask and answer.');
        else say(r.body.error || ('Reset failed (HTTP ' + r.status + ')'), true);
        refresh();
      });
    }
  });

  card.addEventListener('change', function (ev) {
    var box = ev.target;
    if (!box.matches || !box.matches('input[data-policy]')) return;
    var row = box.closest('[data-pubkey]');
    var pk = row.getAttribute('data-pubkey');
    var body = {};
    body[box.getAttribute('data-policy') === 'send' ? 'allowSend' : 'allowReceive'] = box.checked;
    busy(box, true);
    C.api('PUT', policyUrl(pk), body).then(function (r) {
      busy(box, false);
      if (!r.ok) {
        box.checked = !box.checked;
        say(r.body.error || ('Policy not changed (HTTP ' + r.status + ')'), true);
      } else {
        var p = r.body.policy || {};
        say('Peer ' + short(pk) + ': ' + (p.effectiveSend ? 'asked' : 'never asked') + ' to co-sign, its requests ' +
            (p.effectiveReceive ? 'answered' : 'refused') + '.');
      }
      refresh();
    });
  });

  C.onRefresh('peers', function () { syncCard(); freshenTimes(); });

  if (E) {
    E.on('peer-status-internal', function () { refresh(200); });
    E.on('peer-ping-internal', function () { refresh(200); });
    E.on('ready', function () { refresh(0); });
    E.on('sign', function (f) { if (/response sent|rejected/.test(f.message || '')) refresh(400); });
    E.on('ecdh', function (f) { if (/response sent|rejected/.test(f.message || '')) refresh(400); });
    E.on('info', function (f) { if (/^(Peer polic|Node (starting|stopped)|Applied)/.test(f.message || '')) refresh(200); });
    E.onState(function (state) { if (state === 'live') refresh(0); });
  }
  setInterval(freshenTimes, 15000);
  syncCard();

  window.IglooPeers = { refresh: function () { return C.refresh('peers'); } };
})();

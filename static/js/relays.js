/* Relays card: add and remove relays (PUT /api/relays), go back to the default (DELETE), and keep each relay's
 * state, round trip and last error current: any relay event on the stream refreshes the server-rendered list. */
(function () {
  'use strict';
  var E = window.IglooEvents;
  var C = window.IglooCards;
  var card = document.getElementById('relays');
  if (!card || !C) return;

  var form = card.querySelector('[data-relay-add]');
  var input = form && form.querySelector('input[name=url]');
  var addButton = form && form.querySelector('[data-relay-add-button]');
  var errorEl = card.querySelector('[data-relay-error]');

  function showError(text) {
    if (!errorEl) return;
    errorEl.textContent = text || '';
    errorEl.hidden = !text;
  }

  function currentUrls() {
    var rows = card.querySelectorAll('[data-relay-list] [data-relay]');
    var urls = [];
    for (var i = 0; i < rows.length; i++) urls.push(rows[i].getAttribute('data-relay'));
    return urls;
  }

  function busy(on) {
    card.setAttribute('data-busy', on ? 'true' : 'false');
    if (addButton) { addButton.disabled = on; addButton.textContent = on ? 'Saving…' : 'Add'; }
  }

  function send(method, body) {
    busy(true);
    showError('');
    return C.api(method, '/api/relays', body).then(function (r) {
      busy(false);
      if (!r.ok) { showError(r.body.error || ('Could not change the relays (HTTP ' + r.status + ')')); return false; }
      return C.refresh('relays').then(function () { return true; });
    }, function () {
      busy(false);
      showError('Could not reach the server.');
      return false;
    });
  }

  if (form) {
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var url = input.value.trim();
      if (!url) { showError('Enter a relay URL (wss://… or ws://…).'); input.focus(); return; }
      if (!/^wss?:\/\//i.test(url)) { showError('relays: a relay URL starts with wss:// or ws://'); input.focus(); return; }
      var urls = currentUrls();
      if (urls.indexOf(url) >= 0) { showError('That relay is already in the list.'); return; }
      send('PUT', { relays: urls.concat([url]) }).then(function (ok) { if (ok) input.value = ''; });
    });
  }

  card.addEventListener('click', function (ev) {
    var remove = ev.target.closest && ev.target.closest('[data-relay-remove]');
    if (remove) {
      var gone = remove.getAttribute('data-relay-remove');
      var rest = currentUrls().filter(function (u) { return u !== gone; });
      if (rest.length) send('PUT', { relays: rest });
      return;
    }
    var reset = ev.target.closest && ev.target.closest('[data-relay-reset]');
    if (reset) send('DELETE');
  });

  if (E) {
    E.on('*', function (frame) {
      var d = frame.data || {};
      if (frame.type === 'relay-status-internal' || typeof d.url === 'string' ||
          /^(Relays changed|Relay list)/.test(frame.message || '')) {
        C.schedule('relays', 150);
      }
    });
    E.onState(function (state) { if (state === 'live') C.schedule('relays', 0); });
  }

  window.IglooRelays = { urls: currentUrls };
})();

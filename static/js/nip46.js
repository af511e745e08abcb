/* The NIP-46 page: waiting requests (Approve / Deny / Always allow / Always deny), connected apps and their
 * permissions, kept live from the event stream (events.js owns the socket; this file only listens).
 * JSON calls carry the X-XSRFToken header from the _xsrf cookie. */
(function () {
  'use strict';
  var E = window.IglooEvents;
  var dataEl = document.getElementById('nip46-data');
  if (!dataEl) return;
  var initial = JSON.parse(dataEl.textContent || '{}');

  function xsrf() {
    var m = document.cookie.match(/(?:^|;\s*)(?:__Host-xsrf|_xsrf)=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : '';
  }
  function call(method, url, body) {
    return fetch(url, {
      method: method, credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf(), Accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, status: r.status, body: j }; }); });
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function short(hex) { return hex ? hex.slice(0, 10) + '…' + hex.slice(-6) : ''; }

  /* ------------------------------------------------------------ waiting requests */
  var list = document.querySelector('[data-request-list]');
  var count = document.querySelector('[data-request-count]');
  var empty = document.querySelector('[data-request-empty]');
  var highlight = list ? list.getAttribute('data-highlight') : '';
  /* Users approve and deny; what changes permissions or ends an app is for administrators (403 otherwise),
     so only they get those controls. */
  var canAdmin = !!list && list.getAttribute('data-can-admin') === 'true';
  var pending = Object.create(null);

  function describe(r) {
    var p = r.preview || {};
    if (r.method === 'sign_event') {
      return 'Sign an event of kind ' + p.kind + ' (' + p.tags + ' tag' + (p.tags === 1 ? '' : 's') + ')';
    }
    var what = { nip44_encrypt: 'Encrypt (NIP-44) for', nip44_decrypt: 'Decrypt (NIP-44) from',
      nip04_encrypt: 'Encrypt (NIP-04) for', nip04_decrypt: 'Decrypt (NIP-04) from' }[r.method];
    return what ? what + ' ' + short(p.counterparty) : r.method;
  }

  function renderCount() {
    var n = Object.keys(pending).length;
    if (count) count.textContent = String(n);
    if (empty) empty.hidden = n > 0;
  }

  function addRequest(r) {
    if (!list || pending[r.id]) return;
    var li = el('li', 'peer nip46-request');
    li.setAttribute('data-request-id', r.id);
    li.setAttribute('data-method', r.method);
    if (r.id === highlight) li.classList.add('highlight');
    li.appendChild(el('span', 'req-what', describe(r)));
    var who = r.clientName ? r.clientName + ' (' + short(r.session) + ')' : short(r.session);
    li.appendChild(el('span', 'small muted', 'from ' + who + ', expires ' +
      new Date(r.expiresAt * 1000).toLocaleTimeString([], { hour12: false })));
    if (r.method === 'sign_event' && r.preview && r.preview.content) {
      li.appendChild(el('span', 'req-preview small', r.preview.content));
    }
    var actions = [['approve', 'Approve', 'btn-primary'], ['deny', 'Deny', 'btn-danger']];
    var scope = r.method === 'sign_event' ? 'kind' : 'method';
    if (canAdmin) {
      actions.push(['always_allow', 'Always allow this ' + scope, '']);
      actions.push(['always_deny', 'Always deny this ' + scope, 'btn-ghost']);
    }
    var box = el('span', 'chips');
    actions.forEach(function (a) {
      var b = el('button', 'btn btn-sm ' + a[2], a[1]);
      b.type = 'button';
      b.setAttribute('data-action', a[0]);
      b.addEventListener('click', function () {
        b.disabled = true;
        call('POST', '/api/nip46/requests', { id: r.id, action: a[0] }).then(function (res) {
          if (!res.ok) { b.disabled = false; li.appendChild(el('span', 'small', res.body.error || 'Failed')); }
        });
      });
      box.appendChild(b);
    });
    li.appendChild(box);
    list.appendChild(li);
    pending[r.id] = li;
    renderCount();
  }

  function settleRequest(r) {
    var li = pending[r.id];
    if (li) { li.remove(); delete pending[r.id]; renderCount(); }
    var history = document.querySelector('[data-history-list]');
    if (!history) return;
    var row = history.querySelector('[data-history-id="' + r.id + '"]');
    if (!row) {
      row = el('li', 'peer');
      row.setAttribute('data-history-id', r.id);
      history.insertBefore(row, history.firstChild);
    }
    row.textContent = '';
    row.appendChild(el('span', '', describe(r)));
    var pill = el('span', 'pill', r.status);
    pill.setAttribute('data-status', r.status);
    row.appendChild(pill);
    if (r.error) row.appendChild(el('span', 'small muted', r.error));
  }

  if (list) list.textContent = '';
  (initial.pending || []).forEach(addRequest);
  renderCount();

  /* ------------------------------------------------------------ sessions */
  var sessionsEl = document.querySelector('[data-session-list]');
  var sessionCount = document.querySelector('[data-session-count]');
  var methods = sessionsEl ? sessionsEl.getAttribute('data-methods').split(',') : [];

  function decisionSelect(value, onChange) {
    if (!canAdmin) {
      var shown = el('span', 'pill', value);
      shown.setAttribute('data-decision', value);
      return shown;
    }
    var s = el('select', 'select');
    ['allow', 'ask', 'deny'].forEach(function (d) {
      var o = el('option', '', d); o.value = d; if (d === value) o.selected = true; s.appendChild(o);
    });
    s.addEventListener('change', function () { onChange(s.value); });
    return s;
  }

  function renderSessions(sessions) {
    if (!sessionsEl) return;
    sessionsEl.textContent = '';
    if (sessionCount) sessionCount.textContent = String(sessions.length);
    if (!sessions.length) sessionsEl.appendChild(el('li', 'small muted', 'No app is connected yet.'));
    sessions.forEach(function (s) {
      var li = el('li', 'peer nip46-session');
      li.setAttribute('data-session', s.pubkey);
      var name = (s.profile && s.profile.name) || 'App ' + short(s.pubkey);
      li.appendChild(el('span', 'req-what', name));
      li.appendChild(el('span', 'pill', s.status));
      li.appendChild(el('span', 'small muted', s.origin + (s.requested.length ? ' · asked for ' + s.requested.join(', ') : '')));
      var perms = el('div', 'session-perms');
      methods.forEach(function (m) {
        var label = el('label', '', m);
        label.appendChild(decisionSelect(s.policy.methods[m], function (v) {
          var patch = { methods: {} }; patch.methods[m] = v;
          call('PUT', '/api/nip46/sessions/' + s.pubkey + '/policy', patch);
        }));
        perms.appendChild(label);
      });
      Object.keys(s.policy.kinds).forEach(function (k) {
        var label = el('label', '', 'sign_event kind ' + k);
        label.appendChild(decisionSelect(s.policy.kinds[k], function (v) {
          var patch = { kinds: {} }; patch.kinds[k] = v;
          call('PUT', '/api/nip46/sessions/' + s.pubkey + '/policy', patch);
        }));
        perms.appendChild(label);
      });
      li.appendChild(perms);
      if (!canAdmin) { sessionsEl.appendChild(li); return; }
      var revoke = el('button', 'btn btn-sm btn-danger', 'Revoke');
      revoke.type = 'button';
      revoke.setAttribute('data-revoke', s.pubkey);
      revoke.addEventListener('click', function () {
        revoke.disabled = true;
        call('DELETE', '/api/nip46/sessions/' + s.pubkey);
      });
      li.appendChild(revoke);
      sessionsEl.appendChild(li);
    });
  }

  function loadSessions() {
    fetch('/api/nip46/sessions', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : { sessions: [] }; })
      .then(function (j) { renderSessions(j.sessions || []); });
  }
  renderSessions(initial.sessions || []);

  /* ------------------------------------------------------------ live */
  if (E) {
    E.on('nip46:request', function (f) {
      if (f.data && f.data.status === 'pending') addRequest(f.data);
    });
    E.on('nip46:request_status', function (f) {
      if (f.data && f.data.status !== 'pending') settleRequest(f.data);
    });
    E.on('nip46:session_pending', loadSessions);
  }

  /* ------------------------------------------------------------ copy */
  var copy = document.querySelector('[data-bunker-copy]');
  if (copy && navigator.clipboard) {
    copy.addEventListener('click', function () {
      navigator.clipboard.writeText(copy.getAttribute('data-copy')).then(function () {
        copy.textContent = 'Copied'; setTimeout(function () { copy.textContent = 'Copy link'; }, 1500);
      });
    });
  }
  var expires = document.querySelector('time[data-expires]');
  if (expires) {
    expires.textContent = new Date(Number(expires.getAttribute('data-expires')) * 1000)
      .toLocaleTimeString([], { hour12: false });
  }
})();

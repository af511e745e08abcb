/* Signer actions: start the demo, sign a test message, approve/deny pending requests.
   JSON POSTs carry the X-XSRFToken header from the _xsrf cookie. */
(function () {
  'use strict';
  function xsrf() {
    var m = document.cookie.match(/(?:^|;\s*)(?:__Host-xsrf|_xsrf)=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : '';
  }
  function post(url, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf(), Accept: 'application/json' },
      body: JSON.stringify(body || {})
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, status: r.status, body: j }; }); });
  }
  var result = document.querySelector('[data-action-result]');
  function say(text) { if (result) result.textContent = text; }

  var demo = document.querySelector('[data-demo-start]');
  if (demo) demo.addEventListener('click', function () {
    demo.disabled = true; say('Starting demo…');
    post('/api/demo/start').then(function (r) {
      if (r.ok) { window.location.reload(); } else { demo.disabled = false; say(r.body.error || 'Failed'); }
    });
  });

  function randomHex() {
    var b = new Uint8Array(32); window.crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
  }
  var sign = document.querySelector('[data-sign-test]');
  if (sign) sign.addEventListener('click', function () {
    sign.disabled = true; say('Signing…');
    var started = Date.now();
    post('/api/sign', { message: randomHex() }).then(function (r) {
      sign.disabled = false;
      say(r.ok ? 'Signed in ' + (Date.now() - started) + ' ms: ' + r.body.signature.slice(0, 16) + '…'
               : (r.body.error || ('HTTP ' + r.status)));
    });
  });

  var list = document.querySelector('[data-approval-list]');
  var count = document.querySelector('[data-approval-count]');
  function render(items) {
    if (!list) return;
    list.textContent = '';
    if (count) count.textContent = String(items.length);
    items.forEach(function (a) {
      var li = document.createElement('li'); li.className = 'peer';
      var text = document.createElement('span');
      var what = a.kind === 'sign' ? ((a.summary.sighashes || []).length + ' signature(s)') : 'ECDH';
      text.textContent = what + ' for ' + a.peer.slice(0, 12) + '… (expires ' + new Date(a.expires).toLocaleTimeString() + ')';
      li.appendChild(text);
      ['approve', 'deny'].forEach(function (action) {
        var b = document.createElement('button');
        b.type = 'button'; b.className = 'btn btn-sm' + (action === 'deny' ? ' btn-danger' : ' btn-primary');
        b.textContent = action === 'approve' ? 'Approve' : 'Deny';
        b.addEventListener('click', function () { post('/api/approvals/' + a.id, { action: action }).then(load); });
        li.appendChild(b);
      });
      list.appendChild(li);
    });
  }
  function load() {
    if (!list) return;
    fetch('/api/approvals', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : { approvals: [] }; })
      .then(function (j) { render(j.approvals || []); });
  }
  if (list) {
    load();
    var E = window.IglooEvents;
    if (E) {
      E.on('sign', load); E.on('ecdh', load); E.on('info', load);
    }
  }
})();

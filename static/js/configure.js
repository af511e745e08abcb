/* Configure: show what the pasted credentials hold (threshold, index, group key, and whether the share belongs
   to the group) as you paste, by asking POST /api/keyset/validate. Without JavaScript the form's "Check"
   button shows the same, server-rendered. */
(function () {
  'use strict';
  var form = document.querySelector('[data-configure-form]');
  var panel = document.querySelector('[data-keyset-check]');
  if (!form || !panel) return;
  var group = form.querySelector('[name="group_cred"]');
  var share = form.querySelector('[name="share_cred"]');
  var timer = null;
  var asked = 0;

  function xsrf() {
    var m = document.cookie.match(/(?:^|;\s*)(?:_xsrf|__Host-xsrf)=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : '';
  }
  function line(valid, text, attr) {
    var span = document.createElement('span');
    span.setAttribute('data-valid', valid ? 'true' : 'false');
    span.setAttribute(attr, '');
    span.textContent = text;
    return span;
  }
  function render(r) {
    panel.textContent = '';
    if (r.group) {
      panel.appendChild(r.group.valid
        ? line(true, 'Group: ' + r.group.threshold + '-of-' + r.group.totalShares + ', public key ' + r.group.groupPubkey, 'data-check-group')
        : line(false, 'Group: ' + r.group.error, 'data-check-group'));
    }
    if (r.share) {
      panel.appendChild(r.share.valid ? line(true, 'Share: index ' + r.share.idx, 'data-check-share')
                                      : line(false, 'Share: ' + r.share.error, 'data-check-share'));
    }
    if (r.matches === true) panel.appendChild(line(true, 'The share belongs to this group.', 'data-check-match'));
    if (r.matches === false) panel.appendChild(line(false, 'This share does not belong to this group.', 'data-check-match'));
    panel.hidden = !panel.firstChild;
  }
  function check() {
    var body = { group: group.value.trim(), share: share.value.trim() };
    if (!body.group && !body.share) { panel.hidden = true; return; }
    var mine = ++asked;
    fetch('/api/keyset/validate', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf(), Accept: 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { if (j && mine === asked) render(j); })
      .catch(function () { /* the Check button still works */ });
  }
  function soon() { clearTimeout(timer); timer = setTimeout(check, 250); }
  group.addEventListener('input', soon);
  share.addEventListener('input', soon);
})();

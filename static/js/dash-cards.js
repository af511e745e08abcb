/* Dashboard cards: the shared plumbing of relays.js, peers.js and activity.js.
 *
 *   IglooCards.api(method, url, body)  -> Promise<{ok, status, body}>; JSON with the X-XSRFToken header
 *   IglooCards.refresh(name)           -> Promise; fetch /dashboard/cards/<name> (server-rendered HTML) and put
 *                                         each [data-slot] of it in place of the page's element with that slot
 *   IglooCards.schedule(name, delay)   coalesce refreshes: at most one fetch in flight per card, one pending
 *   IglooCards.onRefresh(name, fn)     fn() after each refresh of that card
 *   IglooCards.refreshes               {name: count} for tests
 *
 * A refresh keeps keyboard focus: the element focused before (by its data-focus-id) is focused again after.
 */
(function () {
  'use strict';

  var inflight = Object.create(null);
  var again = Object.create(null);
  var timers = Object.create(null);
  var listeners = Object.create(null);
  var refreshes = Object.create(null);

  function xsrf() {
    var m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : '';
  }

  function api(method, url, body) {
    var init = {
      method: method, credentials: 'same-origin', cache: 'no-store',
      headers: { Accept: 'application/json', 'X-XSRFToken': xsrf() }
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        return { ok: res.ok, status: res.status, body: json || {} };
      });
    });
  }

  function place(fresh) {
    var name = fresh.getAttribute('data-slot');
    var current = document.querySelector('[data-slot="' + name + '"]');
    if (!current || current.isEqualNode(fresh)) return;
    var active = document.activeElement;
    var focusId = active && current.contains(active) ? active.getAttribute('data-focus-id') : null;
    current.replaceWith(fresh);
    if (focusId) {
      var candidates = fresh.querySelectorAll('[data-focus-id]');
      for (var i = 0; i < candidates.length; i++) {
        if (candidates[i].getAttribute('data-focus-id') === focusId && !candidates[i].disabled) {
          candidates[i].focus();
          break;
        }
      }
    }
  }

  function refresh(name) {
    if (inflight[name]) { again[name] = true; return inflight[name]; }
    inflight[name] = fetch('/dashboard/cards/' + name, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (html === null) return;   // signed out (events.js takes the page to /login) or a server hiccup
        var tpl = document.createElement('template');
        tpl.innerHTML = html;
        var slots = tpl.content.querySelectorAll('[data-slot]');
        for (var i = 0; i < slots.length; i++) {
          if (slots[i].parentElement && slots[i].parentElement.closest('[data-slot]')) continue;
          place(slots[i]);
        }
        refreshes[name] = (refreshes[name] || 0) + 1;
        var fns = listeners[name] || [];
        for (var j = 0; j < fns.length; j++) {
          try { fns[j](); } catch (err) { console.error(err); }
        }
      })
      .catch(function () { /* unreachable server: the next event or reconnect refreshes again */ })
      .then(function () {
        inflight[name] = null;
        if (again[name]) { again[name] = false; schedule(name, 0); }
      });
    return inflight[name];
  }

  function schedule(name, delay) {
    if (timers[name]) return;
    timers[name] = setTimeout(function () { timers[name] = null; refresh(name); }, delay || 0);
  }

  function onRefresh(name, fn) { (listeners[name] = listeners[name] || []).push(fn); }

  window.IglooCards = { api: api, refresh: refresh, schedule: schedule, onRefresh: onRefresh, refreshes: refreshes };
})();

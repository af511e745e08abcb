/* Signing activity card: after signing and ECDH events, fetch the server-rendered chart again (coalesced), and
 * every few minutes anyway, since the 24-hour window slides. */
(function () {
  'use strict';
  var E = window.IglooEvents;
  var C = window.IglooCards;
  if (!document.getElementById('activity') || !C) return;
  var COUNTED = /(shares aggregated|response sent|request rejected|aggregation failed)/;
  if (E) {
    E.on('sign', function (f) { if (COUNTED.test(f.message || '')) C.schedule('activity', 1000); });
    E.on('ecdh', function (f) { if (COUNTED.test(f.message || '')) C.schedule('activity', 1000); });
    E.onState(function (state) { if (state === 'live') C.schedule('activity', 0); });
  }
  setInterval(function () { C.schedule('activity', 0); }, 300000);
})();

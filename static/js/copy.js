/* Copy buttons: any [data-copy] button copies its value and says so for a moment. The pages work without
   this file (the values are on the page to select by hand). */
(function () {
  'use strict';
  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest && ev.target.closest('[data-copy]');
    if (!btn || !navigator.clipboard) return;
    var label = btn.textContent;
    navigator.clipboard.writeText(btn.getAttribute('data-copy')).then(function () {
      btn.setAttribute('data-copied', '');
      btn.textContent = 'Copied';
      setTimeout(function () { btn.removeAttribute('data-copied'); btn.textContent = label; }, 1500);
    }, function () { btn.textContent = 'Select and copy by hand'; });
  });
})();

/*! cafe24-komoju external checkout loader, v__CAFE24_KOMOJU_VERSION__.
 * Installed in the mall's skin by Cafe24's Scripttag API (with its integrity value).
 * It only loads the button script from the payment app; nothing else. */
(function () {
  "use strict";
  if (window.top !== window.self) return;
  if (window.__cafe24KomojuLoader) return;
  window.__cafe24KomojuLoader = true;
  var s = document.createElement("script");
  s.src = "__CAFE24_KOMOJU_BASE__/api/external-checkout/script/app.js?v=__CAFE24_KOMOJU_VERSION__";
  s.async = true;
  (document.head || document.documentElement).appendChild(s);
})();

/*
 * cafe24-komoju: the external-checkout payment button (PROTOCOL §6.3).
 *
 * Loaded on a Cafe24 mall front by the loader at {BASE}/api/external-checkout/script,
 * which the merchant's script tag installs on PRODUCT_DETAIL and ORDER_BASKET pages.
 * The server serves this file verbatim except that it writes its public base URL into
 * BASE below. Flow (Cafe24 "External Checkout", C.1 and C.2):
 *   1. render: GET /script/data for the shop (its texts in the page's language),
 *      CAFE24API.init, getCustomerIDInfo, then a button in #appPaymentButtonBox;
 *   2. on click: GET /script/hmac, CAFE24API.precreateOrder (reserves the order),
 *      POST /payload, then go to the KOMOJU hosted page (or the merchant's review page).
 * Plain ES2017, no dependency. Nothing from a server is ever parsed as HTML: text goes
 * through textContent only. The only global it sets is the guard below.
 */
(function () {
  "use strict";

  var BASE = "__CAFE24_KOMOJU_BASE__";
  var API = BASE + "/api/external-checkout";
  var GUARD = "__cafe24KomojuExternalCheckout";
  var SDK_VERSION = "2021-06-01";
  var ROLES = ["PRODUCT_DETAIL", "ORDER_BASKET"];
  var FETCH_TIMEOUT_MS = 15000;
  var SDK_WAIT_MS = 5000;
  var CUSTOMER_WAIT_MS = 10000;
  // English until /script/data answers with the texts in the page's language.
  var MSG_FAILED = "The payment could not be started. Please try again.";
  var MSG_RESERVE = "Your order could not be reserved. Please check your cart and try again.";

  function log(level, message, detail) {
    console[level]("[cafe24-komoju] " + message, detail === undefined ? "" : detail);
  }

  // 1. Never inside a frame (Cafe24 previews, third-party widgets), never twice.
  if (window.self !== window.top || window[GUARD]) {
    return;
  }
  window[GUARD] = true;

  // 2. Only on product and cart pages; a skin without the meta tag gets the button too.
  var roleMeta = document.querySelector('meta[name="path_role"]');
  var role = roleMeta ? roleMeta.getAttribute("content") : null;
  if (role !== null && ROLES.indexOf(role) === -1) {
    return;
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // 3. The container; a script tag in <head> runs before the body exists, so one more
  // look once the document is parsed.
  function findContainer() {
    return document.querySelector(window.CAFE24_KOMOJU_CONTAINER || "#appPaymentButtonBox");
  }

  function containerReady() {
    var found = findContainer();
    if (found || document.readyState !== "loading") {
      return Promise.resolve(found);
    }
    return new Promise(function (resolve) {
      document.addEventListener("DOMContentLoaded", function () {
        resolve(findContainer());
      }, { once: true });
    });
  }

  // 4. The Cafe24 front SDK may be defined after this script runs.
  async function waitForSdk() {
    var deadline = Date.now() + SDK_WAIT_MS;
    while (!window.CAFE24API) {
      if (Date.now() > deadline) {
        return null;
      }
      await sleep(100);
    }
    return window.CAFE24API;
  }

  // fetch with a timeout; resolves to {ok, status, body} with body the parsed JSON or null.
  async function request(url, options) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, FETCH_TIMEOUT_MS) : null;
    try {
      var resp = await fetch(url, Object.assign({
        credentials: "omit",
        headers: { Accept: "application/json" },
        signal: controller ? controller.signal : undefined
      }, options || {}));
      var body = await resp.json().catch(function () { return null; });
      return { ok: resp.ok && !!body && body.result_code === "0000", status: resp.status, body: body };
    } finally {
      clearTimeout(timer);
    }
  }

  function query(params) {
    return Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(String(params[k]));
    }).join("&");
  }

  // Calls an SDK method on the object init() returned when it has it, else on CAFE24API;
  // resolves with the callback's result, rejects with its error.
  function callSdk(sdk, name, args) {
    var target = sdk && typeof sdk[name] === "function" ? sdk : window.CAFE24API;
    return new Promise(function (resolve, reject) {
      if (!target || typeof target[name] !== "function") {
        reject(new Error("CAFE24API." + name + " is missing"));
        return;
      }
      target[name].apply(target, args.concat([function (err, res) {
        return err ? reject(err) : resolve(res);
      }]));
    });
  }

  function withTimeout(promise, ms, what) {
    return Promise.race([promise, sleep(ms).then(function () {
      throw new Error(what + " did not answer");
    })]);
  }

  // The mall's own prefix for the pages the buyer returns to: /shopN (multi-shop) and
  // /m (mobile), as the Cafe24 sample app builds it.
  function returnUrlBase() {
    var parts = window.location.pathname.split("/");
    var base = window.location.origin;
    var shop = /^shop\d+$/.test(parts[1] || "");
    if (shop) {
      base += "/" + parts[1];
    }
    if (parts[1] === "m" || (shop && parts[2] === "m")) {
      base += "/m";
    }
    return base;
  }

  // Only http(s) destinations are followed.
  function safeUrl(value) {
    try {
      var url = new URL(String(value), window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function render(container, shop) {
    var wrap = document.createElement("div");
    wrap.style.cssText = "margin:8px 0;";
    if (shop.data.lang) {
      wrap.lang = shop.data.lang;
    }
    var button = document.createElement("button");
    button.type = "button";
    button.id = "cafe24-komoju-button";
    button.textContent = shop.data.button_label || "Pay with KOMOJU";
    button.style.cssText = [
      "display:block", "width:100%", "min-height:44px", "padding:10px 16px",
      "border:0", "border-radius:6px", "background:#172b4d", "color:#fff",
      "font:600 15px/1.3 -apple-system,'Segoe UI',Roboto,'Noto Sans JP',sans-serif",
      "cursor:pointer", "box-sizing:border-box"
    ].join(";");
    var status = document.createElement("p");
    status.id = "cafe24-komoju-status";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    status.style.cssText = "margin:6px 0 0;min-height:1.2em;font-size:13px;color:#c62828;";
    wrap.appendChild(button);
    wrap.appendChild(status);
    container.appendChild(wrap);

    function setBusy(busy) {
      button.disabled = busy;
      button.style.opacity = busy ? "0.6" : "1";
      button.style.cursor = busy ? "wait" : "pointer";
    }

    button.addEventListener("click", async function () {
      if (button.disabled) {
        return;
      }
      setBusy(true);
      status.textContent = "";
      try {
        var target = await checkout(shop);
        window.location.href = target;
      } catch (e) {
        log("warn", "checkout failed:", e && e.message ? e.message : e);
        status.textContent = e && e.shopperMessage ? e.shopperMessage : MSG_FAILED;
        setBusy(false);
      }
    });

    // Back from KOMOJU through the back/forward cache: the button works again.
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) {
        setBusy(false);
      }
    });
  }

  function failure(message, shopperMessage) {
    var e = new Error(message);
    e.shopperMessage = shopperMessage || MSG_FAILED;
    return e;
  }

  // 7. One checkout attempt; resolves to the URL to send the buyer to.
  async function checkout(shop) {
    var requestTime = Math.floor(Date.now() / 1000);
    var hmac = await request(API + "/script/hmac?" + query({
      mall_id: shop.mallId, request_time: requestTime, member_id: shop.memberId
    }));
    if (!hmac.ok || !hmac.body.hmac) {
      throw failure("GET /script/hmac answered " + hmac.status);
    }

    var reserved = await callSdk(shop.sdk, "precreateOrder", [
      shop.mallId, requestTime, shop.data.client_id, shop.memberId, hmac.body.hmac
    ]).catch(function (err) {
      throw failure("precreateOrder: " + (err && err.message ? err.message : JSON.stringify(err)), MSG_RESERVE);
    });
    var order = reserved && reserved.order;
    if (!order || !order.order_id || !Array.isArray(order.items)) {
      throw failure("precreateOrder returned no order", MSG_RESERVE);
    }

    var payload = await request(API + "/payload", {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({
        mall_id: shop.mallId,
        shop_no: shop.shopNo,
        member_id: shop.memberId,
        is_guest: shop.isGuest,
        currency: shop.data.currency,
        order_id: order.order_id,
        return_notification_url: order.return_notification_url,
        return_url_base: returnUrlBase(),
        response_time: order.response_time,
        hmac: order.hmac,
        order: order.items
      })
    });
    if (!payload.ok) {
      throw failure("POST /payload answered " + payload.status + " " + JSON.stringify(payload.body));
    }
    var next = safeUrl(payload.body.review_url || payload.body.session_url);
    if (!next) {
      throw failure("POST /payload returned no usable URL");
    }
    return next;
  }

  // 3–6. Set-up: container, SDK, shop data, customer, button.
  async function start() {
    var container = await containerReady();
    if (!container) {
      log("info", "no payment button container on this page");
      return;
    }
    var api = await waitForSdk();
    if (!api) {
      log("info", "CAFE24API not found; no payment button");
      return;
    }
    var mallId = String(api.MALL_ID || "");
    var shopNo = Number(api.SHOP_NO) || 1;
    // The page's language as the skin declares it (Cafe24 writes the shop's); the server
    // falls back to Accept-Language, then the shop's language.
    var pageLang = document.documentElement.getAttribute("lang") || "";
    var data = await request(API + "/script/data?" + query({ mall_id: mallId, shop_no: shopNo, lang: pageLang }));
    if (!data.ok) {
      log("info", "KOMOJU is not available for this shop (" + data.status + ")", data.body);
      return;
    }
    var messages = data.body.messages || {};
    MSG_FAILED = messages.failed || MSG_FAILED;
    MSG_RESERVE = messages.reserve || MSG_RESERVE;
    var sdk = api.init({ client_id: data.body.client_id, version: SDK_VERSION }) || api;
    var info = await withTimeout(callSdk(sdk, "getCustomerIDInfo", []), CUSTOMER_WAIT_MS, "getCustomerIDInfo");
    var ids = (info && info.id) || {};
    var memberId = ids.member_id ? String(ids.member_id) : "";
    var isGuest = memberId === "";
    if (isGuest) {
      memberId = ids.guest_id ? String(ids.guest_id) : "";
    }
    if (!memberId) {
      log("info", "no member or guest id; no payment button");
      return;
    }
    render(container, {
      sdk: sdk, data: data.body, mallId: mallId, shopNo: shopNo, memberId: memberId, isGuest: isGuest
    });
  }

  start().catch(function (e) {
    log("warn", "payment button not shown:", e && e.message ? e.message : e);
  });
})();

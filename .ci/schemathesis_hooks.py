"""Schemathesis hooks for `.ci/schemathesis` (loaded through SCHEMATHESIS_HOOKS).

Every operation's logic sits behind a credential: Cafe24's `hash_data` (PROTOCOL.md §2),
KOMOJU's `X-Komoju-Signature` (§8), the reservation's and the launch's `hmac` (§6.3,
§12), an order `key`, a settings-site session and its CSRF token. Generated data never
holds them, so without this module every positive case stops at the check. Here, before
each call of a case generated to fit the schema (positive), the identity fields are
pointed at the demo merchant and its records and the request is signed with the
development keys (the dev server's defaults, `src/app/settings.rs`, and the demo
merchant's webhook secret from `.ci/schemathesis`). Negative cases are sent as generated:
they must be refused, and are.

The records (a paid synchronous, asynchronous and external order, a notification, a
settings session) are made once, through the service's own routes and the built-in
KOMOJU sandbox and Cafe24 stand-in, the first time a case needs them.

Environment (set by `.ci/schemathesis`): HOOK_BASE_URL (the server), HOOK_OPERATOR_TOKEN;
CAFE24_SERVICE_KEY, CAFE24_CLIENT_ID, CAFE24_CLIENT_SECRET and HOOK_WEBHOOK_SECRET
override the development keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import atexit
import json
import os
import sys
import time
import urllib.parse
from typing import Any

import schemathesis
from schemathesis.generation.modes import GenerationMode

BASE = os.environ.get("HOOK_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
SERVICE_KEY = os.environ.get("CAFE24_SERVICE_KEY", "dev-cafe24-service-key")
CLIENT_ID = os.environ.get("CAFE24_CLIENT_ID", "dev-cafe24-client-id")
CLIENT_SECRET = os.environ.get("CAFE24_CLIENT_SECRET", "dev-cafe24-client-secret")
WEBHOOK_SECRET = os.environ.get("HOOK_WEBHOOK_SECRET", "whsec_demomall_0123456789")
OPERATOR_TOKEN = os.environ.get("HOOK_OPERATOR_TOKEN", "")
# Where the per-operation tally of positive cases is written at exit (stderr when unset).
REPORT = os.environ.get("HOOK_REPORT", "")
MALL = "demomall"
PARTNER_ID = "demomall:1:demo-public"
# A second mall for the install and settings-site cases, so that `disconnect` never
# touches the demo merchant the payment cases use.
SETTINGS_MALL = "hookmall"
RETURN = f"{BASE}/hook-return"

_counter = [0]
_records: dict[str, Any] = {}


# ---- signatures ------------------------------------------------------------------------


def hash_data(*values: str) -> str:
    """Cafe24's hash_data (§2): base64(HMAC-SHA256(service key, concat(values)))."""
    mac = hmac.new(SERVICE_KEY.encode(), "".join(values).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def php_json(s: str) -> str:
    """PHP's json_encode(s, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)."""
    out = ['"']
    named = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    for ch in s:
        if ch in named:
            out.append(named[ch])
        elif ord(ch) < 0x20 or ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def reservation_hmac(order_id: str, total_major: int, response_time: str, rnu: str) -> str:
    """Cafe24's reservation hmac (src/cafe24/external_checkout.rs)."""
    message = php_json(f"{total_major}{order_id}{response_time}{rnu}")
    mac = hmac.new(f"{CLIENT_ID}{order_id}".encode(), message.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def launch_pairs(mall: str) -> list[tuple[str, str]]:
    """A launch query signed with the client secret (§12), `hmac` last. Each launch URL
    is accepted once: every one here has its own `user_name`."""
    _counter[0] += 1
    pairs = [
        ("is_multi_shop", "F"),
        ("lang", "en_US"),
        ("mall_id", mall),
        ("nation", "JP"),
        ("shop_no", "1"),
        ("timestamp", str(int(time.time()))),
        ("user_id", mall),
        ("user_name", f"hook{_counter[0]}"),
        ("user_type", "P"),
    ]
    query = urllib.parse.urlencode(pairs)
    mac = hmac.new(CLIENT_SECRET.encode(), query.encode(), hashlib.sha256)
    return [*pairs, ("hmac", base64.b64encode(mac.digest()).decode())]


def launch_query(mall: str) -> str:
    return urllib.parse.urlencode(launch_pairs(mall))


# ---- plain HTTP for making the records --------------------------------------------------


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def location(self) -> str:
        return self.headers.get("Location", "")

    def cookie(self, name: str) -> str:
        for header in self.headers.get_all("Set-Cookie") or []:
            pair = header.split(";", 1)[0]
            key, _, value = pair.partition("=")
            if key.strip() == name:
                return value.strip()
        return ""


def request(method: str, url: str, form: dict | None = None, body: bytes | None = None,
            headers: dict | None = None) -> Reply:
    """One request, redirects not followed."""
    if not url.startswith("http"):
        url = BASE + url
    parts = urllib.parse.urlsplit(url)
    headers = dict(headers or {})
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    reply = Reply(resp.status, resp.headers, resp.read())
    conn.close()
    return reply


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def fresh(prefix: str) -> str:
    _counter[0] += 1
    return f"{prefix}-{int(time.time())}-{_counter[0]}"


def expect(reply: Reply, statuses: tuple[int, ...], what: str) -> Reply:
    if reply.status not in statuses:
        raise RuntimeError(f"schemathesis hooks: {what} answered {reply.status}: {reply.text()[:300]}")
    return reply


# ---- the records ------------------------------------------------------------------------


def shop_currency() -> str:
    if "currency" not in _records:
        data = expect(request("GET", f"/api/external-checkout/script/data?mall_id={MALL}&shop_no=1"),
                      (200,), "script/data").json()
        _records["currency"] = data["currency"]
    return _records["currency"]


def amount_text() -> str:
    return "3065" if shop_currency() in ("JPY", "KRW") else "3065.00"


def paid_order(flow: str) -> dict[str, str]:
    """A checkout of `flow` (`sync`, `async`), paid by card on the sandbox and returned."""
    name = f"order_{flow}"
    if name in _records:
        return _records[name]
    family = "synchronous" if flow == "sync" else "asynchronous"
    order_id = fresh(f"hook-{flow}")
    amount, currency = amount_text(), shop_currency()
    form = {"partner_id": PARTNER_ID, "order_id": order_id, "amount": amount,
            "currency": currency, "return_url": RETURN,
            "hash_data": hash_data(amount, currency, order_id, PARTNER_ID)}
    if flow == "async":
        form["return_noty_url"] = RETURN
    started = expect(request("POST", f"/api/{family}-checkout/checkout", form=form), (200,), "checkout")
    payment_url = started.json()["payment_url"]
    callback = expect(request("POST", f"{payment_url}/pay", form={"method": "credit_card"}),
                      (302,), "the sandbox's pay").location()
    expect(request("GET", callback), (302,), "callback")
    q = query_of(callback)
    record = {"order_id": order_id, "amount": amount, "currency": currency,
              "key": q["key"], "session_id": q.get("session_id", "")}
    status = expect(request("POST", "/api/synchronous-checkout/checkout/status", form={"key": q["key"]}),
                    (200,), "status").json()
    record["tid"] = status["tid"]
    _records[name] = record
    return record


def external_order(paid: bool) -> dict[str, str]:
    """An external checkout (§6.3) from a signed reservation: still pending, with its
    review page's key and form token (the demo merchant shows the review page), or paid
    on the sandbox and returned."""
    name = "order_external_paid" if paid else "order_external"
    if name in _records:
        return _records[name]
    body = reservation()
    started = expect(request("POST", "/api/external-checkout/payload", body=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"}), (200,), "payload").json()
    review_url = started.get("review_url") or ""
    record = {"order_id": body["order_id"], "key": query_of(review_url).get("key", "")}
    if paid:
        callback = expect(request("POST", f"{started['session_url']}/pay", form={"method": "credit_card"}),
                          (302,), "the sandbox's pay").location()
        q = query_of(callback)
        record.update(key=q["key"], session_id=q.get("session_id", ""))
    elif review_url:
        record["csrf"] = csrf_of(request("GET", review_url).text())
    _records[name] = record
    return record


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.find(marker)
    return page[start + len(marker):].split('"', 1)[0] if start >= 0 else ""


def reservation() -> dict[str, Any]:
    order_id = fresh("hook-ext")
    response_time = str(int(time.time()))
    rnu = f"{BASE}/hook-notification"
    return {
        "mall_id": MALL, "shop_no": "1", "member_id": "hook", "is_guest": False,
        "currency": shop_currency(), "order_id": order_id, "return_notification_url": rnu,
        "return_url_base": BASE, "response_time": response_time,
        "hmac": reservation_hmac(order_id, 1000, response_time, rnu),
        "order": [{"product_no": "1", "product_name": "hook", "quantity": "1",
                   "product_price": "1000", "option_price": "0"}],
    }


def operator_get(path: str) -> Any:
    return expect(request("GET", f"/operator/api/v1{path}",
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}), (200,), path).json()


def notification_id() -> int:
    if "notification" not in _records:
        paid_order("async")  # its payment notice is in the outbox
        notes = operator_get("/notifications").get("notifications", [])
        _records["notification"] = notes[0]["id"] if notes else 1
    return _records["notification"]


def oauth_grant(mall: str) -> tuple[dict[str, str], str]:
    """Launch of a mall without a token → the stand-in's consent (allow) → the
    callback's query and state cookie."""
    launch = expect(request("GET", f"/cafe24/launch?{launch_query(mall)}"), (302,), "launch")
    state_cookie = launch.cookie("cafe24_komoju_oauth")
    authorize = launch.location()
    q = query_of(authorize)
    allowed = expect(request("POST", authorize.split("?", 1)[0], form={
        "client_id": q["client_id"], "redirect_uri": q["redirect_uri"], "state": q["state"],
        "scope": q["scope"], "decision": "allow"}), (302,), "the stand-in's consent")
    return query_of(allowed.location()), state_cookie


def settings_session(renew: bool = False) -> dict[str, str]:
    """A settings-site session of SETTINGS_MALL and its page's CSRF token."""
    if renew or "session" not in _records:
        launch = expect(request("GET", f"/cafe24/launch?{launch_query(SETTINGS_MALL)}"), (302,), "launch")
        cookie = launch.cookie("cafe24_komoju_session")
        if not cookie:  # no token yet: through the consent
            query, state_cookie = oauth_grant(SETTINGS_MALL)
            callback = expect(request("GET", "/cafe24/oauth/callback?" + urllib.parse.urlencode(query),
                                      headers={"Cookie": f"cafe24_komoju_oauth={state_cookie}"}),
                              (302,), "oauth callback")
            cookie = callback.cookie("cafe24_komoju_session")
        _records["session"] = {"cookie": cookie}
        save_komoju_keys(cookie)
    session = _records["session"]
    page = request("GET", f"/settings/{SETTINGS_MALL}",
                   headers={"Cookie": f"cafe24_komoju_session={session['cookie']}"})
    if page.status != 200 and not renew:
        return settings_session(renew=True)
    session["csrf"] = csrf_of(page.text())
    return session


KOMOJU_FORM = {"secret_key": "sk_test_hookmall_0123456789", "webhook_secret": "whsec_hookmall_0123456789",
               "payment_types_shown": "1", "payment_types": "credit_card", "cancel_mode": "sync",
               "locale": "ja"}


def save_komoju_keys(cookie: str) -> None:
    """The settings mall's KOMOJU keys, as a merchant saves them on the settings page."""
    headers = {"Cookie": f"cafe24_komoju_session={cookie}"}
    csrf = csrf_of(request("GET", f"/settings/{SETTINGS_MALL}", headers=headers).text())
    request("POST", f"/settings/{SETTINGS_MALL}/komoju", form={"csrf": csrf, **KOMOJU_FORM}, headers=headers)


# ---- filling a case ---------------------------------------------------------------------


def fields_of(case) -> dict[str, Any]:
    """The case's body as a dict (created when the case has none)."""
    if not isinstance(case.body, dict):
        case.body = {}
    return case.body


def fill_checkout(case, flow: str) -> None:
    body = fields_of(case)
    currency = shop_currency()
    body.update(partner_id=PARTNER_ID, currency=currency, return_url=RETURN)
    body["order_id"] = fresh(f"st-{flow}")
    if flow == "async":
        body["return_noty_url"] = RETURN
    body.pop("shop_no", None)
    amount = str(body.get("amount", ""))
    if currency in ("JPY", "KRW"):
        amount = amount.split(".")[0]
    if not amount.replace(".", "").isdigit() or not 1 <= float(amount) <= 1_000_000:
        amount = amount_text()
    body["amount"] = amount
    body["hash_data"] = hash_data(amount, currency, body["order_id"], PARTNER_ID)


def fill_cancel(case, flow: str) -> None:
    order = paid_order(flow)
    body = fields_of(case)
    body.update(partner_id=PARTNER_ID, order_id=order["order_id"], tid=order["tid"],
                currency=order["currency"], cancel_amount="1")
    body.pop("amount", None)
    if flow == "async":
        body["cancel_noty_url"] = RETURN
    else:
        body.pop("cancel_noty_url", None)
    body["hash_data"] = hash_data("1", order["currency"], order["order_id"], PARTNER_ID, order["tid"])


def sign_webhook(case, kwargs: dict) -> None:
    case.query = {"mall_id": MALL}
    raw = json.dumps(case.body if case.body is not None and not _is_not_set(case.body) else {}).encode()
    case.headers = dict(case.headers or {})
    case.headers["X-Komoju-Signature"] = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    case.headers["Content-Type"] = "application/json"
    kwargs["data"] = raw


def _is_not_set(value: Any) -> bool:
    return type(value).__name__ == "NotSet"


def with_key(case, order: dict[str, str], session: bool) -> None:
    case.query = {"key": order["key"]}
    if session and order.get("session_id"):
        case.query["session_id"] = order["session_id"]


def settings_form(case, extra: dict[str, str]) -> None:
    session = settings_session()
    case.path_parameters = dict(case.path_parameters or {}, mall_id=SETTINGS_MALL)
    case.cookies = {"cafe24_komoju_session": session["cookie"]}
    body = {"csrf": session["csrf"], **extra}
    case.body = body


def fill(case, kwargs: dict) -> None:
    method, path = case.method.upper(), case.path
    if path in ("/api/synchronous-checkout/checkout", "/api/asynchronous-checkout/checkout"):
        fill_checkout(case, "sync" if "/synchronous" in path else "async")
    elif path.endswith("/cancel") and not path.endswith("webhook"):
        fill_cancel(case, "sync" if "/synchronous-" in path else "async")
    elif path.endswith("/webhook"):
        sign_webhook(case, kwargs)
    elif path == "/api/synchronous-checkout/checkout/status":
        order = paid_order("sync")
        if method == "GET":
            case.query = {"key": order["key"]}
        else:
            case.query = {}
            fields_of(case)["key"] = order["key"]
    elif path in ("/api/synchronous-checkout/checkout/callback", "/api/asynchronous-checkout/checkout/callback"):
        with_key(case, paid_order("sync" if "/synchronous" in path else "async"), session=True)
    elif path == "/api/external-checkout/order/callback":
        with_key(case, external_order(paid=True), session=True)
    elif path == "/api/external-checkout/order/review":
        case.query = {"key": external_order(paid=False)["key"]}
    elif path == "/api/external-checkout/order/pay":
        fill_pay(case)
    elif path == "/api/external-checkout/script/data":
        case.query = {"mall_id": MALL, "shop_no": "1"}
    elif path == "/api/external-checkout/script/hmac":
        member = (case.query or {}).get("member_id")
        case.query = {"mall_id": MALL, "request_time": str(int(time.time()))}
        if isinstance(member, str) and member.isprintable() and len(member) <= 100:
            case.query["member_id"] = member
    elif path == "/api/external-checkout/payload":
        case.body = reservation()
    elif path.startswith("/operator/api/v1/"):
        fill_operator(case, path)
    elif path == "/cafe24/launch":
        case.query = dict(launch_pairs(SETTINGS_MALL))
    elif path == "/cafe24/oauth/callback":
        query, state_cookie = oauth_grant(fresh("oauth").replace("-", "_"))
        case.query = query
        case.cookies = {"cafe24_komoju_oauth": state_cookie}
    elif path == "/cafe24/webhooks":
        case.body = {"event_no": 90077, "resource": {"mall_id": "nosuchmall", "client_id": CLIENT_ID}}
    elif path.startswith("/settings/{mall_id}"):
        fill_settings(case, path)


def fill_pay(case) -> None:
    order = external_order(paid=False)
    case.body = {"key": order["key"], "csrf": order.get("csrf", "")}


def fill_operator(case, path: str) -> None:
    if path == "/operator/api/v1/orders":
        case.query = dict(case.query or {}, mall=MALL)
    elif path == "/operator/api/v1/orders/{mall_id}/{order_id}":
        case.path_parameters = {"mall_id": MALL, "order_id": paid_order("sync")["order_id"]}
    elif path == "/operator/api/v1/notifications":
        case.query = {}
    elif path == "/operator/api/v1/notifications/{id}/retry":
        case.path_parameters = {"id": notification_id()}


def fill_settings(case, path: str) -> None:
    if path == "/settings/{mall_id}":
        session = settings_session()
        case.path_parameters = {"mall_id": SETTINGS_MALL}
        case.cookies = {"cafe24_komoju_session": session["cookie"]}
    elif path == "/settings/{mall_id}/payments/{order_id}":
        order = settings_order()
        session = settings_session()
        case.path_parameters = {"mall_id": SETTINGS_MALL, "order_id": order["order_id"]}
        case.cookies = {"cafe24_komoju_session": session["cookie"]}
    elif path.endswith("/retry"):
        order = settings_order()
        settings_form(case, {})
        case.path_parameters.update(order_id=order["order_id"], id=order["notification"])
    elif path.endswith("/capture"):
        # A paid order: the Capture button answers 303 "nothing to capture now".
        order = settings_order()
        settings_form(case, {})
        case.path_parameters.update(order_id=order["order_id"])
    elif path.endswith("/payments") or path.endswith("/payments.csv"):
        session = settings_session()
        case.path_parameters = {"mall_id": SETTINGS_MALL}
        case.cookies = {"cafe24_komoju_session": session["cookie"]}
    elif path.endswith("/komoju"):
        settings_form(case, dict(KOMOJU_FORM))
    elif path.endswith("/{switch}"):
        settings_form(case, {"on": "0"})
        case.path_parameters.update(shop_no="1", switch="script")
    elif path.endswith("/webhook-test"):
        settings_form(case, {})
    elif path.endswith("/disconnect"):
        settings_form(case, {})
        _records.pop("session", None)  # the session ends with the connection


def settings_order() -> dict[str, str]:
    """An asynchronous checkout of SETTINGS_MALL's shop 1 (JPY), paid by card on the
    sandbox: its order id and its notification's id, for the order page's cases."""
    if "settings_order" in _records:
        return _records["settings_order"]
    session = settings_session()
    headers = {"Cookie": f"cafe24_komoju_session={session['cookie']}"}
    request("POST", f"/settings/{SETTINGS_MALL}/shops/1/gateway", form={"csrf": session["csrf"], "on": "1"},
            headers=headers)
    page = request("GET", f"/settings/{SETTINGS_MALL}", headers=headers).text()
    marker = f"<code>{SETTINGS_MALL}:1:"
    start = page.index(marker) + len("<code>")
    partner = page[start:page.index("</code>", start)]
    order_id = fresh("hook-page")
    form = {"partner_id": partner, "order_id": order_id, "amount": "3065", "currency": "JPY",
            "return_url": RETURN, "return_noty_url": RETURN,
            "hash_data": hash_data("3065", "JPY", order_id, partner)}
    started = expect(request("POST", "/api/asynchronous-checkout/checkout", form=form), (200,),
                     "the settings mall's checkout")
    payment_url = started.json()["payment_url"]
    callback = expect(request("POST", f"{payment_url}/pay", form={"method": "credit_card"}),
                      (302,), "the sandbox's pay").location()
    expect(request("GET", callback), (302,), "callback")
    view = expect(request("GET", f"/operator/api/v1/orders/{SETTINGS_MALL}/{order_id}",
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}), (200,), "the order").json()
    _records["settings_order"] = {"order_id": order_id, "notification": str(view["notifications"][0]["id"])}
    return _records["settings_order"]


def _is_positive(case) -> bool:
    meta = getattr(case, "meta", None)
    if meta is None:
        return True
    return meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(context, case, kwargs):
    """Fills and signs each positive case (see the module's doc)."""
    if _is_positive(case):
        fill(case, kwargs)


# (method path) → {"served": n, "refused": n}: positive cases answered 2xx/3xx, or 4xx.
_tally: dict[str, dict[str, int]] = {}


@schemathesis.hook
def after_call(context, case, response):
    """Counts, per operation, the positive cases its logic served (2xx/3xx) and the ones
    it refused (4xx): the evidence that every operation is tested past its check."""
    if os.environ.get("HOOK_DEBUG"):
        with open(os.environ["HOOK_DEBUG"], "a", encoding="utf-8") as log:
            mode = case.meta.generation.mode if case.meta else None
            log.write(f"{case.method.upper()} {case.path} {mode} {response.status_code} {case.query} {case.body!r:.80} {response.text[:120]!r}\n")
    if not _is_positive(case):
        return
    label = f"{case.method.upper()} {case.path}"
    row = _tally.setdefault(label, {"served": 0, "refused": 0})
    row["served" if response.status_code < 400 else "refused"] += 1


@atexit.register
def _report() -> None:
    if not _tally:
        return
    lines = [f"{served:6} {refused:6}  {label}" for label, (served, refused) in
             sorted((k, (v["served"], v["refused"])) for k, v in _tally.items())]
    never = [label for label, v in _tally.items() if v["served"] == 0]
    try:
        paths = request("GET", "/openapi.json").json()["paths"]
        documented = {f"{m.upper()} {p}" for p, item in paths.items() for m in item
                      if m in ("get", "post", "put", "patch", "delete")}
        unseen = sorted(documented - set(_tally))
    except Exception as e:  # the report is evidence, never a reason to fail the run itself
        unseen = [f"(the document could not be read: {e})"]
    text = "\n".join(["positive cases per operation: served (2xx/3xx), refused (4xx)", *lines,
                      f"documented operations with no positive case sent: {unseen}",
                      f"{len(_tally)} operations; served none: {len(never)} {sorted(never)}"]) + "\n"
    if REPORT:
        with open(REPORT, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stderr.write(text)

# The settings site (PROTOCOL.md §12), English. Keys: settings-<field of routes::settings_pages::Texts>.

settings-title = KOMOJU payments
settings-mall = Mall
settings-test-mode = Test mode: payments use your KOMOJU test key; no money moves.
settings-live-mode = Live mode: payments are real.
settings-not-set-up = KOMOJU is not set up yet: save your keys below, then turn a shop on.
settings-komoju = KOMOJU account
settings-komoju-help = Keys are write-only: leave a field empty to keep the saved value. A new secret key is checked with KOMOJU before it is saved.
settings-secret-key = Secret key (sk_live_… or sk_test_…)
settings-webhook-secret = Webhook secret
settings-saved-hint = Saved:
settings-not-saved = Not saved yet
settings-payment-types = Payment types to offer
settings-cancel-mode = Cancellations
settings-cancel-sync = Synchronous (answer Cafe24 at once)
settings-cancel-async = Asynchronous (notify Cafe24 when KOMOJU confirms)
settings-locale = Language of KOMOJU's payment page
settings-review-page = External checkout shows a review page before KOMOJU
settings-save = Save
settings-shops = Shops
settings-shops-help = Turning a shop on registers this app as its payment gateway in Cafe24; the external checkout adds the KOMOJU button to its product and basket pages.
settings-shop = Shop
settings-currency = Currency
settings-gateway = Payment gateway
settings-external-checkout = External checkout
settings-on = On
settings-off = Off
settings-pending = Not confirmed by Cafe24
settings-turn-on = Turn on
settings-turn-off = Turn off
settings-retry = Try again
settings-webhook = KOMOJU webhook
settings-webhook-help = In the KOMOJU dashboard, add a webhook with this URL and your webhook secret, subscribed to these events:
settings-events = Events
settings-last-ping = Last signed ping received:
settings-never = none yet
settings-send-test = Send a test
settings-disconnect = Disconnect
settings-disconnect-help = Removes the payment gateway and the buttons from every shop in Cafe24, deletes the app's access to this mall and stops taking payments. Orders stay.
settings-disconnect-confirm = I understand: the payment gateway and the buttons are removed from every shop and payments stop.
settings-done = Saved.
settings-disconnected = Disconnected
settings-disconnected-help = This mall no longer takes payments through KOMOJU. Open the app from the Cafe24 admin to connect it again.
settings-error-title = Something went wrong
settings-read-only = Read-only: only the mall's representative operator can change these settings.

# The settings site's refusals with a fixed text (install::settings::SiteError::code).
site-error-no-session = Your session has ended; open the app again from the Cafe24 admin.
site-error-forbidden = This request is not allowed for this session.
site-error-read-only = Only the mall's representative operator can change these settings; you can view them.
site-error-not-connected = The app is not connected to this mall; open it again from the Cafe24 admin.
site-error-unknown-shop = No such shop in this mall.
site-error-unavailable = The service is temporarily unavailable; try again in a moment.
site-error-internal = Something went wrong on our side; try again in a moment.

# The payments page (install::settings::payments).
settings-payments = Payments
settings-payments-help = Your orders paid through KOMOJU, newest first. Times are in each shop's time zone; the From and To dates are UTC days.
settings-filter-state = State
settings-filter-all = All
settings-filter-shop = Shop no.
settings-filter-from = From
settings-filter-to = To
settings-filter-order-id = Order ID
settings-filter-show = Show
settings-col-order = Order
settings-col-amount = Amount
settings-col-state = State
settings-col-payment-type = Payment type
settings-col-updated = Last changed
settings-col-komoju = In KOMOJU
settings-open-in-komoju = Open
settings-next-page = Next page
settings-no-payments = No payments match.
settings-back-to-settings = Settings
settings-download-csv = Download as CSV

# Order states as the payments page names them (orders::state::OrderState).
state-pending = Not paid yet
state-awaiting-payment = Awaiting payment
state-authorized = Authorized
state-paid = Paid
state-amount-mismatch = Amount mismatch
state-partially-refunded = Partially refunded
state-refunded = Refunded
state-cancelled = Cancelled
state-expired = Expired
state-failed = Failed

# Field errors of the KOMOJU form (install::settings::FieldError), under their field.
site-error-field = Nothing was saved: correct the field marked below.
field-secret-key-missing = Enter your KOMOJU secret key.
field-secret-key-format = A KOMOJU secret key starts with sk_live_ or sk_test_ and has no spaces.
field-secret-key-refused = KOMOJU did not accept this secret key; nothing was saved.
field-webhook-secret-missing = Enter your KOMOJU webhook secret.
field-webhook-secret-format = The webhook secret must be 8 to 200 characters.
field-payment-types-none = Choose at least one payment type.
field-payment-types-not-offered = KOMOJU does not offer the payment type { $value } to this account.
field-payment-types-format = Payment types are KOMOJU's names, such as credit_card.
field-cancel-mode = Choose how Cafe24 cancels: synchronous or asynchronous.
field-locale = Choose Japanese, English or Korean.

# The webhook card: KOMOJU deliveries refused for their signature since the last good one.
webhook-signature-failures = Deliveries from KOMOJU that failed their signature since { $since }: { $count }. The webhook secret does not match KOMOJU's: enter the secret shown for this webhook in KOMOJU's dashboard.

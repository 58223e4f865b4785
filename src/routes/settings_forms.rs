//! The settings site's form shapes for the OpenAPI document (`routes::settings_site`
//! reads them with `install::site`'s parsers): field tables, as [`super::fields`].

use super::fields::Field;

crate::request_schema!(
    /// The settings site's KOMOJU form (§12). `payment_types` may repeat.
    KomojuSettingsForm,
    "The KOMOJU settings; `payment_types` may repeat",
    &[
        Field::required("csrf", "The session's CSRF token").max_length(200),
        Field::optional("secret_key", "KOMOJU secret key (sk_…); empty keeps the stored one").max_length(200),
        Field::optional("webhook_secret", "KOMOJU webhook secret; empty keeps the stored one").max_length(200),
        Field::optional("payment_types", "A KOMOJU payment type").max_length(50),
        Field::optional("payment_types_shown", "Marks the payment types as shown on the form").max_length(10),
        Field::optional("cancel_mode", "`sync` or `async`").one_of(&["sync", "async"]),
        Field::optional("locale", "The hosted page's language").max_length(10),
        Field::optional("external_review", "Show a review page before KOMOJU").max_length(10),
        Field::optional("capture", "Card payments: `auto` (captured at once) or `manual` (captured from the payments page); absent keeps the stored one").one_of(&["auto", "manual"]),
        Field::optional("auto_capture_after_days", "Days, 1–29, after which an uncaptured authorization is captured; absent keeps the stored one").max_length(2),
    ]
);

crate::request_schema!(
    /// A settings-site switch: `on=1|0` and the session's CSRF token.
    SwitchForm,
    "A switch",
    &[
        Field::required("csrf", "The session's CSRF token").max_length(200),
        Field::required("on", "`1` or `0`").one_of(&["1", "0"]),
    ]
);

crate::request_schema!(
    /// A settings-site button: only the session's CSRF token.
    CsrfForm,
    "A button",
    &[Field::required("csrf", "The session's CSRF token").max_length(200)]
);

//! The rules of a merchant's KOMOJU settings, one owner for the command line
//! (`merchant add`, [`super::MerchantInput::validate`]) and the settings site's form
//! (`install::settings::komoju_form`): each caller names the field its own way (a flag,
//! a form label) and adds what only it can check (the form asks KOMOJU which payment
//! types the key is offered).

/// Longest secret key or webhook secret stored, in bytes.
pub const SECRET_MAX: usize = 200;
/// Shortest webhook secret, in bytes.
pub const WEBHOOK_SECRET_MIN: usize = 8;

/// A KOMOJU setting that breaks its rule. The rule's text never holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not `sk_live_…`/`sk_test_…`, longer than [`SECRET_MAX`], or with whitespace or
    /// a control character.
    SecretKey,
    /// Shorter than [`WEBHOOK_SECRET_MIN`] or longer than [`SECRET_MAX`].
    WebhookSecret,
    /// Empty, or a type that is not KOMOJU's `a-z` and `_` (`credit_card`, `konbini`).
    PaymentTypes,
}

impl Invalid {
    /// What the field must be, to follow the caller's name of the field.
    pub fn rule(self) -> &'static str {
        match self {
            Invalid::SecretKey => "must be a KOMOJU secret key (sk_live_… or sk_test_…)",
            Invalid::WebhookSecret => "must be 8 to 200 characters",
            Invalid::PaymentTypes => "must list KOMOJU payment types, e.g. credit_card,konbini",
        }
    }
}

/// A KOMOJU secret key (KOMOJU's API reference, "Authentication"): `sk_live_…` or
/// `sk_test_…`, at most [`SECRET_MAX`] bytes, no whitespace or control character.
pub fn secret_key(key: &str) -> Result<(), Invalid> {
    let prefixed = key.starts_with("sk_live_") || key.starts_with("sk_test_");
    if !prefixed
        || key.len() > SECRET_MAX
        || key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Invalid::SecretKey);
    }
    Ok(())
}

/// A webhook secret: [`WEBHOOK_SECRET_MIN`] to [`SECRET_MAX`] bytes.
pub fn webhook_secret(secret: &str) -> Result<(), Invalid> {
    if (WEBHOOK_SECRET_MIN..=SECRET_MAX).contains(&secret.len()) {
        Ok(())
    } else {
        Err(Invalid::WebhookSecret)
    }
}

/// The payment types offered: at least one, each KOMOJU's `type_slug` shape (`a-z`, `_`).
pub fn payment_types<S: AsRef<str>>(types: &[S]) -> Result<(), Invalid> {
    let slug = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if types.is_empty() || !types.iter().all(|t| slug(t.as_ref())) {
        return Err(Invalid::PaymentTypes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_key_is_live_or_test_and_bounded() {
        assert_eq!(secret_key("sk_test_abc"), Ok(()));
        assert_eq!(secret_key("sk_live_abc"), Ok(()));
        assert_eq!(secret_key("sk_abc"), Err(Invalid::SecretKey));
        assert_eq!(secret_key("pk_test_abc"), Err(Invalid::SecretKey));
        assert_eq!(secret_key("sk_test_a b"), Err(Invalid::SecretKey));
        let long = format!("sk_test_{}", "x".repeat(SECRET_MAX));
        assert_eq!(secret_key(&long), Err(Invalid::SecretKey));
    }

    #[test]
    fn a_webhook_secret_is_8_to_200_bytes() {
        assert_eq!(webhook_secret("1234567"), Err(Invalid::WebhookSecret));
        assert_eq!(webhook_secret("12345678"), Ok(()));
        assert_eq!(
            webhook_secret(&"x".repeat(201)),
            Err(Invalid::WebhookSecret)
        );
    }

    #[test]
    fn payment_types_are_slugs() {
        assert_eq!(payment_types(&["credit_card", "konbini"]), Ok(()));
        assert_eq!(payment_types::<&str>(&[]), Err(Invalid::PaymentTypes));
        assert_eq!(payment_types(&["Credit"]), Err(Invalid::PaymentTypes));
    }
}

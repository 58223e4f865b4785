//! How a failed Cafe24 Admin API call reads on the settings site: a refusal while the app
//! is installed names the permission to add (and who must add it); anything else says
//! how far the call got.

use super::{db_error, SiteError};
use crate::cafe24::admin::Cafe24Error;
use crate::install::tokens::{self, AdminError};
use crate::services::Services;

/// The permissions of the calls the site makes (Cafe24's Admin API reference, each
/// endpoint's "SCOPE": `paymentgateway.md`, `scripttags.md`).
pub(super) const WRITE_STORE: &str = "mall.write_store";
pub(super) const READ_APPLICATION: &str = "mall.read_application";
pub(super) const WRITE_APPLICATION: &str = "mall.write_application";

/// An Admin API failure while `context` for `mall_id`, logged and shown as a page.
pub(super) fn admin_error(context: &str, mall_id: &str, e: AdminError) -> SiteError {
    log::warn!("{context} for {mall_id}: {e}");
    match e {
        AdminError::NotConnected | AdminError::Disconnected => SiteError::NotConnected,
        AdminError::Db(e) => db_error(context, e),
        AdminError::Sealed => SiteError::Internal,
        AdminError::Refused { message } => SiteError::Refused(message),
        AdminError::Cafe24(Cafe24Error::AppCredentials { .. }) => SiteError::Upstream(
            "Cafe24 refused the app's own credentials; nothing was changed. The app's operator must check its client id and secret".into(),
        ),
        AdminError::Cafe24(_) => SiteError::Upstream(format!(
            "Cafe24 did not complete the request ({context}); nothing was doubled, try again"
        )),
    }
}

/// What `scopes` (the permissions the refused call needs) the merchant or the app's
/// operator must add, after Cafe24's own `message`.
async fn refusal(app: &Services, mall_id: &str, message: &str, scopes: &[&str]) -> SiteError {
    let granted = tokens::granted_scopes(app, mall_id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let asked = app.cafe24.scopes();
    let mut text =
        format!("Cafe24 refused the request: \u{201c}{message}\u{201d}. Nothing was changed. ");
    match scopes.iter().find(|s| !granted.iter().any(|g| g == *s)) {
        Some(scope) if asked.contains(scope) => text.push_str(&format!(
            "The app's access to this mall lacks the permission {scope}: open the app again from the Cafe24 admin and allow it."
        )),
        Some(scope) => text.push_str(&format!(
            "The app does not ask for the permission {scope}: its operator must add {scope} to the app's permissions in the Cafe24 Developer Center and to CAFE24_SCOPES; then open the app again from the Cafe24 admin and allow it."
        )),
        None => text.push_str(&format!(
            "The app holds the permission {}; Cafe24 opens this API only to apps it has approved (a PG app must be approved by Cafe24): the app's operator must ask Cafe24.",
            scopes.join(", ")
        )),
    }
    SiteError::Refused(text)
}

/// A Cafe24 call's result as the site reports it; a refusal names the permission
/// (`scopes`) the call needs.
pub(super) async fn through_cafe24<T>(
    app: &Services,
    mall_id: &str,
    context: &str,
    scopes: &[&str],
    result: Result<T, AdminError>,
) -> Result<T, SiteError> {
    match result {
        Ok(value) => Ok(value),
        Err(AdminError::Refused { message }) => {
            log::warn!("{context} for {mall_id}: Cafe24 refused ({message})");
            Err(refusal(app, mall_id, &message, scopes).await)
        }
        Err(e) => Err(admin_error(context, mall_id, e)),
    }
}

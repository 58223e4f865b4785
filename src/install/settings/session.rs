//! The settings site's session and CSRF checks: which request may read the page, which
//! may post a form, and the re-check inside every write that enables something.

use super::{db_error, SiteError};
use crate::db::{self, DbError};
use crate::keys::session::Session;
use crate::services::Services;

/// True when `session` is still of the mall's current generation and the mall has
/// tokens: checked inside the transaction of every write that enables something.
pub(super) fn still_current(c: &mut db::DbConnection, session: &Session) -> Result<bool, DbError> {
    Ok(
        db::cafe24::session_generation(c, &session.mall_id)? == session.gen
            && db::cafe24::find_token(c, &session.mall_id)?.is_some(),
    )
}

/// Checks a request of the settings site for `path_mall`: the session cookie must be
/// one of ours and unexpired, for this mall, and of the mall's current session
/// generation (a disconnect ends every session); a form (`csrf` is `Some`) must carry
/// the session's CSRF token and come from a session that may change the settings (the
/// representative operator's). Errors: [`SiteError::NoSession`] (401),
/// [`SiteError::Forbidden`] or [`SiteError::ReadOnly`] (403), the database.
pub async fn authorize(
    app: &Services,
    cookie: Option<&str>,
    path_mall: &str,
    csrf: Option<Option<&str>>,
) -> Result<Session, SiteError> {
    let session = app
        .session_keys
        .verify(cookie, app.clock.unix_seconds())
        .ok_or(SiteError::NoSession)?;
    if session.mall_id != path_mall {
        log::warn!(
            "session of {} refused for mall {path_mall}",
            session.mall_id
        );
        return Err(SiteError::Forbidden);
    }
    if let Some(token) = csrf {
        if !app.session_keys.csrf_valid(&session, token) {
            log::warn!("settings form of {path_mall} without its session's CSRF token");
            return Err(SiteError::Forbidden);
        }
    }
    let mall = session.mall_id.clone();
    let generation = app
        .db
        .run(move |c| db::cafe24::session_generation(c, &mall))
        .await
        .map_err(|e| db_error("checking the session", e))?;
    if generation != session.gen {
        log::info!("a session of {path_mall} ended by a disconnect was refused");
        return Err(SiteError::NoSession);
    }
    if csrf.is_some() && !session.may_change() {
        log::warn!(
            "settings form of {path_mall} from user {} (user_type {}): read-only, refused",
            session.user_id,
            session.user_type
        );
        return Err(SiteError::ReadOnly);
    }
    Ok(session)
}

//! Disconnecting a mall from its settings page: every registration at Cafe24 removed,
//! then the tokens forgotten and every session ended ([`tokens::forget_mall`]).

use super::registration::set_gateway;
use super::{db_error, SiteError};
use crate::db::{self, merchants::Registration};
use crate::install::tokens;
use crate::keys::session::Session;
use crate::services::Services;

/// Disconnects the mall: removes every script tag and payment-gateway registration at
/// Cafe24, deletes the tokens and disables the mall. The orders stay. When Cafe24 says
/// the app is already gone, what is left is forgotten all the same. Errors: Cafe24
/// refused or failed a removal (nothing forgotten yet), the database.
pub async fn disconnect(app: &Services, session: &Session) -> Result<(), SiteError> {
    let mall_id = session.mall_id.as_str();
    let mall = mall_id.to_owned();
    let shops = app
        .db
        .run(move |c| db::merchants::shops(c, &mall))
        .await
        .map_err(|e| db_error("loading the shops", e))?;
    for shop in shops {
        let gone =
            shop.gateway_state == Registration::Off && shop.script_state == Registration::Off;
        if gone {
            continue;
        }
        match set_gateway(app, session, shop.shop_no, false).await {
            Ok(()) | Err(SiteError::NotConnected) | Err(SiteError::UnknownShop) => {}
            Err(e) => return Err(e),
        }
    }
    tokens::forget_mall(app, mall_id)
        .await
        .map_err(|e| db_error("disconnecting", e))?;
    log::info!("mall {mall_id} disconnected by its operator");
    Ok(())
}

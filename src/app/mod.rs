//! The composition root: [`settings`] read from the environment, [`startup`] building
//! the [`crate::services::Services`], the HTTP server and the background tasks from
//! them, and the [`cli`]. Everything else is below it and never imports it.

pub mod cli;
pub mod error;
pub mod inspect;
pub mod merchant_cli;
pub mod settings;
pub mod startup;

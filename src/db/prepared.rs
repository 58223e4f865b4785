//! Writes the database prepares once per connection, not once per use.
//!
//! diesel keeps a prepared statement per connection only for a query whose SQL it can
//! prove takes few shapes. It never keeps an `UPDATE` (its changeset may skip optional
//! values, so diesel assumes unboundedly many shapes), nor, on PostgreSQL, an `INSERT`
//! whose values may write `DEFAULT` (every field of a derived `Insertable`, unless the
//! struct says `treat_none_as_default_value = false`). Such statements are sent
//! unnamed: PostgreSQL parses and plans them on every use, SQLite compiles them on every
//! use (diesel's `connection::statement_cache` documentation). Four of the five
//! statements of a KOMOJU webhook were of that kind.
//!
//! The rows this service inserts on its hot paths bind `NULL` for `None` (no nullable
//! column has another default), so their inserts are kept. [`update`] is the `UPDATE`
//! for the hot paths: `UPDATE table SET changeset WHERE filter`, type-checked as diesel's
//! own (the changeset and the filter belong to the table), whose SQL has one shape per
//! call site (a changeset of `column.eq(value)` pairs, each value bound, `NULL`
//! included), so the connection keeps it, keyed by its SQL text and bind types.

use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression};
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId};
use diesel::sql_types::BoolOrNullableBool;
use diesel::{QueryResult, RunQueryDsl, Table};

/// `UPDATE table SET values WHERE filter`, prepared once per connection (see the
/// module). Run it with `execute`: the rows changed.
#[derive(Debug, Clone, Copy)]
#[must_use = "an update does nothing until it is executed"]
pub struct Update<F, V, W> {
    from: F,
    values: V,
    filter: W,
}

/// `UPDATE table SET values WHERE filter`. `values` is a changeset of `column.eq(value)`
/// (a tuple of them for several columns); `filter` a boolean expression on the table.
/// Not for a changeset that skips what is `None` (a derived `AsChangeset` with optional
/// fields): its SQL has a shape per combination, and with nothing to set it is no
/// statement at all (diesel's own `update` refuses that one; this does not look).
pub fn update<T, V, W>(table: T, values: V, filter: W) -> Update<T::FromClause, V::Changeset, W>
where
    T: Table,
    V: AsChangeset<Target = T>,
    W: Expression + AppearsOnTable<T>,
    W::SqlType: BoolOrNullableBool,
{
    Update {
        from: table.from_clause(),
        values: values.as_changeset(),
        filter,
    }
}

impl<F, V, W, DB> QueryFragment<DB> for Update<F, V, W>
where
    DB: Backend,
    F: QueryFragment<DB>,
    V: QueryFragment<DB>,
    W: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.values.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<F, V, W> QueryId for Update<F, V, W> {
    type QueryId = ();
    /// Kept under its SQL text, not its type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, V, W, Conn> RunQueryDsl<Conn> for Update<F, V, W> {}

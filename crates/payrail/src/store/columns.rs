//! What both engines share about a table's columns: one list per table
//! with named positions ([`columns!`]), rows read through one decoder per
//! record whatever the engine ([`StoredRow`]), and stored values written
//! through one description per record ([`Value`]).

/// Defines a table's column list once.
///
/// ```ignore
/// columns! {
///     /// The `partners` columns a partner is read from.
///     pub(crate) mod partner_columns, list partner_list, qualified partner_list_p as "p" {
///         id, name, …
///     }
/// }
/// ```
///
/// makes
/// - `partner_list!()`, the names as one string literal (`"id, name, …"`),
///   usable inside `concat!` to build a statement at compile time;
/// - `partner_list_p!()`, the same names qualified by the alias (`"p.id, p.name, …"`), for a join;
/// - `partner_columns::id`, `partner_columns::name`, … the position of each
///   column in that list, and `partner_columns::WIDTH`, how many there are
///   (where the next table's columns start in a joined row);
/// - `partner_list!("p")`, the names qualified by any alias.
///
/// The positions are named as the columns; `POSITION = column` pairs
/// (`{ BEFORE = before_json, … }`) name them otherwise.
macro_rules! columns {
    (
        $(#[$meta:meta])*
        $vis:vis mod $module:ident, list $list:ident, qualified $qualified:ident as $alias:literal {
            $first_index:ident = $first:ident $(, $index:ident = $column:ident)* $(,)?
        }
    ) => {
        $crate::store::columns::columns! {
            $(#[$meta])*
            $vis mod $module, list $list { $first_index = $first $(, $index = $column)* }
        }

        #[allow(unused_macros)]
        macro_rules! $qualified {
            () => {
                concat!($alias, ".", stringify!($first) $(, ", ", $alias, ".", stringify!($column))*)
            };
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis mod $module:ident, list $list:ident, qualified $qualified:ident as $alias:literal {
            $first:ident $(, $column:ident)* $(,)?
        }
    ) => {
        $crate::store::columns::columns! {
            $(#[$meta])*
            $vis mod $module, list $list, qualified $qualified as $alias { $first = $first $(, $column = $column)* }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis mod $module:ident, list $list:ident { $first:ident $(, $column:ident)* $(,)? }
    ) => {
        $crate::store::columns::columns! {
            $(#[$meta])*
            $vis mod $module, list $list { $first = $first $(, $column = $column)* }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis mod $module:ident, list $list:ident {
            $first_index:ident = $first:ident $(, $index:ident = $column:ident)* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[allow(unused_macros)]
        macro_rules! $list {
            () => {
                concat!(stringify!($first) $(, ", ", stringify!($column))*)
            };
            ($alias:literal) => {
                concat!($alias, ".", stringify!($first) $(, ", ", $alias, ".", stringify!($column))*)
            };
        }

        $(#[$meta])*
        #[allow(dead_code, non_upper_case_globals)]
        $vis mod $module {
            #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
            #[repr(usize)]
            enum Position {
                $first_index,
                $($index,)*
                WIDTH,
            }

            /// Position of this column in the list.
            pub(crate) const $first_index: usize = Position::$first_index as usize;
            $(
                /// Position of this column in the list.
                pub(crate) const $index: usize = Position::$index as usize;
            )*
            /// How many columns the list has: where a joined row's next table starts.
            pub(crate) const WIDTH: usize = Position::WIDTH as usize;
        }
    };
}

pub(crate) use columns;

/// A stored status, kind or mode that no value of the domain matches.
#[derive(Debug, thiserror::Error)]
#[error("unknown stored state {0:?}")]
pub(crate) struct BadState(pub(crate) String);

/// A row of either engine, as the shared decoders read it: the few column
/// types payrail stores (integers and text, either possibly NULL).
pub(crate) trait StoredRow {
    /// The engine's error for a column that cannot be read.
    type Error;
    /// An integer column.
    fn int(&self, at: usize) -> Result<i64, Self::Error>;
    /// An integer column that may be NULL.
    fn opt_int(&self, at: usize) -> Result<Option<i64>, Self::Error>;
    /// A text column.
    fn text(&self, at: usize) -> Result<String, Self::Error>;
    /// A text column that may be NULL.
    fn opt_text(&self, at: usize) -> Result<Option<String>, Self::Error>;
    /// A boolean column (`BOOLEAN` on PostgreSQL, 0 or 1 on SQLite).
    fn flag(&self, at: usize) -> Result<bool, Self::Error>;
    /// A binary column (`BYTEA`/`BLOB`).
    fn bytes(&self, at: usize) -> Result<Vec<u8>, Self::Error>;
    /// A binary column (`BYTEA`/`BLOB`) that may be NULL.
    fn opt_bytes(&self, at: usize) -> Result<Option<Vec<u8>>, Self::Error>;
    /// A text column read in place by `parse`, which refuses what it cannot
    /// read (a malformed reference, an unknown state).
    fn parsed<T, E>(&self, at: usize, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, Self::Error>
    where
        E: std::error::Error + Send + Sync + 'static;
    /// An integer column read by `parse`, `None` being a value it does not know.
    fn coded<T>(&self, at: usize, parse: impl FnOnce(i64) -> Option<T>) -> Result<T, Self::Error>;
    /// A text column that may be NULL, read by `parse` where it is not.
    fn opt_parsed<T, E>(&self, at: usize, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<Option<T>, Self::Error>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match self.opt_text(at)? {
            None => Ok(None),
            Some(_) => self.parsed(at, parse).map(Some),
        }
    }
}

/// A stored value as the shared code hands it to an engine: every column
/// payrail writes is an integer or text, and may be NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// An integer column (`BIGINT`/`INTEGER`).
    Int(Option<i64>),
    /// A text column.
    Text(Option<&'a str>),
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(Some(value))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(value: Option<i64>) -> Self {
        Value::Int(value)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Value::Text(value)
    }
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Value::Text(value.as_deref())
    }
}

/// Panics unless the `$n` parameters of `sql` first appear in order (`$1`,
/// then `$2`, …). SQLite numbers `$n` parameters by first appearance, not by
/// their digits, so SQL shared with PostgreSQL must keep them in order for
/// positional binding to mean the same on both engines.
#[cfg(test)]
pub(crate) fn assert_parameters_in_order(sql: &str) {
    let mut seen: Vec<u32> = Vec::new();
    for (index, _) in sql.match_indices('$') {
        let digits: String = sql[index + 1..].chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u32>() else { continue };
        if !seen.contains(&n) {
            assert_eq!(n as usize, seen.len() + 1, "${n} appears before ${} in {sql}", seen.len() + 1);
            seen.push(n);
        }
    }
}

#[cfg(test)]
mod tests {
    columns! {
        /// Three columns of a test table.
        mod sample, list sample_list, qualified sample_list_s as "s" { ID = id, NAME = name, CREATED_AT = created_at }
    }

    #[test]
    fn the_list_and_the_positions_come_from_one_list_of_names() {
        assert_eq!(sample_list!(), "id, name, created_at");
        assert_eq!(sample_list_s!(), "s.id, s.name, s.created_at");
        assert_eq!(concat!("SELECT ", sample_list!(), " FROM t"), "SELECT id, name, created_at FROM t");
        assert_eq!((sample::ID, sample::NAME, sample::CREATED_AT, sample::WIDTH), (0, 1, 2, 3));
    }

    #[test]
    #[should_panic(expected = "$2 appears before $1")]
    fn a_parameter_out_of_order_is_caught() {
        super::assert_parameters_in_order("UPDATE w SET b = b + $2 WHERE id = $1");
    }

    #[test]
    fn parameters_in_order_pass_however_often_they_repeat() {
        super::assert_parameters_in_order("SELECT $1, $2 WHERE $1 = $2 AND $3 > $1");
    }
}

//! What both engines share about a table's columns: one list per table
//! with named positions ([`columns!`]), rows read through one decoder per
//! record whatever the engine ([`StoredRow`]), and stored values written
//! through one description per record ([`Value`]).

/// Defines a table's column list once. `columns! { pub(crate) dmt_columns,
/// mod dmt_column { ackno, partner_id, … } }` gives:
///
/// - the macro `dmt_columns!()`, the list as a string literal (`"ackno,
///   partner_id, …"`) for `concat!` in SQL constants, and
///   `dmt_columns!("t")`, the same qualified for a join (`"t.ackno, …"`);
/// - the module `dmt_column`, with one `usize` per column giving its
///   position (`dmt_column::status`) and `WIDTH`, how many there are: a
///   decoder reads `base + dmt_column::status` instead of a counted number.
macro_rules! columns {
    ($(#[$doc:meta])* $vis:vis $list:ident, mod $position:ident { $first:ident $(, $rest:ident)* $(,)? }) => {
        $(#[$doc])*
        macro_rules! $list {
            () => { concat!(stringify!($first) $(, ", ", stringify!($rest))*) };
            ($alias:literal) => {
                concat!($alias, ".", stringify!($first) $(, ", ", $alias, ".", stringify!($rest))*)
            };
        }
        #[allow(unused_imports)]
        $vis use $list;

        /// Where each column of the list stands in a row that starts with it.
        #[allow(non_upper_case_globals, dead_code)]
        $vis mod $position {
            /// The columns in order; a discriminant is a position.
            #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
            #[repr(usize)]
            enum Position { $first $(, $rest)*, WIDTH }
            pub const $first: usize = Position::$first as usize;
            $(pub const $rest: usize = Position::$rest as usize;)*
            /// How many columns the list has.
            pub const WIDTH: usize = Position::WIDTH as usize;
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
    /// A text column read in place by `parse`, which refuses what it cannot
    /// read (a malformed reference, an unknown state).
    fn parsed<T, E>(&self, at: usize, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, Self::Error>
    where
        E: std::error::Error + Send + Sync + 'static;
    /// An integer column read by `parse`, `None` being a value it does not know.
    fn coded<T>(&self, at: usize, parse: impl FnOnce(i64) -> Option<T>) -> Result<T, Self::Error>;
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

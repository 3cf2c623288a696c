//! The shared row decoders and stored values (`store::columns`) on rusqlite.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Row;

use super::conversion_error;
use crate::store::columns::{BadState, StoredRow, Value};

impl StoredRow for Row<'_> {
    type Error = rusqlite::Error;

    fn int(&self, at: usize) -> rusqlite::Result<i64> {
        self.get(at)
    }

    fn opt_int(&self, at: usize) -> rusqlite::Result<Option<i64>> {
        self.get(at)
    }

    fn text(&self, at: usize) -> rusqlite::Result<String> {
        self.get(at)
    }

    fn opt_text(&self, at: usize) -> rusqlite::Result<Option<String>> {
        self.get(at)
    }

    fn flag(&self, at: usize) -> rusqlite::Result<bool> {
        self.get(at)
    }

    fn bytes(&self, at: usize) -> rusqlite::Result<Vec<u8>> {
        self.get(at)
    }

    fn opt_bytes(&self, at: usize) -> rusqlite::Result<Option<Vec<u8>>> {
        self.get(at)
    }

    fn parsed<T, E>(&self, at: usize, parse: impl FnOnce(&str) -> Result<T, E>) -> rusqlite::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let text = self.get_ref(at)?.as_str().map_err(|e| conversion_error(at, e))?;
        parse(text).map_err(|e| conversion_error(at, e))
    }

    fn coded<T>(&self, at: usize, parse: impl FnOnce(i64) -> Option<T>) -> rusqlite::Result<T> {
        let code: i64 = self.get(at)?;
        parse(code).ok_or_else(|| conversion_error(at, BadState(code.to_string())))
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Int(Some(number)) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(number)),
            Value::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Int(None) | Value::Text(None) => ToSqlOutput::Owned(rusqlite::types::Value::Null),
        })
    }
}

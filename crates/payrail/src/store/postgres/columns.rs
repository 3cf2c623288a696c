//! The shared row decoders and stored values (`store::columns`) on
//! tokio-postgres.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::store::columns::{BadState, StoredRow, Value};

impl StoredRow for Row {
    type Error = anyhow::Error;

    fn int(&self, at: usize) -> anyhow::Result<i64> {
        Ok(self.try_get(at)?)
    }

    fn opt_int(&self, at: usize) -> anyhow::Result<Option<i64>> {
        Ok(self.try_get(at)?)
    }

    fn text(&self, at: usize) -> anyhow::Result<String> {
        Ok(self.try_get(at)?)
    }

    fn opt_text(&self, at: usize) -> anyhow::Result<Option<String>> {
        Ok(self.try_get(at)?)
    }

    fn flag(&self, at: usize) -> anyhow::Result<bool> {
        Ok(self.try_get(at)?)
    }

    fn bytes(&self, at: usize) -> anyhow::Result<Vec<u8>> {
        Ok(self.try_get(at)?)
    }

    fn opt_bytes(&self, at: usize) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.try_get(at)?)
    }

    fn parsed<T, E>(&self, at: usize, parse: impl FnOnce(&str) -> Result<T, E>) -> anyhow::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Ok(parse(self.try_get(at)?)?)
    }

    fn coded<T>(&self, at: usize, parse: impl FnOnce(i64) -> Option<T>) -> anyhow::Result<T> {
        let code: i64 = self.try_get(at)?;
        Ok(parse(code).ok_or_else(|| BadState(code.to_string()))?)
    }
}

/// A shared value as a statement parameter.
pub(super) fn bind<'a>(value: &'a Value<'a>) -> &'a (dyn ToSql + Sync) {
    match value {
        Value::Int(number) => number,
        Value::Text(text) => text,
    }
}

/// Shared values as statement parameters.
pub(super) fn bind_all<'a>(values: &'a [Value<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    values.iter().map(bind).collect()
}

/// One array parameter of an `UNNEST` insert, borrowing from the rows.
pub(super) type Column<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// Column `at` of `rows` (each the values of one record) as one array
/// parameter: `bigint[]` or `text[]`, by the column's type in the first row.
pub(super) fn array<'a>(rows: &[Vec<Value<'a>>], at: usize) -> Column<'a> {
    let text = |row: &Vec<Value<'a>>| match row.get(at) {
        Some(Value::Text(text)) => *text,
        _ => None,
    };
    let number = |row: &Vec<Value<'a>>| match row.get(at) {
        Some(Value::Int(number)) => *number,
        _ => None,
    };
    match rows.first().and_then(|row| row.get(at)) {
        Some(Value::Text(_)) => Box::new(rows.iter().map(text).collect::<Vec<Option<&'a str>>>()),
        _ => Box::new(rows.iter().map(number).collect::<Vec<Option<i64>>>()),
    }
}

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

//! Reading and writing the rows the transaction SQL shares: history rows,
//! DMT routes, and the bulk lookup's statement.

use super::*;

/// Reads a row of [`sql::HISTORY`].
pub(crate) fn decode_history<R: StoredRow>(row: &R) -> Result<HistoryEntry, R::Error> {
    use history_column as at;
    Ok(HistoryEntry {
        from_status: row.opt_text(at::from_status)?,
        to_status: row.text(at::to_status)?,
        at: Timestamp::from_unix(row.int(at::at)?),
        source: row.text(at::source)?,
        reason: row.opt_text(at::reason)?,
    })
}

/// Reads a row of [`sql::ROUTE_BY_ACKNO`].
pub(crate) fn decode_route<R: StoredRow>(row: &R) -> Result<DmtRoute, R::Error> {
    use route_column as at;
    Ok(DmtRoute {
        remitter: row.parsed(at::remitter_mobile, MobileNumber::parse)?,
        beneficiary_id: row.int(at::beneficiary_id)?,
        bank: row.coded(at::bank, Bank::from_number)?,
        mode: row.parsed(at::mode, |s| TransferMode::parse(s).ok_or_else(|| BadState(s.to_owned())))?,
    })
}

/// The values of [`sql::INSERT_ROUTE`] for a new transfer.
pub(crate) fn route_values<'a>(transfer: &'a DmtTransfer, route: &'a DmtRoute) -> [Value<'a>; 7] {
    [
        transfer.ackno.into(),
        transfer.partner.number().into(),
        route.remitter.as_str().into(),
        route.beneficiary_id.into(),
        route.bank.number().into(),
        route.mode.as_str().into(),
        transfer.created_at.unix().into(),
    ]
}

/// The values of [`sql::INSERT_HISTORY`].
pub(crate) fn history_values<'a>(
    kind: TxnKind,
    id: i64,
    from: Option<&'a str>,
    to: &'a str,
    note: &'a ChangeNote,
) -> [Value<'a>; 7] {
    [
        kind.as_str().into(),
        id.into(),
        from.into(),
        to.into(),
        note.at.unix().into(),
        note.source.as_str().into(),
        note.reason.as_deref().into(),
    ]
}

/// The partner's (`$1`) records whose reference is one of `count` values
/// (`$2`…): the same text on both engines, one statement per count (each
/// prepared once and cached).
pub(crate) fn by_references_sql<T: TxnTable>(count: usize) -> String {
    let placeholders: Vec<String> = (2..count + 2).map(|n| format!("${n}")).collect();
    format!(
        "SELECT {} FROM {} WHERE partner_id = $1 AND reference_id IN ({})",
        T::COLUMNS,
        T::TABLE,
        placeholders.join(", ")
    )
}

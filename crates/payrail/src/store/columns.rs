//! One column list per table, shared by both engines: the list a query
//! selects and the positions a row decoder reads are written once, from one
//! list of names, so that a decoder never counts columns by hand.

/// Defines a table's column list once.
///
/// ```ignore
/// columns! {
///     /// The `partners` columns a partner is read from.
///     pub(crate) mod partner_columns, list partner_list, qualified partner_list_p as "p" {
///         ID = id, NAME = name, …
///     }
/// }
/// ```
///
/// makes
/// - `partner_list!()`, the names as one string literal (`"id, name, …"`),
///   usable inside `concat!` to build a statement at compile time;
/// - `partner_list_p!()`, the same names qualified by the alias (`"p.id, p.name, …"`), for a join;
/// - `partner_columns::ID`, `partner_columns::NAME`, … the position of each
///   column in that list, and `partner_columns::WIDTH`, how many there are
///   (where the next table's columns start in a joined row).
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
        }

        $(#[$meta])*
        #[allow(dead_code)]
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

//! Keyset pagination by name: stable under inserts, no OFFSET scans.

/// Which slice of a name-ordered listing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Only names strictly after this one.
    pub after: Option<String>,
    /// Only names strictly before this one.
    pub before: Option<String>,
    /// How many, at most.
    pub limit: u32,
    /// Take the last `limit` of the range instead of the first.
    pub from_end: bool,
}

/// A slice of a listing, in ascending name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Whether items exist before the first one returned (within the requested range).
    pub has_previous: bool,
    /// Whether items exist after the last one returned (within the requested range).
    pub has_next: bool,
}

impl PageRequest {
    /// The first `limit` names.
    pub fn first(limit: u32) -> Self {
        Self {
            after: None,
            before: None,
            limit,
            from_end: false,
        }
    }

    /// SQL for `SELECT {columns} FROM {table}` restricted to this page, with its bind values.
    /// One more row than `limit` is fetched to learn whether more exist.
    pub(crate) fn sql(&self, columns: &str, table: &str) -> (String, Vec<String>) {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        if let Some(after) = &self.after {
            binds.push(after.clone());
            clauses.push(format!("name > ${}", binds.len()));
        }
        if let Some(before) = &self.before {
            binds.push(before.clone());
            clauses.push(format!("name < ${}", binds.len()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let order = if self.from_end { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {columns} FROM {table}{filter} ORDER BY name {order} LIMIT {}",
            u64::from(self.limit) + 1
        );
        (sql, binds)
    }

    /// Turns the fetched rows (in query order, possibly one extra) into a page.
    pub(crate) fn finish<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        if self.from_end {
            rows.reverse();
            Page {
                items: rows,
                has_previous: more,
                has_next: self.before.is_some(),
            }
        } else {
            Page {
                items: rows,
                has_previous: self.after.is_some(),
                has_next: more,
            }
        }
    }
}

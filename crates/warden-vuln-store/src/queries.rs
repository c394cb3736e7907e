//! Reading findings: one, a filtered page, assets, the figures and the remediation spans.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};
use warden_model::Timestamp;

use warden_store::StoreError;

use super::*;

/// The due-date key of a finding without a deadline: after every real one (year 2286).
const NO_DUE: i64 = 9_999_999_999_999;
/// The severity rank of an unrated finding: after informational.
const UNRATED: i64 = 5;
/// The severity key is rank × this + due date: one integer, in one index.
const SEVERITY_STRIDE: i64 = 10_000_000_000_000;
/// The keys as SQL, exactly as the indexes of migration 0029 spell them (so they are used).
const DUE_KEY: &str = "COALESCE(due_at, 9999999999999)";
const SEVERITY_KEY: &str =
    "(COALESCE(effective, 5) * 10000000000000 + COALESCE(due_at, 9999999999999))";

impl Vulns<'_> {
    /// One finding with the scanners reporting it and its history.
    pub async fn finding(&self, id: i64) -> Result<Option<Finding>, StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        let mut f = match fetch_finding(&mut conn, id).await {
            Ok(f) => f,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let rows = sqlx::query(
            "SELECT scanner FROM vuln_sightings WHERE finding_id = $1 ORDER BY scanner",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            f.scanners.push(row.try_get("scanner")?);
        }
        let rows = sqlx::query(
            "SELECT at, actor, change, detail FROM vuln_history WHERE finding_id = $1 ORDER BY at, change",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let detail: String = row.try_get("detail")?;
            f.history.push(FindingChange {
                at: Timestamp::from_millis(row.try_get("at")?),
                actor: row.try_get("actor")?,
                change: row.try_get("change")?,
                detail: serde_json::from_str(&detail).map_err(corrupt)?,
            });
        }
        Ok(Some(f))
    }

    /// Findings matching `filter`, a page at a time: by number, or, for overdue ones, most
    /// overdue first.
    pub async fn findings(&self, filter: &FindingFilter) -> Result<FindingPage, StoreError> {
        let mut conds: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let bind = |v: Bind, binds: &mut Vec<Bind>| {
            binds.push(v);
            format!("${}", binds.len())
        };
        if filter.overdue {
            conds.push("state = 'open'".to_owned());
            let p = bind(Bind::Int(filter.now.as_millis()), &mut binds);
            conds.push(format!("due_at <= {p}"));
        } else {
            let states = if filter.states.is_empty() {
                vec![
                    FindingState::Open,
                    FindingState::Triage,
                    FindingState::NoFix,
                ]
            } else {
                filter.states.clone()
            };
            // One state as an equality, so the partial indexes on `state = 'open'` apply.
            match states.as_slice() {
                [one] => conds.push(format!("state = '{}'", one.as_str())),
                _ => {
                    let list: Vec<String> =
                        states.iter().map(|s| format!("'{}'", s.as_str())).collect();
                    conds.push(format!("state IN ({})", list.join(", ")));
                }
            }
        }
        if let Some(asset) = &filter.asset {
            let p = bind(Bind::Text(asset.clone()), &mut binds);
            conds.push(format!("asset = {p}"));
        }
        if let Some(s) = filter.severity {
            let p = bind(Bind::Int(s.rank()), &mut binds);
            conds.push(format!("effective <= {p}"));
        }
        let mut conn = self.store.pool().acquire().await?;
        let backend = self.store.location().backend();
        // The table as the queries read it.
        let mut table = "vuln_findings";
        // What the total is counted from: a common text's pattern is asked of each finding the
        // page reads, and the count reads from the texts.
        let mut count_from = CountFrom::Findings;
        if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            match text_matches(&mut conn, text).await? {
                TextMatches::Few(ids) if ids.is_empty() => {
                    return Ok(FindingPage {
                        findings: Vec::new(),
                        total: 0,
                        capped: false,
                        next: None,
                    });
                }
                // The ids are the database's own integers, written into the query rather
                // than bound (SQLite looks a numbered parameter up by walking the list).
                TextMatches::Few(ids) => {
                    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                    conds.push(format!("text_id IN ({})", list.join(", ")));
                    count_from = CountFrom::TextList;
                    // SQLite's planner, without statistics, would rather walk an asset's
                    // findings in order than read the few of those texts and sort them.
                    if backend == Backend::Sqlite {
                        table = "vuln_findings INDEXED BY vuln_findings_text";
                    }
                }
                TextMatches::Many(pattern) => {
                    count_from = CountFrom::CommonText(bind(Bind::Text(pattern), &mut binds));
                }
            }
        }
        let filter_binds = binds.len();
        let count_sql = count_sql(backend, table, &conds, &count_from, filter.count_up_to);
        if let CountFrom::CommonText(p) = &count_from {
            conds.push(match backend {
                // Asked of each finding as SQLite reads them in order, so a page stops
                // early: given the set, it would read every finding of every matching text
                // and sort them.
                Backend::Sqlite => format!(
                    "EXISTS (SELECT 1 FROM vuln_texts t WHERE t.id = vuln_findings.text_id \
                     AND t.text LIKE {p} ESCAPE '\\')"
                ),
                // PostgreSQL looks each finding's text up as it reads them in order.
                Backend::Postgres => format!(
                    "text_id IN (SELECT id FROM vuln_texts WHERE text LIKE {p} ESCAPE '\\')"
                ),
            });
        }
        let cursor = filter.after.as_deref().map(parse_cursor).transpose()?;
        // Each order is a key and the id, paged by keyset: the cursor is the last row's key
        // and id.
        let sort = if filter.overdue {
            FindingSort::Due
        } else {
            filter.sort
        };
        let key = match sort {
            FindingSort::Number => None,
            FindingSort::Due => Some(DUE_KEY),
            FindingSort::Severity => Some(SEVERITY_KEY),
        };
        if let Some((k, id)) = cursor {
            let b = bind(Bind::Int(id), &mut binds);
            match key {
                Some(key) => {
                    let a = bind(Bind::Int(k), &mut binds);
                    conds.push(format!("({key} > {a} OR ({key} = {a} AND id > {b}))"));
                }
                None => conds.push(format!("id > {b}")),
            }
        }
        let order = match key {
            Some(key) => format!("{key}, id"),
            None => "id".to_owned(),
        };
        let limit = i64::from(filter.limit.clamp(1, 1000));
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM {table} WHERE {} ORDER BY {order} LIMIT {}",
            conds.join(" AND "),
            limit + 1
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = b.bind(q);
        }
        let rows = q.fetch_all(&mut *conn).await?;
        // A first page that is not full holds every match: no second pass to count them
        // (which, for a rare search text, would read every finding again).
        let fits = cursor.is_none() && i64::try_from(rows.len()).unwrap_or(i64::MAX) <= limit;
        let counted: i64 = if fits {
            i64::try_from(rows.len()).unwrap_or(i64::MAX)
        } else {
            let mut q = sqlx::query(&count_sql);
            for b in binds.iter().take(filter_binds) {
                q = b.bind(q);
            }
            q.fetch_one(&mut *conn).await?.try_get("n")?
        };
        let (total, capped) = match filter.count_up_to {
            Some(bound) if counted > i64::from(bound) => (i64::from(bound), true),
            _ => (counted, false),
        };
        let mut findings = rows
            .iter()
            .map(finding_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if i64::try_from(findings.len()).unwrap_or(i64::MAX) > limit {
            findings.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            findings.last().map(|f| {
                let due = f.due_at.map_or(NO_DUE, |d| d.as_millis());
                let k = match sort {
                    FindingSort::Number => 0,
                    FindingSort::Due => due,
                    FindingSort::Severity => {
                        f.effective.map_or(UNRATED, |s| s.rank()) * SEVERITY_STRIDE
                            + due.clamp(0, SEVERITY_STRIDE - 1)
                    }
                };
                format!("{k}.{}", f.id)
            })
        } else {
            None
        };
        Ok(FindingPage {
            findings,
            total,
            capped,
            next,
        })
    }

    /// The assets with their tiers and open and overdue counts.
    pub async fn assets(&self, now: Timestamp) -> Result<Vec<VulnAsset>, StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        assets(&mut conn, None, now).await
    }

    /// Remediation figures at `now` for the period from `since`.
    pub async fn stats(
        &self,
        asset: Option<&str>,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<VulnStats, StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        let scope = if asset.is_some() {
            " AND asset = $3"
        } else {
            ""
        };
        fn with<'q>(
            sql: &'q str,
            since: Timestamp,
            now: Timestamp,
            asset: Option<&'q str>,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            let q = sqlx::query(sql)
                .bind(since.as_millis())
                .bind(now.as_millis());
            match asset {
                Some(a) => q.bind(a),
                None => q,
            }
        }
        let mut stats = VulnStats {
            open: BTreeMap::new(),
            triage: 0,
            no_fix: 0,
            overdue: 0,
            accepted: 0,
            fixed: BTreeMap::new(),
            due_fixed: 0,
            due_fixed_on_time: 0,
            due_missed_open: 0,
        };
        // Each count reads one partial index: open by severity, overdue and missed by due
        // date, triage and accepted by state.
        let only = |n: usize| match asset {
            Some(_) => format!(" AND asset = ${n}"),
            None => String::new(),
        };
        let count = async |conn: &mut AnyConnection, sql: String, times: &[i64]| {
            let mut q = sqlx::query(&sql);
            for t in times {
                q = q.bind(*t);
            }
            if let Some(a) = asset {
                q = q.bind(a);
            }
            q.fetch_all(&mut *conn).await
        };
        let sql = format!(
            "SELECT effective, CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings \
             WHERE state = 'open'{} GROUP BY effective",
            only(1)
        );
        for row in count(&mut conn, sql, &[]).await? {
            if let Some(s) = severity(row.try_get("effective")?)? {
                stats.open.insert(s, row.try_get("n")?);
            }
        }
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings \
             WHERE state = 'open' AND due_at <= $1{}",
            only(2)
        );
        for row in count(&mut conn, sql, &[now.as_millis()]).await? {
            stats.overdue = row.try_get("n")?;
        }
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings \
             WHERE state = 'open' AND due_at >= $1 AND due_at <= $2{}",
            only(3)
        );
        for row in count(&mut conn, sql, &[since.as_millis(), now.as_millis()]).await? {
            stats.due_missed_open = row.try_get("n")?;
        }
        for (state, slot) in [
            ("triage", &mut stats.triage),
            ("no_fix", &mut stats.no_fix),
            ("accepted", &mut stats.accepted),
        ] {
            let sql = format!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings WHERE state = '{state}'{}",
                only(1)
            );
            for row in count(&mut conn, sql, &[]).await? {
                *slot = row.try_get("n")?;
            }
        }
        let sql = format!(
            "SELECT effective, CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(SUM(fixed_at - COALESCE(fix_seen_at, first_seen)) AS BIGINT) AS took, \
             CAST(SUM(CASE WHEN due_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS due, \
             CAST(SUM(CASE WHEN due_at IS NOT NULL AND fixed_at <= due_at THEN 1 ELSE 0 END) AS BIGINT) AS on_time \
             FROM vuln_findings WHERE state = 'fixed' AND fixed_at >= $1 AND fixed_at <= $2{scope} GROUP BY effective"
        );
        for row in with(&sql, since, now, asset).fetch_all(&mut *conn).await? {
            let n: i64 = row.try_get("n")?;
            let took: Option<i64> = row.try_get("took")?;
            stats.due_fixed += row.try_get::<Option<i64>, _>("due")?.unwrap_or(0);
            stats.due_fixed_on_time += row.try_get::<Option<i64>, _>("on_time")?.unwrap_or(0);
            if let Some(s) = severity(row.try_get("effective")?)? {
                let mean = if n > 0 {
                    took.unwrap_or(0) as f64 / n as f64 / 1000.0
                } else {
                    0.0
                };
                stats.fixed.insert(s, (n, mean));
            }
        }
        Ok(stats)
    }

    /// Each finding's open interval and due date, for the burn-down from `since`: every
    /// finding first seen by `now` and not closed before `since` (open and in triage ones
    /// have no close; fixed ones close when fixed, accepted and false positives when decided).
    pub async fn spans(
        &self,
        asset: Option<&str>,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<warden_vuln::burndown::Span>, StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        // A finding's state is its latest: one accepted and later fixed counts as open until
        // fixed (its history holds the acceptance; the chart reads states, not histories).
        let sql = format!(
            "SELECT first_seen, due_at, closed FROM (SELECT asset, first_seen, due_at, \
             CASE state WHEN 'fixed' THEN fixed_at WHEN 'accepted' THEN decided_at \
             WHEN 'false_positive' THEN decided_at END AS closed \
             FROM vuln_findings WHERE first_seen <= $1) spans \
             WHERE (closed IS NULL OR closed >= $2){}",
            if asset.is_some() {
                " AND asset = $3"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql)
            .bind(now.as_millis())
            .bind(since.as_millis());
        if let Some(a) = asset {
            q = q.bind(a);
        }
        q.fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok(warden_vuln::burndown::Span {
                    opened: row.try_get("first_seen")?,
                    closed: row.try_get("closed")?,
                    due: row.try_get("due_at")?,
                })
            })
            .collect()
    }
}

pub(super) async fn assets(
    conn: &mut AnyConnection,
    only: Option<&str>,
    now: Timestamp,
) -> Result<Vec<VulnAsset>, StoreError> {
    let scope = if only.is_some() {
        "WHERE a.name = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT a.name, a.tier, \
         CAST((SELECT COUNT(*) FROM vuln_findings f WHERE f.asset = a.name AND f.state IN ('open', 'triage', 'no_fix')) AS BIGINT) AS open, \
         CAST((SELECT COUNT(*) FROM vuln_findings f WHERE f.asset = a.name AND f.state = 'open' AND f.due_at <= $1) AS BIGINT) AS overdue \
         FROM vuln_assets a {scope} ORDER BY a.name"
    );
    let mut q = sqlx::query(&sql).bind(now.as_millis());
    if let Some(a) = only {
        q = q.bind(a.to_owned());
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            Ok(VulnAsset {
                name: row.try_get("name")?,
                tier: row.try_get("tier")?,
                open: row.try_get("open")?,
                overdue: row.try_get("overdue")?,
            })
        })
        .collect()
}

/// What a page's total is counted from.
enum CountFrom {
    /// The findings, by the filters alone.
    Findings,
    /// The findings of the texts listed by id in the filters.
    TextList,
    /// The texts matching a common text, bound as this parameter, and each one's findings.
    CommonText(String),
}

/// The statement counting a page's matches: all of them, or with `bound` up to `bound` + 1
/// (which is all it reads).
fn count_sql(
    backend: Backend,
    table: &str,
    conds: &[String],
    from: &CountFrom,
    bound: Option<u32>,
) -> String {
    let limit = bound.map_or_else(String::new, |b| format!(" LIMIT {}", i64::from(b) + 1));
    let conds = conds.join(" AND ");
    let rows = match (from, backend) {
        // A common text's findings are read text by text through the text index, which
        // reads only findings that match. Read in number order and each checked, the count
        // would read every finding before the bound's, and for a text one finding in thirty
        // has, that is 300,000 of them. Each backend is told to keep that order: SQLite by
        // `CROSS JOIN` (its left table is the outer loop) and the index named; PostgreSQL by
        // a lateral subquery it cannot flatten (`OFFSET 0`), or it hashes the texts and
        // scans the findings, expecting the matches spread evenly through the table.
        (CountFrom::CommonText(p), Backend::Sqlite) => format!(
            "SELECT 1 AS one FROM vuln_texts t CROSS JOIN vuln_findings INDEXED BY vuln_findings_text \
             WHERE t.text LIKE {p} ESCAPE '\\' AND vuln_findings.text_id = t.id AND {conds}{limit}"
        ),
        (CountFrom::CommonText(p), Backend::Postgres) => format!(
            "SELECT 1 AS one FROM vuln_texts t CROSS JOIN LATERAL (SELECT 1 AS one FROM vuln_findings \
             WHERE vuln_findings.text_id = t.id AND {conds} OFFSET 0) found \
             WHERE t.text LIKE {p} ESCAPE '\\'{limit}"
        ),
        // PostgreSQL, counting up to a bound in no order, may scan the table, expecting the
        // matches spread evenly through it; an asset imported last has all its findings at
        // the end, and the count read up to 900,000 others first (how many varied with where
        // the scan joined another one: a periodic 120–175 ms answer). In number order it
        // reads them through an index.
        (CountFrom::Findings, Backend::Postgres) if bound.is_some() => {
            format!("SELECT 1 AS one FROM {table} WHERE {conds} ORDER BY id{limit}")
        }
        (CountFrom::Findings | CountFrom::TextList, _) => {
            format!("SELECT 1 AS one FROM {table} WHERE {conds}{limit}")
        }
    };
    format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ({rows}) counted")
}

/// A value bound to a built query.
pub(super) enum Bind {
    Int(i64),
    Text(String),
}

impl Bind {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.as_str()),
        }
    }
}

/// A page cursor: `DUE.ID`.
pub(super) fn parse_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bad = || {
        StoreError::Conflict(format!(
            "invalid cursor `{}`",
            cursor.chars().take(40).collect::<String>()
        ))
    };
    let (due, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        due.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}

/// The most distinct texts a search names by id; a text matching more is common enough that
/// reading the findings in order finds a page of them soon.
const FEW_TEXTS: usize = 1000;

/// What a search text matches among the findings' distinct texts.
enum TextMatches {
    /// The ids of every matching text (at most [`FEW_TEXTS`]): the findings are read by them.
    Few(Vec<i64>),
    /// More than that: the `LIKE` pattern, for the findings read in order to ask of each.
    Many(String),
}

/// Reads the distinct texts `typed` occurs in (a substring, any ASCII case), a table far smaller
/// than the findings when texts repeat across assets, so a rare text costs a read of it and
/// then of its findings alone.
async fn text_matches(conn: &mut AnyConnection, typed: &str) -> Result<TextMatches, StoreError> {
    // `\` escapes LIKE's own wildcards in what was typed.
    let escaped: String = typed
        .to_ascii_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let pattern = format!("%{escaped}%");
    let sql = format!(
        "SELECT id FROM vuln_texts WHERE text LIKE $1 ESCAPE '\\' LIMIT {}",
        FEW_TEXTS + 1
    );
    let rows = sqlx::query(&sql)
        .bind(&pattern)
        .fetch_all(&mut *conn)
        .await?;
    if rows.len() > FEW_TEXTS {
        return Ok(TextMatches::Many(pattern));
    }
    let ids = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(TextMatches::Few(ids))
}

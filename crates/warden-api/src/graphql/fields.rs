//! The size of a request, counted before it runs: every field it selects, `__typename` and
//! introspection fields included, with fragments expanded where they are spread. The schema's
//! complexity limit skips `__typename`, so fifty thousand aliases of it passed; this does not.

use async_graphql::parser::parse_query;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Most fields one request may select, counted as [`check`] counts them.
pub const MAX_FIELDS: usize = 1000;

/// Deepest nesting of selections and fragment spreads followed.
const MAX_NESTING: usize = 64;

/// `Err` with the message for the caller when `query` selects more than `max` fields. A query
/// that does not parse passes: the schema reports its syntax error.
pub fn check(query: &str, max: usize) -> Result<(), String> {
    let Ok(document) = parse_query(query) else {
        return Ok(());
    };
    let mut budget = max;
    if spend_document(&document, &mut budget).is_err() {
        return Err(format!(
            "Query is too complex: it selects more than {max} fields (each alias, `__typename` and fragment use counted)"
        ));
    }
    Ok(())
}

struct Over;

fn spend_document(document: &ExecutableDocument, budget: &mut usize) -> Result<(), Over> {
    for (_, operation) in document.operations.iter() {
        spend(&operation.node.selection_set.node, document, 0, budget)?;
    }
    Ok(())
}

fn spend(
    set: &SelectionSet,
    document: &ExecutableDocument,
    nesting: usize,
    budget: &mut usize,
) -> Result<(), Over> {
    if nesting > MAX_NESTING {
        return Err(Over);
    }
    for item in &set.items {
        // Every selection costs one, spreads and inline fragments too: the walk can never take
        // more steps than the budget, however fragments nest (an unknown one included).
        *budget = budget.checked_sub(1).ok_or(Over)?;
        match &item.node {
            Selection::Field(field) => {
                spend(
                    &field.node.selection_set.node,
                    document,
                    nesting + 1,
                    budget,
                )?;
            }
            Selection::InlineFragment(inline) => {
                spend(
                    &inline.node.selection_set.node,
                    document,
                    nesting + 1,
                    budget,
                )?;
            }
            Selection::FragmentSpread(spread) => {
                // An unknown fragment is the schema's error to report.
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    spend(
                        &fragment.node.selection_set.node,
                        document,
                        nesting + 1,
                        budget,
                    )?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typename_aliases_count() {
        let many: String = (0..1001).map(|i| format!("a{i}: __typename ")).collect();
        let err = check(&format!("{{ {many} }}"), MAX_FIELDS).unwrap_err();
        assert_eq!(
            err,
            "Query is too complex: it selects more than 1000 fields (each alias, `__typename` and fragment use counted)"
        );
        let some: String = (0..1000).map(|i| format!("a{i}: __typename ")).collect();
        assert!(check(&format!("{{ {some} }}"), MAX_FIELDS).is_ok());
    }

    #[test]
    fn spreads_of_spreads_end_within_the_budget() {
        // F0 spreads F1 twice, F1 spreads F2 twice, …: 2^63 visits if spreads were free.
        let mut q = "query { ...F0 } ".to_owned();
        for i in 0..63 {
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{n} ...F{n} }} ",
                n = i + 1
            ));
        }
        q.push_str("fragment F63 on Query { ...Nope }");
        let started = std::time::Instant::now();
        assert!(check(&q, MAX_FIELDS).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let fields: String = (0..10).map(|i| format!("f{i}: __typename ")).collect();
        let spreads = "...F ".repeat(101);
        let q = format!("query {{ {spreads} }} fragment F on Query {{ {fields} }}");
        assert!(check(&q, MAX_FIELDS).is_err());
        let q = "query { ...A } fragment A on Query { ...A }";
        assert!(
            check(q, MAX_FIELDS).is_err(),
            "a cycle is over, never a hang"
        );
        assert!(check("{ viewer { name } }", MAX_FIELDS).is_ok());
        assert!(check("{ not graphql", MAX_FIELDS).is_ok());
    }
}

//! SCIM filters (RFC 7644 §3.4.2.2): `userName eq "alice"`, `emails[type eq "work" and
//! value co "@example.com"]`, `not (active eq false) or meta.lastModified gt "2026-01-01T00:00:00Z"`.
//!
//! Parsing is by hand (the grammar is small), bounded in length and nesting, and never panics
//! (a property test feeds it arbitrary text). Names are made canonical against a
//! [`ResourceSchema`] by [`Filter::resolve`]; [`Filter::matches`] evaluates one in memory (PATCH
//! value filters), while the store compiles the same tree to SQL for lists.

use serde_json::Value;

use crate::ScimError;
use crate::schema::{Attr, Kind, ResourceSchema, find};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// The deepest nesting of parentheses, `not` and value filters accepted.
pub const MAX_DEPTH: usize = 32;

/// An attribute a filter or a PATCH path names: `userName`, `name.givenName`,
/// `urn:…:enterprise:2.0:User:department`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The extension's URN, when the attribute belongs to one.
    pub schema: Option<String>,
    /// The attribute.
    pub attr: String,
    /// The sub-attribute, if any.
    pub sub: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    /// The operator's keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `ATTR OP VALUE`. The value is a JSON string, number, boolean or null.
    Compare(AttrPath, CompareOp, Value),
    /// `ATTR pr`.
    Present(AttrPath),
    /// `A and B`.
    And(Box<Filter>, Box<Filter>),
    /// `A or B`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (A)`.
    Not(Box<Filter>),
    /// `ATTR[FILTER]`: some element of the multi-valued `ATTR` matches `FILTER`, whose paths
    /// name the element's sub-attributes.
    Each(AttrPath, Box<Filter>),
}

impl Filter {
    /// Parses a filter as a client wrote it.
    pub fn parse(text: &str) -> Result<Filter, ScimError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(ScimError::filter(format!(
                "filter is longer than {MAX_FILTER_LEN} bytes"
            )));
        }
        Filter::parse_as(text, false)
    }

    /// Parses a value filter (the part between `[` and `]`), whose paths are relative.
    pub(crate) fn parse_inner(text: &str) -> Result<Filter, ScimError> {
        Filter::parse_as(text, true)
    }

    fn parse_as(text: &str, inside: bool) -> Result<Filter, ScimError> {
        let mut p = Parser::new(text);
        let filter = p.or(0, inside)?;
        match p.next()? {
            None => Ok(filter),
            Some(t) => Err(p.unexpected(&t)),
        }
    }

    /// Checks every attribute against `schema` and makes its name canonical. An unknown
    /// attribute is `invalidFilter`.
    pub fn resolve(self, schema: &ResourceSchema) -> Result<Filter, ScimError> {
        self.resolve_in(&|path: AttrPath| resolve_path(schema, path))
    }

    fn resolve_in(
        self,
        resolve: &dyn Fn(AttrPath) -> Result<AttrPath, ScimError>,
    ) -> Result<Filter, ScimError> {
        Ok(match self {
            Filter::Compare(path, op, value) => Filter::Compare(resolve(path)?, op, value),
            Filter::Present(path) => Filter::Present(resolve(path)?),
            Filter::And(a, b) => Filter::And(
                Box::new(a.resolve_in(resolve)?),
                Box::new(b.resolve_in(resolve)?),
            ),
            Filter::Or(a, b) => Filter::Or(
                Box::new(a.resolve_in(resolve)?),
                Box::new(b.resolve_in(resolve)?),
            ),
            Filter::Not(a) => Filter::Not(Box::new(a.resolve_in(resolve)?)),
            Filter::Each(path, inner) => {
                let path = resolve(path)?;
                let parent = path.clone();
                let inner = inner.resolve_in(&|sub: AttrPath| {
                    let whole = AttrPath {
                        schema: parent.schema.clone(),
                        attr: parent.attr.clone(),
                        sub: Some(sub.attr),
                    };
                    let whole = resolve(whole)?;
                    Ok(AttrPath {
                        schema: None,
                        attr: whole.sub.unwrap_or_default(),
                        sub: None,
                    })
                })?;
                Filter::Each(path, Box::new(inner))
            }
        })
    }

    /// Whether `item` (a JSON object: a resource, or one element of a multi-valued attribute
    /// for a value filter) matches. `attrs` gives case sensitivity; text compares
    /// case-insensitively unless the attribute is `caseExact`.
    pub fn matches(&self, item: &Value, attrs: &[Attr]) -> bool {
        match self {
            Filter::And(a, b) => a.matches(item, attrs) && b.matches(item, attrs),
            Filter::Or(a, b) => a.matches(item, attrs) || b.matches(item, attrs),
            Filter::Not(a) => !a.matches(item, attrs),
            Filter::Present(path) => values(item, path).iter().any(|v| present(v)),
            Filter::Compare(path, op, want) => {
                let exact = case_exact(attrs, path);
                let found = values(item, path);
                if found.is_empty() {
                    return matches!(op, CompareOp::Ne) && !want.is_null()
                        || matches!(op, CompareOp::Eq) && want.is_null();
                }
                found.iter().any(|v| compare(v, *op, want, exact))
            }
            Filter::Each(path, inner) => {
                let subs = find(attrs, &path.attr).map_or(&[][..], |a| a.subs);
                elements(item, path)
                    .iter()
                    .any(|element| inner.matches(element, subs))
            }
        }
    }

    /// For a filter made only of `eq` comparisons joined by `and`, the attribute-value pairs
    /// it requires: what a new element must hold to match it (PATCH `add` and `replace` on
    /// `emails[type eq "work"].value` when there is no work email yet).
    pub fn required_values(&self) -> Option<Vec<(String, Value)>> {
        match self {
            Filter::Compare(path, CompareOp::Eq, value)
                if path.sub.is_none() && !value.is_null() =>
            {
                Some(vec![(path.attr.clone(), value.clone())])
            }
            Filter::And(a, b) => {
                let mut out = a.required_values()?;
                out.extend(b.required_values()?);
                Some(out)
            }
            _ => None,
        }
    }
}

fn resolve_path(schema: &ResourceSchema, path: AttrPath) -> Result<AttrPath, ScimError> {
    let shown = path.to_string();
    let (ext, attr) = schema
        .attr(path.schema.as_deref(), &path.attr)
        .ok_or_else(|| ScimError::filter(format!("unknown attribute `{shown}`")))?;
    let sub = match path.sub {
        None => None,
        Some(sub) => Some(
            find(attr.subs, &sub)
                .ok_or_else(|| ScimError::filter(format!("unknown attribute `{shown}`")))?
                .name
                .to_owned(),
        ),
    };
    Ok(AttrPath {
        schema: ext.map(str::to_owned),
        attr: attr.name.to_owned(),
        sub,
    })
}

fn case_exact(attrs: &[Attr], path: &AttrPath) -> bool {
    let Some(attr) = find(attrs, &path.attr) else {
        return false;
    };
    match &path.sub {
        None => attr.case_exact,
        Some(sub) => find(attr.subs, sub).is_some_and(|s| s.case_exact),
    }
}

/// The attribute `path` names in `item`, as a list: a multi-valued attribute's elements, or
/// the one value.
fn elements<'a>(item: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let scope = match &path.schema {
        Some(urn) => get(item, urn),
        None => Some(item),
    };
    match scope.and_then(|s| get(s, &path.attr)) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

/// The values `path` reaches in `item`, flattening multi-valued attributes. A multi-valued
/// attribute named without a sub-attribute compares by its elements' `value`.
fn values<'a>(item: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let multi = matches!(item_attr(item, path), Some(Value::Array(_)));
    elements(item, path)
        .into_iter()
        .filter_map(|e| match (&path.sub, e) {
            (Some(sub), _) => get(e, sub),
            (None, Value::Object(_)) if multi => get(e, "value"),
            (None, _) => Some(e),
        })
        .collect()
}

fn item_attr<'a>(item: &'a Value, path: &AttrPath) -> Option<&'a Value> {
    let scope = match &path.schema {
        Some(urn) => get(item, urn)?,
        None => item,
    };
    get(scope, &path.attr)
}

/// A member of a JSON object by name, in any case.
pub fn get<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    item.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(have: &Value, op: CompareOp, want: &Value, exact: bool) -> bool {
    let fold = |s: &str| {
        if exact {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    match (have, want) {
        (Value::String(h), Value::String(w)) => {
            let (h, w) = (fold(h), fold(w));
            match op {
                CompareOp::Eq => h == w,
                CompareOp::Ne => h != w,
                CompareOp::Co => h.contains(&w),
                CompareOp::Sw => h.starts_with(&w),
                CompareOp::Ew => h.ends_with(&w),
                CompareOp::Gt => h > w,
                CompareOp::Ge => h >= w,
                CompareOp::Lt => h < w,
                CompareOp::Le => h <= w,
            }
        }
        (Value::Bool(h), Value::Bool(w)) => match op {
            CompareOp::Eq => h == w,
            CompareOp::Ne => h != w,
            _ => false,
        },
        (Value::Number(h), Value::Number(w)) => {
            let (Some(h), Some(w)) = (h.as_f64(), w.as_f64()) else {
                return false;
            };
            match op {
                CompareOp::Eq => h == w,
                CompareOp::Ne => h != w,
                CompareOp::Gt => h > w,
                CompareOp::Ge => h >= w,
                CompareOp::Lt => h < w,
                CompareOp::Le => h <= w,
                _ => false,
            }
        }
        (_, Value::Null) => matches!(op, CompareOp::Ne),
        _ => matches!(op, CompareOp::Ne),
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl AttrPath {
    /// Parses `[URN:]attr[.sub]`.
    pub fn parse(word: &str) -> Result<AttrPath, ScimError> {
        let bad = || ScimError::filter(format!("`{}` is not an attribute name", shown(word)));
        let (schema, rest) = if word.len() > 4
            && word
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            let (urn, rest) = word.rsplit_once(':').ok_or_else(bad)?;
            (Some(urn.to_owned()), rest)
        } else {
            (None, word)
        };
        let (attr, sub) = match rest.split_once('.') {
            Some((attr, sub)) => (attr, Some(sub)),
            None => (rest, None),
        };
        if !attr_name(attr) || sub.is_some_and(|s| !attr_name(s)) {
            return Err(bad());
        }
        Ok(AttrPath {
            schema,
            attr: attr.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }
}

/// ATTRNAME = ALPHA *(ALPHA / DIGIT / "-" / "_"), or `$ref`.
fn attr_name(s: &str) -> bool {
    s == "$ref"
        || s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Outside text shown back: printable and short.
pub(crate) fn shown(s: &str) -> String {
    s.chars().take(80).flat_map(char::escape_debug).collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Word(String),
    Literal(Value),
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// Where the last token read began, for errors.
    start: usize,
    peeked: Option<(usize, usize, Token)>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            pos: 0,
            start: 0,
            peeked: None,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn next(&mut self) -> Result<Option<Token>, ScimError> {
        if let Some((start, end, t)) = self.peeked.take() {
            self.start = start;
            self.pos = end;
            return Ok(Some(t));
        }
        let trimmed = self.rest().trim_start_matches([' ', '\t', '\n', '\r']);
        self.pos = self.text.len() - trimmed.len();
        self.start = self.pos;
        let Some(c) = trimmed.chars().next() else {
            return Ok(None);
        };
        let (len, token) = match c {
            '(' => (1, Token::Open),
            ')' => (1, Token::Close),
            '[' => (1, Token::OpenBracket),
            ']' => (1, Token::CloseBracket),
            '"' => {
                let len = string_len(trimmed).ok_or_else(|| {
                    ScimError::filter(format!("unterminated string at byte {}", self.pos))
                })?;
                let raw = trimmed.get(..len).unwrap_or_default();
                let value: Value = serde_json::from_str(raw).map_err(|_| {
                    ScimError::filter(format!(
                        "invalid string {} at byte {}",
                        shown(raw),
                        self.pos
                    ))
                })?;
                (len, Token::Literal(value))
            }
            c if c == '-' || c.is_ascii_digit() => {
                let len = trimmed
                    .find(|c: char| {
                        !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                    })
                    .unwrap_or(trimmed.len());
                let raw = trimmed.get(..len).unwrap_or_default();
                let value: Value = serde_json::from_str(raw).map_err(|_| {
                    ScimError::filter(format!(
                        "invalid number `{}` at byte {}",
                        shown(raw),
                        self.pos
                    ))
                })?;
                (len, Token::Literal(value))
            }
            c if c.is_ascii_alphabetic() || c == '$' => {
                let len = trimmed
                    .find(|c: char| {
                        !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '$'))
                    })
                    .unwrap_or(trimmed.len());
                (
                    len,
                    Token::Word(trimmed.get(..len).unwrap_or_default().to_owned()),
                )
            }
            other => {
                return Err(ScimError::filter(format!(
                    "unexpected `{}` at byte {}",
                    other.escape_debug(),
                    self.pos
                )));
            }
        };
        self.pos += len;
        Ok(Some(token))
    }

    fn peek(&mut self) -> Result<Option<Token>, ScimError> {
        if let Some((_, _, t)) = &self.peeked {
            return Ok(Some(t.clone()));
        }
        let (pos, start) = (self.pos, self.start);
        let token = self.next()?;
        if let Some(t) = &token {
            self.peeked = Some((self.start, self.pos, t.clone()));
        }
        self.pos = pos;
        self.start = start;
        Ok(token)
    }

    fn keyword(&mut self, word: &str) -> Result<bool, ScimError> {
        if let Some(Token::Word(w)) = self.peek()?
            && w.eq_ignore_ascii_case(word)
        {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn unexpected(&self, token: &Token) -> ScimError {
        let what = match token {
            Token::Open => "`(`".to_owned(),
            Token::Close => "`)`".to_owned(),
            Token::OpenBracket => "`[`".to_owned(),
            Token::CloseBracket => "`]`".to_owned(),
            Token::Word(w) => format!("`{}`", shown(w)),
            Token::Literal(v) => format!("`{}`", shown(&v.to_string())),
        };
        ScimError::filter(format!("unexpected {what} at byte {}", self.start))
    }

    fn expect(&mut self, want: Token) -> Result<(), ScimError> {
        match self.next()? {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(self.unexpected(&t)),
            None => Err(ScimError::filter("filter ends too early")),
        }
    }

    fn or(&mut self, depth: usize, inside: bool) -> Result<Filter, ScimError> {
        let mut left = self.and(depth, inside)?;
        while self.keyword("or")? {
            let right = self.and(depth, inside)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize, inside: bool) -> Result<Filter, ScimError> {
        let mut left = self.unary(depth, inside)?;
        while self.keyword("and")? {
            let right = self.unary(depth, inside)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize, inside: bool) -> Result<Filter, ScimError> {
        if depth >= MAX_DEPTH {
            return Err(ScimError::filter(format!(
                "filter nests deeper than {MAX_DEPTH}"
            )));
        }
        if self.keyword("not")? {
            self.expect(Token::Open)?;
            let inner = self.or(depth + 1, inside)?;
            self.expect(Token::Close)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        match self.next()? {
            Some(Token::Open) => {
                let inner = self.or(depth + 1, inside)?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Some(Token::Word(word)) => self.attribute(&word, depth, inside),
            Some(t) => Err(self.unexpected(&t)),
            None => Err(ScimError::filter("filter ends too early")),
        }
    }

    fn attribute(&mut self, word: &str, depth: usize, inside: bool) -> Result<Filter, ScimError> {
        let path = AttrPath::parse(word)?;
        if self.peek()? == Some(Token::OpenBracket) {
            if inside || path.sub.is_some() {
                return Err(ScimError::filter(format!(
                    "a value filter cannot follow `{}`",
                    shown(word)
                )));
            }
            self.next()?;
            let inner = self.or(depth + 1, true)?;
            self.expect(Token::CloseBracket)?;
            // `emails[type eq "work"].value eq "x"` is `emails[type eq "work" and value eq "x"]`.
            let tail = self.rest();
            if tail.starts_with('.') {
                self.pos += 1;
                let Some(Token::Word(sub)) = self.next()? else {
                    return Err(ScimError::filter(format!(
                        "expected a sub-attribute after `]` at byte {}",
                        self.pos
                    )));
                };
                let sub_filter = self.comparison(AttrPath::parse(&sub)?)?;
                let both = Filter::And(Box::new(inner), Box::new(sub_filter));
                return Ok(Filter::Each(path, Box::new(both)));
            }
            return Ok(Filter::Each(path, Box::new(inner)));
        }
        self.comparison(path)
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let op = match self.next()? {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                return Ok(Filter::Present(path));
            }
            Some(Token::Word(w)) => CompareOp::parse(&w).ok_or_else(|| {
                ScimError::filter(format!("unknown operator `{}` after `{path}`", shown(&w)))
            })?,
            Some(t) => return Err(self.unexpected(&t)),
            None => return Err(ScimError::filter(format!("`{path}` needs an operator"))),
        };
        let value = match self.next()? {
            Some(Token::Literal(v)) => v,
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => {
                    return Err(ScimError::filter(format!(
                        "`{}` is not a value: quote text, as in \"{}\"",
                        shown(&w),
                        shown(&w)
                    )));
                }
            },
            Some(t) => return Err(self.unexpected(&t)),
            None => {
                return Err(ScimError::filter(format!(
                    "`{path} {}` needs a value",
                    op.as_str()
                )));
            }
        };
        Ok(Filter::Compare(path, op, value))
    }
}

/// The length of the JSON string literal `s` starts with, quotes included.
fn string_len(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The data type of the attribute `path` names, for the store's SQL.
pub fn kind_of(schema: &ResourceSchema, path: &AttrPath) -> Option<Kind> {
    let (_, attr) = schema.attr(path.schema.as_deref(), &path.attr)?;
    match &path.sub {
        None => Some(attr.kind),
        Some(sub) => find(attr.subs, sub).map(|s| s.kind),
    }
}

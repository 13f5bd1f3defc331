//! Label selectors: the `labelSelector` query parameter (`a=b,c in (x,y),!d`) and
//! `metav1.LabelSelector` objects (`matchLabels` + `matchExpressions`), both compiled into one
//! matcher with Kubernetes's syntax checks and string form.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: found '{found}', expected: {expected}")]
    Syntax {
        found: String,
        expected: &'static str,
    },
    #[error("invalid label key \"{key}\": {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("invalid label value: \"{value}\" for key \"{key}\": {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("values for key \"{key}\": {reason}")]
    ValueCount { key: String, reason: &'static str },
    #[error("\"{operator}\" is not a valid label selector operator")]
    UnknownOperator { operator: String },
    #[error("malformed label selector: {reason}")]
    Malformed { reason: String },
}

/// How a requirement compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One comma-separated term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, enforcing the same key, value and arity rules as Kubernetes.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        validate_qualified_name(key)?;
        let count_error = |reason| SelectorError::ValueCount {
            key: key.to_string(),
            reason,
        };
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(count_error(
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err(count_error(
                    "exact-match compatibility requires one single value",
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(count_error(
                    "values set must be empty for exists and does not exist",
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(count_error(
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(count_error(
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
            _ => {}
        }
        for value in &values {
            validate_label_value(key, value)?;
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn matches(&self, labels: &impl Labels) -> bool {
        let actual = labels.label(&self.key);
        let listed = |v: &str| self.values.iter().any(|want| want == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => actual.is_some_and(listed),
            Operator::NotEquals | Operator::NotIn => !actual.is_some_and(listed),
            Operator::Exists => actual.is_some(),
            Operator::DoesNotExist => actual.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    actual.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let single = || self.values.first().map(String::as_str).unwrap_or("");
        let set = || {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            sorted.join(",")
        };
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={}", self.key, single()),
            Operator::DoubleEquals => write!(f, "{}=={}", self.key, single()),
            Operator::NotEquals => write!(f, "{}!={}", self.key, single()),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, single()),
            Operator::LessThan => write!(f, "{}<{}", self.key, single()),
            Operator::In => write!(f, "{} in ({})", self.key, set()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, set()),
        }
    }
}

/// Anything that can answer "what is the value of label `key`".
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for HashMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for serde_json::Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// Labels that may be absent, as `metadata.labels` is: absent means none.
impl<L: Labels> Labels for Option<&L> {
    fn label(&self, key: &str) -> Option<&str> {
        self.and_then(|labels| labels.label(key))
    }
}

/// A compiled label selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// A null `metav1.LabelSelector` selects nothing, unlike an empty one, which selects all.
    matches_nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object (a null `metav1.LabelSelector`).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            matches_nothing: true,
        }
    }

    /// Parses the string form used by the `labelSelector` query parameter.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let tokens = lex(selector);
        let requirements = Parser {
            tokens: &tokens,
            position: 0,
        }
        .parse()?;
        Ok(Self::from_requirements(requirements))
    }

    /// Converts a `metav1.LabelSelector` object; `null` selects nothing, `{}` everything.
    pub fn from_label_selector_json(selector: &Value) -> Result<Self, SelectorError> {
        let malformed = |reason: &str| SelectorError::Malformed {
            reason: reason.to_string(),
        };
        let object = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(object) => object,
            _ => return Err(malformed("expected an object")),
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value
                        .as_str()
                        .ok_or_else(|| malformed("matchLabels values must be strings"))?;
                    requirements.push(Requirement::new(
                        key,
                        Operator::Equals,
                        vec![value.to_string()],
                    )?);
                }
            }
            Some(_) => return Err(malformed("matchLabels must be an object")),
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    requirements.push(expression_requirement(expression)?);
                }
            }
            Some(_) => return Err(malformed("matchExpressions must be a list")),
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Compiles a typed `metav1.LabelSelector`; `None` selects nothing, like a null one.
    pub fn from_label_selector(
        selector: Option<&MetaLabelSelector>,
    ) -> Result<Self, SelectorError> {
        let json = serde_json::to_value(selector).map_err(|e| SelectorError::Malformed {
            reason: e.to_string(),
        })?;
        Self::from_label_selector_json(&json)
    }

    fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        // Kubernetes keeps requirements ordered by key; it shows in the string form.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            matches_nothing: false,
        }
    }

    /// True when the selector matches everything (no requirements).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.matches_nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &impl Labels) -> bool {
        !self.matches_nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches an object's `metadata.labels` (absent labels count as none).
    pub fn matches_object(&self, object: &Value) -> bool {
        match object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
        {
            Some(labels) => self.matches(labels),
            None => self.matches(&serde_json::Map::new()),
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

fn expression_requirement(expression: &Value) -> Result<Requirement, SelectorError> {
    let malformed = |reason: &str| SelectorError::Malformed {
        reason: reason.to_string(),
    };
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("matchExpressions entries need a string key"))?;
    let operator_name = expression
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("");
    let operator = match operator_name {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError::UnknownOperator {
                operator: other.to_string(),
            });
        }
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("matchExpressions values must be strings"))?,
        Some(_) => return Err(malformed("matchExpressions values must be a list")),
    };
    Requirement::new(key, operator, values)
}

/// Formats a label map as `a=b,c=d` (sorted by key), or `<none>` when empty, as kubectl does.
pub fn format_labels(labels: Option<&serde_json::Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs.join(",")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    In,
    NotIn,
    OpenParen,
    CloseParen,
    Comma,
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Greater,
    Less,
    End,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::OpenParen => "(",
            Token::CloseParen => ")",
            Token::Comma => ",",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Bang => "!",
            Token::Greater => ">",
            Token::Less => "<",
            Token::End => "",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_whitespace() {
            chars.next();
            continue;
        }
        if is_special(c) {
            chars.next();
            let doubled = chars.peek() == Some(&'=') && (c == '=' || c == '!');
            if doubled {
                chars.next();
            }
            tokens.push(match (c, doubled) {
                ('=', true) => Token::DoubleEquals,
                ('!', true) => Token::NotEquals,
                ('=', false) => Token::Equals,
                ('!', false) => Token::Bang,
                ('(', _) => Token::OpenParen,
                (')', _) => Token::CloseParen,
                (',', _) => Token::Comma,
                ('>', _) => Token::Greater,
                _ => Token::Less,
            });
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_whitespace() || is_special(c) {
                break;
            }
            word.push(c);
            chars.next();
        }
        tokens.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier(word),
        });
    }
    tokens.push(Token::End);
    tokens
}

struct Parser<'a> {
    tokens: &'a [Token],
    position: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens.get(self.position).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        self.position += 1;
        token
    }

    fn error(token: &Token, expected: &'static str) -> SelectorError {
        SelectorError::Syntax {
            found: token.literal().to_string(),
            expected,
        }
    }

    fn parse(mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Token::End => return Ok(requirements),
                Token::Identifier(_) | Token::Bang => {}
                other => return Err(Self::error(other, "!, identifier, or 'end of string'")),
            }
            requirements.push(self.requirement()?);
            match self.next() {
                Token::End => return Ok(requirements),
                Token::Comma => match self.peek() {
                    Token::Identifier(_) | Token::Bang => {}
                    other => return Err(Self::error(other, "identifier after ','")),
                },
                other => return Err(Self::error(&other, "',' or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == &Token::Bang {
            self.next();
            return match self.next() {
                Token::Identifier(key) => Requirement::new(&key, Operator::DoesNotExist, vec![]),
                other => Err(Self::error(&other, "identifier after '!'")),
            };
        }
        let key = match self.next() {
            Token::Identifier(key) => key,
            other => return Err(Self::error(&other, "identifier")),
        };
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, vec![]);
        }
        let operator = match self.next() {
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Greater => Operator::GreaterThan,
            Token::Less => Operator::LessThan,
            other => {
                return Err(Self::error(&other, "[=, ==, !=, in, notin, >, <]"));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(&key, operator, values)
    }

    /// A single value after `=`, `==`, `!=`, `>` or `<`; nothing before `,` or the end means "".
    fn exact_value(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            Token::End | Token::Comma => Ok(String::new()),
            Token::Identifier(_) => Ok(self.next().literal().to_string()),
            other => Err(Self::error(other, "identifier")),
        }
    }

    /// `( v1, v2, ... )`; an empty slot between commas is the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        let open = self.next();
        if open != Token::OpenParen {
            return Err(Self::error(&open, "'('"));
        }
        let mut values = Vec::new();
        if self.peek() == &Token::CloseParen {
            self.next();
            return Ok(values);
        }
        loop {
            let value = match self.peek() {
                Token::Identifier(_) => self.next().literal().to_string(),
                Token::Comma | Token::CloseParen => String::new(),
                other => return Err(Self::error(other, "',', ')' or identifier")),
            };
            if !values.contains(&value) {
                values.push(value);
            }
            match self.next() {
                Token::Comma => {}
                Token::CloseParen => return Ok(values),
                other => return Err(Self::error(&other, "',' or ')'")),
            }
        }
    }
}

const NAME_FORMAT: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the shape of label names and values.
fn is_label_name_shape(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                }
                _ => false,
            }
        })
}

/// Label keys are qualified names: an optional DNS subdomain prefix, `/`, and a short name.
fn validate_qualified_name(key: &str) -> Result<(), SelectorError> {
    let invalid = |reason: String| SelectorError::InvalidKey {
        key: key.to_string(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(invalid("prefix part must be non-empty".to_string()));
        }
        if !is_dns1123_subdomain(prefix) {
            return Err(invalid(
                "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters"
                    .to_string(),
            ));
        }
    }
    if name.is_empty() {
        return Err(invalid("name part must be non-empty".to_string()));
    }
    if name.len() > 63 {
        return Err(invalid(
            "name part must be no more than 63 characters".to_string(),
        ));
    }
    if !is_label_name_shape(name) {
        return Err(invalid(format!("name part {NAME_FORMAT}")));
    }
    Ok(())
}

fn validate_label_value(key: &str, value: &str) -> Result<(), SelectorError> {
    let invalid = |reason: String| SelectorError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    if value.len() > 63 {
        return Err(invalid("must be no more than 63 characters".to_string()));
    }
    if !value.is_empty() && !is_label_name_shape(value) {
        return Err(invalid(format!("a valid label {NAME_FORMAT}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = LabelSelector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&labels(&[])));
        assert!(LabelSelector::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn equality_requirements() {
        let s = LabelSelector::parse("app=web, tier==front,env!=prod").unwrap();
        assert!(!s.is_empty());
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(s.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "dev")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "prod")
        ])));
        assert!(!s.matches(&labels(&[("app", "db"), ("tier", "front")])));
        assert!(!s.matches(&labels(&[("tier", "front")])));
    }

    #[test]
    fn set_requirements() {
        let s = LabelSelector::parse("env in (prod, staging),tier notin (db),app,!legacy").unwrap();
        assert!(s.matches(&labels(&[("env", "prod"), ("app", "x")])));
        assert!(s.matches(&labels(&[("env", "staging"), ("app", ""), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("env", "dev"), ("app", "x")])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("app", "x"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("app", "x"), ("legacy", "1")])));
    }

    #[test]
    fn empty_values_are_allowed() {
        let s = LabelSelector::parse("a=,b in (,x)").unwrap();
        assert!(s.matches(&labels(&[("a", ""), ("b", "")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "")])));
        assert!(s.matches(&labels(&[("a", ""), ("b", "x")])));
    }

    #[test]
    fn numeric_comparisons() {
        let s = LabelSelector::parse("gen>3,size<10").unwrap();
        assert!(s.matches(&labels(&[("gen", "4"), ("size", "9")])));
        assert!(!s.matches(&labels(&[("gen", "3"), ("size", "9")])));
        assert!(!s.matches(&labels(&[("gen", "x"), ("size", "9")])));
        assert!(LabelSelector::parse("gen>x").is_err());
    }

    #[test]
    fn prefixed_keys() {
        let s = LabelSelector::parse("app.kubernetes.io/name=nginx").unwrap();
        assert!(s.matches(&labels(&[("app.kubernetes.io/name", "nginx")])));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "a=b,",
            ",a",
            "a in",
            "a in (b",
            "a in ()",
            "a b",
            "!",
            "a=(b)",
            "a notin b",
            "=b",
            "a=b=c",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn key_and_value_validation() {
        assert!(matches!(
            LabelSelector::parse("-a=b"),
            Err(SelectorError::InvalidKey { .. })
        ));
        assert!(matches!(
            LabelSelector::parse("Example.com/a=b"),
            Err(SelectorError::InvalidKey { .. })
        ));
        assert!(matches!(
            LabelSelector::parse("/a=b"),
            Err(SelectorError::InvalidKey { .. })
        ));
        assert!(LabelSelector::parse(&format!("{}=b", "k".repeat(64))).is_err());
        assert!(LabelSelector::parse(&format!("{}=b", "k".repeat(63))).is_ok());
        let long = "v".repeat(64);
        assert!(matches!(
            LabelSelector::parse(&format!("a={long}")),
            Err(SelectorError::InvalidValue { .. })
        ));
        assert!(LabelSelector::parse("a=b_").is_err());
        assert!(LabelSelector::parse("a=B.c-d_e").is_ok());
    }

    #[test]
    fn string_form_is_sorted_like_kubernetes() {
        let s = LabelSelector::parse("z=1,a in (y,x),!m,b").unwrap();
        assert_eq!(s.to_string(), "a in (x,y),b,!m,z=1");
        assert_eq!(
            LabelSelector::parse("a!=b, c notin (d)")
                .unwrap()
                .to_string(),
            "a!=b,c notin (d)"
        );
    }

    #[test]
    fn from_metav1_label_selector() {
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "qa"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env in (prod,qa),tier,zone notin (b)"
        );
        let pod = json!({"metadata": {"labels": {"app": "web", "env": "qa", "tier": "x"}}});
        assert!(s.matches_object(&pod));
        let canary = json!({"metadata": {"labels": {"app": "web", "env": "qa", "tier": "x", "canary": "1"}}});
        assert!(!s.matches_object(&canary));
    }

    #[test]
    fn null_selects_nothing_and_empty_selects_all() {
        let nothing = LabelSelector::from_label_selector_json(&Value::Null).unwrap();
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(&labels(&[])));
        let all = LabelSelector::from_label_selector_json(&json!({})).unwrap();
        assert!(all.is_empty());
        assert!(all.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn invalid_metav1_selectors() {
        assert!(matches!(
            LabelSelector::from_label_selector_json(&json!({"matchExpressions": [
                {"key": "a", "operator": "Equals", "values": ["b"]}
            ]})),
            Err(SelectorError::UnknownOperator { .. })
        ));
        assert!(matches!(
            LabelSelector::from_label_selector_json(&json!({"matchExpressions": [
                {"key": "a", "operator": "In", "values": []}
            ]})),
            Err(SelectorError::ValueCount { .. })
        ));
        assert!(matches!(
            LabelSelector::from_label_selector_json(&json!({"matchExpressions": [
                {"key": "a", "operator": "Exists", "values": ["x"]}
            ]})),
            Err(SelectorError::ValueCount { .. })
        ));
        assert!(
            LabelSelector::from_label_selector_json(&json!({"matchLabels": {"a": 1}})).is_err()
        );
        assert!(LabelSelector::from_label_selector_json(&json!("a=b")).is_err());
    }

    #[test]
    fn typed_selectors_need_labels_and_expressions_and_none_selects_nothing() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let typed = MetaLabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["front".into(), "edge".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = LabelSelector::from_label_selector(Some(&typed)).unwrap();
        let edge = labels(&[("app", "web"), ("tier", "edge")]);
        assert!(s.matches(&Some(&edge)));
        assert!(!s.matches(&Some(&labels(&[("app", "web"), ("tier", "back")]))));
        assert!(!s.matches(&Some(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("canary", "1")
        ]))));
        assert!(!s.matches(&None::<&BTreeMap<String, String>>));
        let all = LabelSelector::from_label_selector(Some(&MetaLabelSelector::default())).unwrap();
        assert!(all.matches(&None::<&BTreeMap<String, String>>));
        let nothing = LabelSelector::from_label_selector(None).unwrap();
        assert!(!nothing.matches(&Some(&edge)));
    }

    #[test]
    fn json_label_maps_match() {
        let s = LabelSelector::parse("a=b").unwrap();
        let map = json!({"a": "b"});
        assert!(s.matches(map.as_object().unwrap()));
        assert!(!s.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn format_labels_sorted_or_none() {
        let map = json!({"b": "2", "a": "1"});
        assert_eq!(format_labels(map.as_object()), "a=1,b=2");
        assert_eq!(format_labels(None), "<none>");
    }
}

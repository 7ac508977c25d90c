//! Kubernetes label selectors: parsing (the syntax of `labels.Parse`), matching, and the
//! `metav1.LabelSelector` echoed back in metric responses.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A selector failed to parse. The message is returned to the client in a 400 `Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(String);

/// The operator of one requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `k=v` or `k==v`.
    Equals,
    /// `k!=v`.
    NotEquals,
    /// `k in (a,b)`.
    In,
    /// `k notin (a,b)`.
    NotIn,
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>n`.
    GreaterThan,
    /// `k<n`.
    LessThan,
}

/// One requirement of a selector; all requirements of a selector must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values (sorted, deduplicated; empty for `Exists`/`DoesNotExist`).
    pub values: Vec<String>,
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// The JSON form of `metav1.LabelSelector`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorJson {
    /// Equality requirements.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Every other requirement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirementJson>,
}

/// The JSON form of `metav1.LabelSelectorRequirement`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LabelSelectorRequirementJson {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt` or `Lt`.
    pub operator: &'static str,
    /// The values; omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl Selector {
    /// Parses a selector in Kubernetes syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a,b)`, `k`, `!k`, `k>n`, `k<n`, joined by commas. An empty or blank string is
    /// the empty selector.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let tokens = lex(input)?;
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        if p.peek().is_none() {
            return Ok(Selector::default());
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Token::Comma) => {
                    if p.peek().is_none() {
                        return Err(SelectorError(
                            "found '', expected: identifier after ','".into(),
                        ));
                    }
                }
                Some(t) => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        t.text()
                    )));
                }
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The selector as a `metav1.LabelSelector`: `matchLabels` for equality, `matchExpressions`
    /// for the rest.
    pub fn to_label_selector(&self) -> LabelSelectorJson {
        let mut out = LabelSelectorJson {
            match_labels: BTreeMap::new(),
            match_expressions: Vec::new(),
        };
        for r in &self.requirements {
            let (operator, values) = match r.operator {
                Operator::Equals => {
                    out.match_labels.insert(r.key.clone(), r.values[0].clone());
                    continue;
                }
                Operator::NotEquals | Operator::NotIn => ("NotIn", r.values.clone()),
                Operator::In => ("In", r.values.clone()),
                Operator::Exists => ("Exists", Vec::new()),
                Operator::DoesNotExist => ("DoesNotExist", Vec::new()),
                Operator::GreaterThan => ("Gt", r.values.clone()),
                Operator::LessThan => ("Lt", r.values.clone()),
            };
            out.match_expressions.push(LabelSelectorRequirementJson {
                key: r.key.clone(),
                operator,
                values,
            });
        }
        out
    }
}

impl std::fmt::Display for Selector {
    /// The canonical string form (as Go's `labels.Selector.String()`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r.operator {
                Operator::Equals => write!(f, "{}={}", r.key, r.values[0])?,
                Operator::NotEquals => write!(f, "{}!={}", r.key, r.values[0])?,
                Operator::In => write!(f, "{} in ({})", r.key, r.values.join(","))?,
                Operator::NotIn => write!(f, "{} notin ({})", r.key, r.values.join(","))?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
                Operator::GreaterThan => write!(f, "{}>{}", r.key, r.values[0])?,
                Operator::LessThan => write!(f, "{}<{}", r.key, r.values[0])?,
            }
        }
        Ok(())
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => {
                value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotEquals | Operator::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|x| x == v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Ok(bound)) = (value, self.values[0].parse::<i64>()) else {
                    return false;
                };
                let Ok(v) = v.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Bang,
    NotEquals,
    Equals,
    DoubleEquals,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::Bang => "!",
            Token::NotEquals => "!=",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::Comma => ",",
            Token::Open => "(",
            Token::Close => ")",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | ',' | '(' | ')')
}

fn lex(input: &str) -> Result<Vec<Token>, SelectorError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if is_special(c) {
            chars.next();
            let next = chars.peek().map(|&(_, n)| n);
            let tok = match (c, next) {
                ('!', Some('=')) => {
                    chars.next();
                    Token::NotEquals
                }
                ('!', _) => Token::Bang,
                ('=', Some('=')) => {
                    chars.next();
                    Token::DoubleEquals
                }
                ('=', _) => Token::Equals,
                ('>', _) => Token::Gt,
                ('<', _) => Token::Lt,
                (',', _) => Token::Comma,
                ('(', _) => Token::Open,
                (')', _) => Token::Close,
                _ => return Err(SelectorError(format!("unexpected character '{c}'"))),
            };
            out.push(tok);
            continue;
        }
        let start = i;
        let mut end = input.len();
        while let Some(&(j, d)) = chars.peek() {
            if d.is_whitespace() || is_special(d) {
                end = j;
                break;
            }
            chars.next();
        }
        out.push(Token::Ident(input[start..end].to_owned()));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = if self.peek() == Some(&Token::Bang) {
            self.pos += 1;
            true
        } else {
            false
        };
        let key = match self.next() {
            Some(Token::Ident(k)) => k,
            Some(t) => {
                return Err(SelectorError(format!(
                    "found '{}', expected: !, identifier, or 'end of string'",
                    t.text()
                )));
            }
            None => return Err(SelectorError("found '', expected: identifier".into())),
        };
        validate_key(&key)?;
        if negated {
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        let op = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(Requirement {
                    key,
                    operator: Operator::Exists,
                    values: Vec::new(),
                });
            }
            Some(t) => t.clone(),
        };
        self.pos += 1;
        let (operator, values) = match op {
            Token::Equals | Token::DoubleEquals => (Operator::Equals, vec![self.single_value()?]),
            Token::NotEquals => (Operator::NotEquals, vec![self.single_value()?]),
            Token::Gt | Token::Lt => {
                let v = self.single_value()?;
                if v.parse::<i64>().is_err() {
                    return Err(SelectorError(format!(
                        "for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"
                    )));
                }
                (
                    if op == Token::Gt {
                        Operator::GreaterThan
                    } else {
                        Operator::LessThan
                    },
                    vec![v],
                )
            }
            Token::Ident(ref w) if w == "in" => (Operator::In, self.value_set()?),
            Token::Ident(ref w) if w == "notin" => (Operator::NotIn, self.value_set()?),
            t => {
                return Err(SelectorError(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.text()
                )));
            }
        };
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    fn single_value(&mut self) -> Result<String, SelectorError> {
        let v = match self.peek() {
            Some(Token::Ident(v)) => {
                let v = v.clone();
                self.pos += 1;
                v
            }
            // `k=` selects the empty value.
            None | Some(Token::Comma) => String::new(),
            Some(t) => {
                return Err(SelectorError(format!(
                    "found '{}', expected: identifier",
                    t.text()
                )));
            }
        };
        validate_value(&v)?;
        Ok(v)
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::Open) => {}
            Some(t) => {
                return Err(SelectorError(format!(
                    "found '{}', expected: '('",
                    t.text()
                )));
            }
            None => return Err(SelectorError("found '', expected: '('".into())),
        }
        let mut set = BTreeSet::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::Ident(v)) if expect_value => {
                    validate_value(&v)?;
                    set.insert(v);
                    expect_value = false;
                }
                Some(Token::Comma) if !expect_value => expect_value = true,
                Some(Token::Comma) => {
                    set.insert(String::new());
                }
                Some(Token::Close) => {
                    if expect_value && !set.is_empty() {
                        set.insert(String::new());
                    }
                    break;
                }
                Some(t) => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.text()
                    )));
                }
                None => return Err(SelectorError("found '', expected: ')'".into())),
            }
        }
        if set.is_empty() {
            return Err(SelectorError(
                "for 'in', 'notin' operators, values set can't be empty".into(),
            ));
        }
        Ok(set.into_iter().collect())
    }
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn validate_key(key: &str) -> Result<(), SelectorError> {
    let ok = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(key),
    };
    if ok {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (an optional DNS subdomain prefix and '/' may precede it)"
        )))
    }
}

fn validate_value(v: &str) -> Result<(), SelectorError> {
    if v.is_empty() || is_name_part(v) {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "invalid label value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = Selector::parse(
            "app=web, tier in (b,a), env notin (prod), x!=y, has, !gone, n>3, m<10, k==v",
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,env notin (prod),!gone,has,k=v,m<10,n>3,tier in (a,b),x!=y"
        );
        let l = labels(&[
            ("app", "web"),
            ("tier", "a"),
            ("env", "dev"),
            ("has", ""),
            ("n", "4"),
            ("m", "9"),
            ("k", "v"),
        ]);
        assert!(s.matches(&l));
    }

    #[test]
    fn matching_semantics() {
        let l = labels(&[("component", "split"), ("n", "5")]);
        assert!(Selector::parse("component=split").unwrap().matches(&l));
        assert!(!Selector::parse("component=count").unwrap().matches(&l));
        assert!(Selector::parse("missing!=x").unwrap().matches(&l));
        assert!(Selector::parse("missing notin (x)").unwrap().matches(&l));
        assert!(!Selector::parse("missing in (x)").unwrap().matches(&l));
        assert!(!Selector::parse("!component").unwrap().matches(&l));
        assert!(Selector::parse("n>4,n<6").unwrap().matches(&l));
        assert!(!Selector::parse("component>1").unwrap().matches(&l));
        assert!(Selector::parse("").unwrap().matches(&l));
        assert!(Selector::parse("   ").unwrap().is_empty());
        assert!(
            Selector::parse("a=")
                .unwrap()
                .matches(&labels(&[("a", "")]))
        );
    }

    #[test]
    fn qualified_keys() {
        assert!(Selector::parse("app.kubernetes.io/name=storm").is_ok());
        assert!(Selector::parse("Bad_Prefix/name=x").is_err());
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "a in",
            "a in ()",
            "a in (b",
            "=x",
            "a=b=c",
            "a b",
            "a>x",
            "a,",
            "-a=b",
            "a=-b",
            "a in (b c)",
            "!a=b",
            "(",
            "a==b,,c",
        ] {
            let e = Selector::parse(bad).expect_err(bad);
            assert!(
                e.to_string().starts_with("unable to parse requirement: "),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn label_selector_json() {
        let s = Selector::parse("component=split,x!=y,t in (a,b),e,!d,n>1").unwrap();
        let j = serde_json::to_value(s.to_label_selector()).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "matchLabels": {"component": "split"},
                "matchExpressions": [
                    {"key": "d", "operator": "DoesNotExist"},
                    {"key": "e", "operator": "Exists"},
                    {"key": "n", "operator": "Gt", "values": ["1"]},
                    {"key": "t", "operator": "In", "values": ["a", "b"]},
                    {"key": "x", "operator": "NotIn", "values": ["y"]},
                ]
            })
        );
        let only_eq = serde_json::to_value(
            Selector::parse("component=split")
                .unwrap()
                .to_label_selector(),
        )
        .unwrap();
        assert_eq!(
            only_eq,
            serde_json::json!({"matchLabels": {"component": "split"}})
        );
    }
}

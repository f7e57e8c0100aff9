use twinloop_core::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// An identifier such as `metrics.acc`, `tags.mlflow.runName` or ``params.`a b` ``, split
    /// into its entity prefix (if any) and its key, with quoting removed. A quoted key may be
    /// followed by `.word` (``metrics.`a.b`.max``): `suffix` holds the word and its position.
    Ident {
        prefix: Option<String>,
        key: String,
        quoted: bool,
        suffix: Option<(String, usize)>,
    },
    Str(String),
    Num(String),
    Op(&'static str),
    Word(String),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone)]
pub struct Spanned {
    pub token: Token,
    pub pos: usize,
}

const KEYWORDS: &[&str] = &[
    "AND", "OR", "LIKE", "ILIKE", "IN", "NOT", "ASC", "DESC", "IS", "NULL",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/')
}

pub fn tokenize(input: &str) -> Result<Vec<Spanned>> {
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, what: &str| {
        Error::invalid(format!(
            "Invalid filter {input:?}: {what} at position {pos}"
        ))
    };
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let simple = match c {
            '(' => Some(Token::LParen),
            ')' => Some(Token::RParen),
            ',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(token) = simple {
            out.push(Spanned { token, pos });
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let op = match (c, next) {
            ('!', Some('=')) => Some(("!=", 2)),
            ('<', Some('>')) => Some(("!=", 2)),
            ('<', Some('=')) => Some(("<=", 2)),
            ('>', Some('=')) => Some((">=", 2)),
            ('=', Some('=')) => Some(("=", 2)),
            ('<', _) => Some(("<", 1)),
            ('>', _) => Some((">", 1)),
            ('=', _) => Some(("=", 1)),
            _ => None,
        };
        if let Some((op, len)) = op {
            out.push(Spanned {
                token: Token::Op(op),
                pos,
            });
            i += len;
            continue;
        }
        if c == '\'' || c == '"' {
            let (s, end) =
                read_quoted(&chars, i, c).ok_or_else(|| err(pos, "unterminated string"))?;
            out.push(Spanned {
                token: Token::Str(s),
                pos,
            });
            i = end;
            continue;
        }
        if c == '`' {
            let (key, end) =
                read_quoted(&chars, i, '`').ok_or_else(|| err(pos, "unterminated backtick"))?;
            out.push(Spanned {
                token: Token::Ident {
                    prefix: None,
                    key,
                    quoted: true,
                    suffix: None,
                },
                pos,
            });
            i = end;
            continue;
        }
        if c.is_ascii_digit()
            || ((c == '-' || c == '+' || c == '.')
                && next.is_some_and(|n| n.is_ascii_digit() || n == '.'))
        {
            let start = i;
            i += 1;
            while i < chars.len() {
                let ch = chars[i].1;
                let prev = chars[i - 1].1;
                if ch.is_ascii_digit()
                    || ch == '.'
                    || ch == 'e'
                    || ch == 'E'
                    || ((ch == '-' || ch == '+') && (prev == 'e' || prev == 'E'))
                {
                    i += 1;
                } else {
                    break;
                }
            }
            let text: String = chars[start..i].iter().map(|&(_, c)| c).collect();
            if text.parse::<f64>().is_err() {
                return Err(err(pos, &format!("invalid number {text:?}")));
            }
            out.push(Spanned {
                token: Token::Num(text),
                pos,
            });
            continue;
        }
        if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i].1) {
                i += 1;
            }
            let word: String = chars[start..i].iter().map(|&(_, c)| c).collect();
            // `metrics.` followed by a quoted key: ``metrics.`my metric` `` or `tags."a b"`.
            if let Some(prefix) = word.strip_suffix('.')
                && let Some(&(_, q)) = chars.get(i)
                && (q == '`' || q == '"')
            {
                let (key, end) = read_quoted(&chars, i, q)
                    .ok_or_else(|| err(chars[i].0, "unterminated quoted key"))?;
                let (suffix, end) = read_suffix(&chars, end)
                    .map_err(|at| err(at, "expected a word after the dot"))?;
                out.push(Spanned {
                    token: Token::Ident {
                        prefix: Some(prefix.to_string()),
                        key,
                        quoted: true,
                        suffix,
                    },
                    pos,
                });
                i = end;
                continue;
            }
            let upper = word.to_ascii_uppercase();
            if KEYWORDS.contains(&upper.as_str()) {
                out.push(Spanned {
                    token: Token::Word(upper),
                    pos,
                });
                continue;
            }
            let token = match word.split_once('.') {
                Some((prefix, key)) if !key.is_empty() => Token::Ident {
                    prefix: Some(prefix.to_string()),
                    key: key.to_string(),
                    quoted: false,
                    suffix: None,
                },
                Some(_) => {
                    return Err(err(
                        pos,
                        &format!("identifier {word:?} has no key after the dot"),
                    ));
                }
                None => Token::Ident {
                    prefix: None,
                    key: word,
                    quoted: false,
                    suffix: None,
                },
            };
            out.push(Spanned { token, pos });
            continue;
        }
        return Err(err(pos, &format!("unexpected character {c:?}")));
    }
    Ok(out)
}

/// Reads `.word` right after a quoted key at `chars[start]`, if there is a dot there. Returns
/// the word with its position and the index past it, or the position of a dot with no word.
#[allow(clippy::type_complexity)]
fn read_suffix(
    chars: &[(usize, char)],
    start: usize,
) -> std::result::Result<(Option<(String, usize)>, usize), usize> {
    match chars.get(start) {
        Some(&(dot, '.')) => {
            let mut i = start + 1;
            while i < chars.len() && (chars[i].1.is_ascii_alphanumeric() || chars[i].1 == '_') {
                i += 1;
            }
            if i == start + 1 {
                return Err(dot);
            }
            let word = chars[start + 1..i].iter().map(|&(_, c)| c).collect();
            Ok((Some((word, chars[start + 1].0)), i))
        }
        _ => Ok((None, start)),
    }
}

/// Reads a string quoted with `quote` starting at `chars[start]`; a doubled quote stands for one.
/// Returns the content and the index just past the closing quote.
fn read_quoted(chars: &[(usize, char)], start: usize, quote: char) -> Option<(String, usize)> {
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i].1;
        if c == quote {
            if chars.get(i + 1).map(|&(_, c)| c) == Some(quote) {
                s.push(quote);
                i += 2;
                continue;
            }
            return Some((s, i + 1));
        }
        s.push(c);
        i += 1;
    }
    None
}

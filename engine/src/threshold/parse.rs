//! The threshold expression parser: text such as `write.latency.p99 < 25ms && write.errors == 0`
//! into a [`Cond`], with unit checks done once, at plan time.

use super::{AggFn, ArithOp, CmpOp, Cond, Expr, FieldPath, Segment};
use crate::units::{self, Dimension, Quantity};

/// A threshold that does not parse or mixes units; `column` is 1-based within the expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at column {column})")]
pub struct ParseError {
    /// What is wrong and what to write instead.
    pub message: String,
    /// 1-based character column in the threshold text.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Quantity),
    Ident(String),
    /// A quoted map key: `['wgpolicyk8s.io/policyreports']` or `["..."]`.
    Str(String),
    Op(&'static str),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut i = 0;
    let col = |byte: usize| src[..byte].chars().count() + 1;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
        {
            let rest = &src[pos..];
            let n = units::number_prefix_len(rest);
            let mut end = pos + n;
            // The unit: letters, `µ`, `%`, or `/s`-style rates after the number. A number is never
            // followed by a name in the grammar, so a word after spaces is a (possibly bad) unit.
            let spaces = src[end..].len() - src[end..].trim_start().len();
            let after = &src[end + spaces..];
            if after.starts_with(|c: char| c.is_alphabetic() || c == '%') {
                end += spaces;
            }
            let tail = &src[end..];
            let unit_len = if tail.starts_with('%') {
                1
            } else if tail.starts_with('/')
                && tail[1..].starts_with(|c: char| c.is_ascii_alphabetic())
            {
                1 + tail[1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count()
            } else {
                tail.chars()
                    .take_while(|c| c.is_alphabetic())
                    .map(char::len_utf8)
                    .sum()
            };
            end += unit_len;
            let q = units::parse_quantity(&src[pos..end]).map_err(|e| ParseError {
                message: e.to_string(),
                column: col(pos),
            })?;
            out.push((Tok::Num(q), col(pos)));
            i = chars
                .iter()
                .position(|(p, _)| *p >= end)
                .unwrap_or(chars.len());
            continue;
        }
        if c == '\'' || c == '"' {
            let Some(len) = src[pos + 1..].find(c) else {
                return Err(ParseError {
                    message: format!("unterminated {c}...{c}: close the quoted key"),
                    column: col(pos),
                });
            };
            out.push((Tok::Str(src[pos + 1..pos + 1 + len].to_string()), col(pos)));
            let end = pos + 1 + len + 1;
            i = chars
                .iter()
                .position(|(p, _)| *p >= end)
                .unwrap_or(chars.len());
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '_') {
                j += 1;
            }
            let end = chars.get(j).map_or(src.len(), |(p, _)| *p);
            out.push((Tok::Ident(src[pos..end].to_string()), col(pos)));
            i = j;
            continue;
        }
        const OPS: [&str; 18] = [
            "<=", ">=", "==", "!=", "&&", "||", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]",
            ".", ",",
        ];
        let rest = &src[pos..];
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                out.push((Tok::Op(op), col(pos)));
                i += op.len();
            }
            None => {
                return Err(ParseError {
                    message: format!("unexpected character `{c}`"),
                    column: col(pos),
                })
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end_col: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end_col, |(_, c)| *c)
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            message: message.into(),
            column: self.col(),
        })
    }
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn cond(&mut self) -> Result<Cond, ParseError> {
        let mut lhs = self.and()?;
        while self.eat("||") {
            lhs = Cond::Or(Box::new(lhs), Box::new(self.and()?));
        }
        Ok(lhs)
    }
    fn and(&mut self) -> Result<Cond, ParseError> {
        let mut lhs = self.cmp()?;
        while self.eat("&&") {
            lhs = Cond::And(Box::new(lhs), Box::new(self.cmp()?));
        }
        Ok(lhs)
    }
    fn cmp(&mut self) -> Result<Cond, ParseError> {
        // A parenthesised condition: `(a < 1 || b < 2) && c == 0`.
        if matches!(self.peek(), Some(Tok::Op("("))) {
            let save = self.pos;
            self.pos += 1;
            if let Ok(c) = self.cond() {
                if self.eat(")")
                    && !matches!(self.peek(), Some(Tok::Op(o)) if CmpOp::from_str(o).is_some() || "+-*/".contains(*o))
                {
                    return Ok(c);
                }
            }
            self.pos = save;
        }
        let lhs_col = self.col();
        let lhs = self.sum()?;
        let op = match self.peek() {
            Some(Tok::Op(o)) => CmpOp::from_str(o),
            _ => None,
        };
        let Some(op) = op else {
            return self.err("expected a comparison (<, <=, >, >=, ==, !=) after the value");
        };
        self.pos += 1;
        let rhs_col = self.col();
        let rhs = self.sum()?;
        check_dims(&lhs, &rhs, rhs_col.max(lhs_col))?;
        let field_left = matches!(lhs, Expr::Field(_) | Expr::Agg(..));
        if lhs.uses_baseline() || (rhs.uses_baseline() && !field_left) {
            return Err(ParseError {
                message: "`baseline` means the left-hand field in the --baseline report: write `step.field < baseline * 1.10`".into(),
                column: lhs_col,
            });
        }
        Ok(Cond::Cmp(lhs, op, rhs))
    }
    fn sum(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.term()?;
        loop {
            let op = if self.eat("+") {
                ArithOp::Add
            } else if self.eat("-") {
                ArithOp::Sub
            } else {
                break;
            };
            let col = self.col();
            let rhs = self.term()?;
            check_dims(&lhs, &rhs, col)?;
            lhs = Expr::Arith(Box::new(lhs), op, Box::new(rhs));
        }
        Ok(lhs)
    }
    fn term(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        loop {
            let op = if self.eat("*") {
                ArithOp::Mul
            } else if self.eat("/") {
                ArithOp::Div
            } else {
                break;
            };
            lhs = Expr::Arith(Box::new(lhs), op, Box::new(self.unary()?));
        }
        Ok(lhs)
    }
    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr, ParseError> {
        let col = self.col();
        match self.peek().cloned() {
            Some(Tok::Num(q)) => {
                self.pos += 1;
                Ok(Expr::Num(q))
            }
            Some(Tok::Op("(")) => {
                self.pos += 1;
                let e = self.sum()?;
                if !self.eat(")") {
                    return self.err("expected `)`");
                }
                Ok(e)
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                match name.as_str() {
                    "baseline" => return Ok(Expr::Baseline),
                    "true" => {
                        return Ok(Expr::Num(Quantity {
                            value: 1.0,
                            dimension: Dimension::Number,
                        }))
                    }
                    "false" => {
                        return Ok(Expr::Num(Quantity {
                            value: 0.0,
                            dimension: Dimension::Number,
                        }))
                    }
                    _ => {}
                }
                if self.eat("(") {
                    let Some(f) = AggFn::from_str(&name) else {
                        return Err(ParseError {
                            message: format!(
                                "unknown function `{name}`: use min, max, sum, avg or count"
                            ),
                            column: col,
                        });
                    };
                    let path = self.path_after_ident(col)?;
                    if !self.eat(")") {
                        return self.err("expected `)` after the field path");
                    }
                    return Ok(Expr::Agg(f, path));
                }
                self.pos -= 1;
                let path = self.path_after_ident(col)?;
                if path.has_wildcard() {
                    return Err(ParseError {
                        message: format!("`{path}` matches many values: wrap it in max(...), min(...), sum(...), avg(...) or count(...)"),
                        column: col,
                    });
                }
                Ok(Expr::Field(path))
            }
            Some(Tok::Op(o)) => self.err(format!("expected a value or a field, found `{o}`")),
            Some(Tok::Str(k)) => self.err(format!(
                "a quoted key (`'{k}'`) belongs inside a field path: `step.field['{k}']`"
            )),
            None => self.err("expected a value or a field, found the end of the threshold"),
        }
    }
    fn path_after_ident(&mut self, col: usize) -> Result<FieldPath, ParseError> {
        let Some(Tok::Ident(first)) = self.peek().cloned() else {
            return self.err("expected a field path such as `step.latency.p99`");
        };
        self.pos += 1;
        let mut segs = vec![Segment::Key(first)];
        loop {
            if self.eat(".") {
                match self.peek().cloned() {
                    // `latency.p(99.9)`: any quantile of a latency distribution, as k6 writes it.
                    Some(Tok::Ident(k))
                        if k == "p"
                            && matches!(self.toks.get(self.pos + 1), Some((Tok::Op("("), _))) =>
                    {
                        self.pos += 2;
                        let q = match self.peek().cloned() {
                            Some(Tok::Num(q))
                                if q.dimension == Dimension::Number
                                    && q.value > 0.0
                                    && q.value <= 100.0 =>
                            {
                                // 99.9 / 100 is 0.9990000000000001 in floating point: round it
                                // back so the quantile asked is the quantile written.
                                (q.value * 1e7).round() / 1e9
                            }
                            _ => return self.err("expected a percentile from 0 to 100: `p(99.9)`"),
                        };
                        self.pos += 1;
                        if !self.eat(")") {
                            return self.err("expected `)` after the percentile");
                        }
                        segs.push(Segment::Quantile(q));
                    }
                    Some(Tok::Ident(k)) => {
                        self.pos += 1;
                        segs.push(Segment::Key(k));
                    }
                    // `latency.p99.9` lexes the `9` after a dot as a number: allow numeric keys.
                    Some(Tok::Num(q))
                        if q.dimension == Dimension::Number && q.value.fract() == 0.0 =>
                    {
                        self.pos += 1;
                        segs.push(Segment::Key(format!("{}", q.value as i64)));
                    }
                    _ => return self.err("expected a field name after `.`"),
                }
            } else if self.eat("[") {
                let seg = match self.peek().cloned() {
                    Some(Tok::Op("*")) => Segment::All,
                    Some(Tok::Num(q))
                        if q.dimension == Dimension::Number
                            && q.value >= 0.0
                            && q.value.fract() == 0.0 =>
                    {
                        Segment::Index(q.value as usize)
                    }
                    Some(Tok::Str(k)) => Segment::Key(k),
                    _ => return self.err("expected an index, `*` or a quoted key inside `[ ]`"),
                };
                self.pos += 1;
                if !self.eat("]") {
                    return self.err("expected `]`");
                }
                segs.push(seg);
            } else {
                break;
            }
        }
        if segs.len() < 2 {
            return Err(ParseError {
                message: format!(
                    "`{}` names a step but no field: write `{}.<field>` (for example `{}.duration_ms`)",
                    FieldPath(segs.clone()),
                    FieldPath(segs.clone()),
                    FieldPath(segs)
                ),
                column: col,
            });
        }
        Ok(FieldPath(segs))
    }
}

fn check_dims(a: &Expr, b: &Expr, column: usize) -> Result<(), ParseError> {
    if let (Some(x), Some(y)) = (super::literal_dim(a), super::literal_dim(b)) {
        if !x.compatible(y) {
            return Err(ParseError {
                message: format!("cannot combine a {x} with a {y}"),
                column,
            });
        }
    }
    Ok(())
}

/// Parses a whole threshold expression.
/// The longest threshold, in tokens (numbers, names, operators).
const MAX_TOKENS: usize = 400;

/// The deepest nesting of parentheses.
const MAX_DEPTH: usize = 32;

pub fn parse(src: &str) -> Result<Cond, ParseError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(ParseError {
            message: "empty threshold: write something like `step.latency.p99 < 25ms`".into(),
            column: 1,
        });
    }
    // The parser and the evaluator recurse: bound the input so no threshold can overflow a stack.
    if toks.len() > MAX_TOKENS {
        return Err(ParseError {
            message: format!(
                "a threshold of more than {MAX_TOKENS} tokens: split it into several thresholds"
            ),
            column: toks[MAX_TOKENS].1,
        });
    }
    let mut depth = 0usize;
    for (t, col) in &toks {
        match t {
            Tok::Op(o) if *o == "(" => depth += 1,
            Tok::Op(o) if *o == ")" => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_DEPTH {
            return Err(ParseError {
                message: format!("parentheses nested more than {MAX_DEPTH} deep"),
                column: *col,
            });
        }
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end_col: src.chars().count() + 1,
    };
    let c = p.cond()?;
    if p.pos < p.toks.len() {
        return p.err("unexpected text after the threshold: join conditions with && or ||");
    }
    Ok(c)
}

//! Scalar typing, mirroring the two Go YAML libraries that `kubectl kustomize` chains together.
//!
//! kustomize reads YAML with go-yaml v3 and decodes each object into `interface{}` before
//! `json.Marshal`; the JSON is then re-read and printed by go-yaml v2 (`sigs.k8s.io/yaml`
//! `JSONToYAML`). So an input plain scalar is typed by v3's rules ([`resolve_plain`]), and an
//! output string is quoted when v2 would read it back as something else ([`v2_needs_quotes`]).
//! Both libraries share the same resolve table except that v2 also treats YAML 1.1 booleans
//! (`yes`, `on`, `y`, ...) as booleans.

use serde_json::{Number, Value};

/// The type go-yaml v3 gives an untagged plain scalar when decoding into `interface{}`.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    // NaN and infinities cannot be marshalled to JSON; kustomize fails on them. Keeping the
    // text is the closest non-panicking behaviour.
    let first = s.as_bytes()[0];
    match first {
        b'0'..=b'9' | b'+' | b'-' => {
            if let Some(ts) = parse_timestamp(s) {
                return Value::String(ts);
            }
            if let Some(n) = parse_number(s) {
                return n;
            }
        }
        b'.' => {
            if let Some(f) = parse_go_float(s) {
                return float_value(f).unwrap_or_else(|| Value::String(s.to_string()));
            }
        }
        _ => {}
    }
    Value::String(s.to_string())
}

/// Integers and floats as v3's resolver accepts them (underscores dropped, Go base prefixes).
fn parse_number(s: &str) -> Option<Value> {
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if let Some(i) = go_parse_int(&plain) {
        return Some(Value::Number(i.into()));
    }
    if let Some(u) = go_parse_uint(&plain) {
        return Some(Value::Number(u.into()));
    }
    if is_yaml_style_float(&plain)
        && let Some(f) = parse_go_float(&plain)
    {
        return float_value(f);
    }
    if let Some(rest) = plain.strip_prefix("0b") {
        return i64::from_str_radix(rest, 2)
            .ok()
            .map(|i| Value::Number(i.into()));
    }
    if let Some(rest) = plain.strip_prefix("-0b") {
        return i64::from_str_radix(rest, 2)
            .ok()
            .map(|i| Value::Number((-i).into()));
    }
    if let Some(rest) = plain.strip_prefix("0o") {
        return i64::from_str_radix(rest, 8)
            .ok()
            .map(|i| Value::Number(i.into()));
    }
    if let Some(rest) = plain.strip_prefix("-0o") {
        return i64::from_str_radix(rest, 8)
            .ok()
            .map(|i| Value::Number((-i).into()));
    }
    None
}

fn float_value(f: f64) -> Option<Value> {
    Number::from_f64(f).map(Value::Number)
}

/// `strconv.ParseInt(s, 0, 64)`: optional sign, then `0x`/`0o`/`0b`/leading-`0` octal/decimal.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = split_sign(s);
    let mag = go_parse_magnitude(body)?;
    if neg {
        if mag <= i64::MAX as u64 + 1 {
            Some((mag as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else if mag <= i64::MAX as u64 {
        Some(mag as i64)
    } else {
        None
    }
}

/// `strconv.ParseUint(s, 0, 64)`: no sign allowed.
fn go_parse_uint(s: &str) -> Option<u64> {
    if s.starts_with(['+', '-']) {
        return None;
    }
    go_parse_magnitude(s)
}

fn split_sign(s: &str) -> (bool, &str) {
    if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else if let Some(r) = s.strip_prefix('+') {
        (false, r)
    } else {
        (false, s)
    }
}

fn go_parse_magnitude(body: &str) -> Option<u64> {
    if body.is_empty() {
        return None;
    }
    let (radix, digits) = if let Some(r) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (2, r)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Decimal floats only: Go's ParseFloat also takes hex floats and "inf", which cannot reach
/// here through the callers' prefix checks except `.`-prefixed text.
fn parse_go_float(s: &str) -> Option<f64> {
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// go-yaml's `parseTimestamp`: the formats `2006-1-2T15:4:5.999999999Z07:00` (also `t` or a
/// space, the latter without zone) and `2006-1-2`. Returns the RFC 3339 text that Go's
/// `time.Time` JSON encoding produces, which is what kustomize prints.
pub fn parse_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let mut p = Cursor { b, i: 5 };
    let month = p.num(1, 2)?;
    p.expect(b'-')?;
    let day = p.num(1, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if p.i == b.len() {
        return Some(format!("{year:04}-{month:02}-{day:02}T00:00:00Z"));
    }
    let sep = b[p.i];
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    p.i += 1;
    let hour = p.num(1, 2)?;
    p.expect(b':')?;
    let min = p.num(1, 2)?;
    p.expect(b':')?;
    let sec = p.num(1, 2)?;
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let mut frac = String::new();
    if p.i < b.len() && b[p.i] == b'.' {
        p.i += 1;
        let start = p.i;
        while p.i < b.len() && b[p.i].is_ascii_digit() {
            p.i += 1;
        }
        if p.i == start {
            return None;
        }
        frac = s[start..p.i].trim_end_matches('0').to_string();
        frac.truncate(9);
    }
    let zone = if sep == b' ' {
        "Z".to_string()
    } else if p.i < b.len() && b[p.i] == b'Z' {
        p.i += 1;
        "Z".to_string()
    } else if p.i + 6 == b.len() && matches!(b[p.i], b'+' | b'-') && b[p.i + 3] == b':' {
        let z = &s[p.i..];
        if !z[1..3]
            .bytes()
            .chain(z[4..6].bytes())
            .all(|c| c.is_ascii_digit())
        {
            return None;
        }
        p.i = b.len();
        if &z[1..] == "00:00" {
            "Z".to_string()
        } else {
            z.to_string()
        }
    } else {
        return None;
    };
    if p.i != b.len() {
        return None;
    }
    let frac = if frac.is_empty() {
        frac
    } else {
        format!(".{frac}")
    };
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{min:02}:{sec:02}{frac}{zone}"
    ))
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        if self.i < self.b.len() && self.b[self.i] == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Whether go-yaml v2 must quote `s` so that it reads back as a string: it would resolve to
/// null/bool/int/float/timestamp, or it is a YAML 1.1 sexagesimal number (`1:20`).
pub fn v2_needs_quotes(s: &str) -> bool {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return true,
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "true" | "True"
        | "TRUE" | "false" | "False" | "FALSE" | "on" | "On" | "ON" | "off" | "Off" | "OFF" => {
            return true;
        }
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return true,
        _ => {}
    }
    match s.as_bytes()[0] {
        b'0'..=b'9' | b'+' | b'-' => {
            if parse_timestamp(s).is_some() || is_base60_float(s) {
                return true;
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            go_parse_int(&plain).is_some()
                || go_parse_uint(&plain).is_some()
                || (is_yaml_style_float(&plain) && plain.parse::<f64>().is_ok())
                || plain
                    .strip_prefix("0b")
                    .is_some_and(|r| i64::from_str_radix(r, 2).is_ok())
                || plain
                    .strip_prefix("-0b")
                    .is_some_and(|r| i64::from_str_radix(r, 2).is_ok())
        }
        b'.' => parse_go_float(s).is_some(),
        _ => false,
    }
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        match i - start {
            1 => {}
            2 if b[start] <= b'5' => {}
            _ => return false,
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// How a number prints after the v3 -> JSON -> v2 round trip.
///
/// Go's JSON encoder writes floats in `%f` form unless tiny or huge (then `%e`); v2 reads the
/// text back as an int when it has no fraction or exponent, else as a float printed with
/// `strconv.FormatFloat(f, 'g', -1, 64)`.
pub fn format_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if f == f.trunc() && (abs < 1e21) {
        // JSON `%f` of an integral float has no '.', so v2 reads an integer (or, past u64,
        // a float again).
        if abs < 9.2e18 {
            return (f as i64).to_string();
        }
        if f > 0.0 && f < 1.8e19 {
            return (f as u64).to_string();
        }
    }
    go_format_g(f)
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits that round-trip, in exponent
/// form when the exponent is below -4 or at least 6 (Go's threshold for shortest `%g`),
/// with at least two exponent digits (`1e+06`, `1e-05`).
fn go_format_g(f: f64) -> String {
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let dp = (exp + 1) as usize;
        if digits.len() <= dp {
            out.push_str(&digits);
            for _ in digits.len()..dp {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..dp]);
            out.push('.');
            out.push_str(&digits[dp..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_typing_follows_go_yaml_v3() {
        assert_eq!(resolve_plain("017"), Value::from(15));
        assert_eq!(resolve_plain("1_000"), Value::from(1000));
        assert_eq!(resolve_plain("yes"), Value::from("yes"));
        assert_eq!(resolve_plain("0x1F"), Value::from(31));
        assert_eq!(
            resolve_plain("2001-12-14"),
            Value::from("2001-12-14T00:00:00Z")
        );
        assert_eq!(resolve_plain("1.5"), Value::from(1.5));
        assert_eq!(resolve_plain("a1"), Value::from("a1"));
    }

    #[test]
    fn v2_quoting() {
        for s in [
            "1", "yes", "y", "Off", "0o17", "1e3", ".5", "12:30", "1_000", "0b101",
        ] {
            assert!(v2_needs_quotes(s), "{s}");
        }
        for s in ["NaN", "<<", "a1", "-", "1.2.3", "~x"] {
            assert!(!v2_needs_quotes(s), "{s}");
        }
    }

    #[test]
    fn floats_print_like_go() {
        let f = |x: f64| format_number(&Number::from_f64(x).unwrap());
        assert_eq!(f(1.0), "1");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(1234567.5), "1.2345675e+06");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(1e21), "1e+21");
    }
}

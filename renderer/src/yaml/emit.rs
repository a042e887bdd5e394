//! YAML output byte-identical to `kubectl kustomize`.
//!
//! kustomize prints each object with `sigs.k8s.io/yaml.JSONToYAML`, i.e. go-yaml v2 (a port
//! of libyaml's emitter) marshalling a `map[interface{}]interface{}`. The rules below were
//! taken from that emitter and checked against `kubectl kustomize` v5.5.0:
//!
//! * Mapping keys are sorted with go-yaml's "natural" order ([`key_less`]): digit runs
//!   compare numerically, non-letters sort before letters.
//! * Block style everywhere, indent 2. A sequence that is a mapping value is not indented
//!   (`key:\n- a`); a sequence inside a sequence is (`- - a\n  - b`).
//! * Empty mappings and sequences print in flow style: `{}` and `[]`.
//! * Strings: text containing `\n` asks for literal style (`|`, with `-`/`+` chomping and
//!   an indentation indicator `2` when the text starts with a space or break). Text that
//!   would read back as another type (`"1"`, `"true"`, `"yes"`, `"~"`, `"1:20"`,
//!   timestamps) asks for double quotes. Everything else asks for plain style. The
//!   emitter's scalar analysis then downgrades: plain -> single quotes when the text starts
//!   with an indicator, has `: ` or ` #`, or leading/trailing spaces; single/literal ->
//!   double quotes when the text has non-printable characters (tabs, control characters,
//!   characters outside the BMP), or a space right before a line break.
//! * Plain, single- and double-quoted scalars longer than 80 columns are folded at a space
//!   once the column passes 80; continuation lines are indented two more than the key.
//! * Numbers go through JSON, so `1.0` prints as `1`; see [`super::scalar::format_number`].
//! * Keys longer than 128 bytes (or spanning lines) print as `? key` / `: value`.
//! * A value starting with a BOM has every character escaped (`"\uFEFF\x62..."`): go-yaml's
//!   `is_bom` looks at the start of the value, not the current character.
//! * U+0085 (NEL) is left raw by Go's JSON encoder and then folded by go-yaml's reader: one
//!   NEL (with the blanks around it) becomes a space, `n` NELs become `n-1` newlines.
//! * C1 controls and U+FFFE/U+FFFF make kubectl fail ("control characters are not
//!   allowed"); [`unprintable`] finds them so the engine can fail the same way.
//!
//! Elsewhere in the engine, because of the same round trip: annotation values always print
//! as the text that was written (`a: 1.50` -> `"1.50"`), and label/annotation keys that YAML
//! 1.1 reads as non-strings (`n`, `yes`, `1`) make kubectl fail.

use std::cmp::Ordering;

use serde_json::Value;

use super::scalar::{format_number, v2_needs_quotes};

const BEST_WIDTH: usize = 80;
const BEST_INDENT: usize = 2;

/// One document as `kubectl kustomize` prints it (ends with a newline, no `---`).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::with_capacity(1024);
    write_yaml(&mut out, value);
    out
}

/// [`to_yaml`], appended to `out`.
fn write_yaml(out: &mut String, value: &Value) {
    let mut e = Emitter {
        out: std::mem::take(out),
        column: 0,
    };
    match value {
        Value::Object(m) if !m.is_empty() => e.mapping(m, 0, false),
        Value::Array(a) if !a.is_empty() => e.sequence(a, 0, false),
        other => {
            e.inline_value(other, 0, false);
            e.newline();
        }
    }
    *out = e.out;
}

/// A stream of documents separated by `---`, as `kubectl kustomize` prints a build.
pub fn to_yaml_stream<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let values: Vec<&Value> = values.into_iter().collect();
    // Objects print independently: chunks print on all cores and are joined in order.
    let parts = crate::par::map_chunks(&values, 64, |chunk| {
        let mut out = String::new();
        for (i, v) in chunk.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            write_yaml(&mut out, v);
        }
        out
    });
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(p);
    }
    out
}

/// The first string in `value` (key or value) that kubectl cannot print: Go's JSON encoder
/// leaves C1 controls and U+FFFE/U+FFFF raw, and go-yaml's reader then rejects them.
pub fn unprintable(value: &Value) -> Option<&str> {
    // Every such character is encoded with bytes >= 0x7f: ASCII text is skipped quickly.
    let bad = |s: &str| {
        s.bytes().any(|b| b >= 0x7f)
            && s.chars()
                .any(|c| matches!(c as u32, 0x7f..=0x84 | 0x86..=0x9f | 0xfffe | 0xffff))
    };
    match value {
        Value::String(s) if bad(s) => Some(s),
        Value::Array(a) => a.iter().find_map(unprintable),
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            if bad(k) {
                Some(k.as_str())
            } else {
                unprintable(v)
            }
        }),
        _ => None,
    }
}

/// go-yaml v2's key order for string keys (`keyList.Less`).
///
/// The comparison is not transitive for some digit runs (`a1b`, `a2`, `a10`; leading zeros),
/// and kubectl sorts keys taken from a Go map in random order, so its output for such maps
/// varies from run to run; any order we give is one kubectl also prints.
pub fn key_less(a: &str, b: &str) -> bool {
    key_cmp(a, b) == Ordering::Less
}

pub fn key_cmp(a: &str, b: &str) -> Ordering {
    // Keys are nearly always ASCII: compare bytes then, without collecting chars.
    if a.is_ascii() && b.is_ascii() {
        return cmp_units(a.as_bytes(), b.as_bytes());
    }
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    cmp_units(&ar, &br)
}

fn cmp_units<T: Copy + Into<char> + PartialEq>(ar: &[T], br: &[T]) -> Ordering {
    let ch = |x: T| -> char { x.into() };
    let less = |x: bool| if x { Ordering::Less } else { Ordering::Greater };
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let (ac, bc) = (ch(ar[i]), ch(br[i]));
        let al = ac.is_alphabetic();
        let bl = bc.is_alphabetic();
        if al && bl {
            return ac.cmp(&bc);
        }
        if al || bl {
            return less(bl);
        }
        let digit = |c: T| ch(c).is_ascii_digit();
        let (mut an, mut bn) = (0i64, 0i64);
        if ac == '0' || bc == '0' {
            let mut j = i;
            while j > 0 && digit(ar[j - 1]) {
                j -= 1;
                if ch(ar[j]) != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && digit(ar[ai]) {
            an = an
                .wrapping_mul(10)
                .wrapping_add(ch(ar[ai]) as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && digit(br[bi]) {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(ch(br[bi]) as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return less(an < bn);
        }
        if ai != bi {
            return less(ai < bi);
        }
        return ac.cmp(&bc);
    }
    ar.len().cmp(&br.len())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Emitter {
    out: String,
    /// Characters (not bytes) written on the current line, as libyaml counts columns.
    column: usize,
}

impl Emitter {
    fn push_str(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }
    fn push(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }
    fn newline(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }
    fn pad(&mut self, indent: usize) {
        while self.column < indent {
            self.push(' ');
        }
    }

    fn mapping(&mut self, m: &serde_json::Map<String, Value>, indent: usize, inline: bool) {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort_by(|a, b| key_cmp(a, b));
        for (i, k) in keys.into_iter().enumerate() {
            if !(i == 0 && inline) {
                self.pad(indent);
            }
            let v = &m[k];
            let key = normalize(k);
            // libyaml writes keys longer than 128 bytes or spanning lines as `? key`.
            if key.len() > 128 || analyze(&key).multiline {
                self.push_str("? ");
                self.string(&key, indent + BEST_INDENT, false);
                self.end_line();
                self.pad(indent);
                self.push(':');
                match v {
                    Value::Object(c) if !c.is_empty() => {
                        self.push(' ');
                        self.mapping(c, indent + BEST_INDENT, true);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        self.push(' ');
                        self.sequence(a, indent + BEST_INDENT, true);
                    }
                    _ => {
                        self.push(' ');
                        self.inline_value(v, indent + BEST_INDENT, false);
                        self.end_line();
                    }
                }
                continue;
            }
            self.string(&key, indent + BEST_INDENT, true);
            self.push(':');
            match v {
                Value::Object(c) if !c.is_empty() => {
                    self.newline();
                    self.mapping(c, indent + BEST_INDENT, false);
                }
                Value::Array(a) if !a.is_empty() => {
                    self.newline();
                    self.sequence(a, indent, false);
                }
                _ => {
                    self.push(' ');
                    self.inline_value(v, indent + BEST_INDENT, false);
                    self.end_line();
                }
            }
        }
    }

    fn sequence(&mut self, a: &[Value], indent: usize, inline: bool) {
        for (i, v) in a.iter().enumerate() {
            if !(i == 0 && inline) {
                self.pad(indent);
            }
            self.push_str("- ");
            match v {
                Value::Object(c) if !c.is_empty() => self.mapping(c, indent + BEST_INDENT, true),
                Value::Array(c) if !c.is_empty() => self.sequence(c, indent + BEST_INDENT, true),
                _ => {
                    self.inline_value(v, indent + BEST_INDENT, false);
                    self.end_line();
                }
            }
        }
    }

    /// After a scalar: literal scalars may already have ended their last line.
    fn end_line(&mut self) {
        if self.column != 0 {
            self.newline();
        }
    }

    fn inline_value(&mut self, v: &Value, indent: usize, key: bool) {
        match v {
            Value::Null => self.push_str("null"),
            Value::Bool(b) => self.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => self.push_str(&format_number(n)),
            Value::String(s) => self.string(&normalize(s), indent, key),
            Value::Object(_) => self.push_str("{}"),
            Value::Array(_) => self.push_str("[]"),
        }
    }

    fn string(&mut self, s: &str, indent: usize, key: bool) {
        let requested = if s.contains('\n') {
            Style::Literal
        } else if v2_needs_quotes(s) {
            Style::Double
        } else {
            Style::Plain
        };
        let a = analyze(s);
        let mut style = requested;
        if key && a.multiline {
            style = Style::Double;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && key)) {
            style = Style::Single;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || key) {
            style = Style::Double;
        }
        let allow_breaks = !key;
        match style {
            Style::Plain => self.plain(s, indent, allow_breaks),
            Style::Single => self.single(s, indent, allow_breaks),
            Style::Double => self.double(s, indent, allow_breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn write_indent(&mut self, indent: usize) {
        self.newline();
        self.pad(indent);
    }

    fn plain(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        // Folding needs the column to pass 80; most values end well before.
        if s.is_ascii() && self.column + s.len() <= BEST_WIDTH + 1 {
            self.out.push_str(s);
            self.column += s.len();
            return;
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_space {
                    self.write_indent(indent);
                } else {
                    self.push(c);
                }
                spaces = true;
            } else {
                self.push(c);
                spaces = false;
            }
        }
    }

    fn single(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.push('\'');
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                    && !next_space
                {
                    self.write_indent(indent);
                } else {
                    self.push(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.newline();
                }
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.pad(indent);
                }
                if c == '\'' {
                    self.push('\'');
                }
                self.push(c);
                spaces = false;
                breaks = false;
            }
        }
        if breaks {
            self.pad(indent);
        }
        self.push('\'');
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.newline();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn double(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        // go-yaml's `is_bom` looks at the start of the value, not at the current character, so
        // a value starting with a BOM has every character escaped.
        let bom = s.starts_with('\u{feff}');
        self.push('"');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if bom || !is_printable(c) || is_break(c) || c == '"' || c == '\\' {
                self.push('\\');
                match c {
                    '\0' => self.push('0'),
                    '\x07' => self.push('a'),
                    '\x08' => self.push('b'),
                    '\t' => self.push('t'),
                    '\n' => self.push('n'),
                    '\x0b' => self.push('v'),
                    '\x0c' => self.push('f'),
                    '\r' => self.push('r'),
                    '\x1b' => self.push('e'),
                    '"' => self.push('"'),
                    '\\' => self.push('\\'),
                    '\u{85}' => self.push('N'),
                    '\u{a0}' => self.push('_'),
                    '\u{2028}' => self.push('L'),
                    '\u{2029}' => self.push('P'),
                    _ => {
                        let v = c as u32;
                        if v <= 0xff {
                            self.push_str(&format!("x{v:02X}"));
                        } else if v <= 0xffff {
                            self.push_str(&format!("u{v:04X}"));
                        } else {
                            self.push_str(&format!("U{v:08X}"));
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                {
                    self.write_indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.push('\\');
                    }
                } else {
                    self.push(c);
                }
                spaces = true;
            } else {
                self.push(c);
                spaces = false;
            }
        }
        self.push('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.push('|');
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.push(char::from(b'0' + BEST_INDENT as u8));
        }
        match chars.last() {
            None => self.push('-'),
            Some(&last) if !is_break(last) => self.push('-'),
            Some(_) if chars.len() == 1 => self.push('+'),
            Some(_) => {
                if is_break(chars[chars.len() - 2]) {
                    self.push('+');
                }
            }
        }
        self.newline();
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.pad(indent);
                }
                self.push(c);
                breaks = false;
            }
        }
    }
}

/// What a string becomes on its way through JSON: Go's encoder leaves U+0085 (NEL) raw, and
/// go-yaml then reads it as a line break inside a double-quoted scalar, folding it (with the
/// blanks around it) into a space, or into `n-1` newlines for `n` consecutive breaks.
fn normalize(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\u{85}') {
        return std::borrow::Cow::Borrowed(s);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '\t' || c == '\u{85}' {
            let start = i;
            let mut j = i;
            while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\u{85}') {
                j += 1;
            }
            let breaks = chars[start..j].iter().filter(|&&c| c == '\u{85}').count();
            if breaks == 0 {
                out.extend(&chars[start..j]);
            } else if breaks == 1 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', breaks - 1));
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    std::borrow::Cow::Owned(out)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's `is_printable`, which excludes everything outside the BMP.
fn is_printable(c: char) -> bool {
    let v = c as u32;
    v == 0x0a
        || (0x20..=0x7e).contains(&v)
        || (0xa0..=0xd7ff).contains(&v)
        || ((0xe000..=0xfffd).contains(&v) && v != 0xfeff)
}

struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, block context only.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_ws = true;
    let mut iter = s.chars().peekable();
    let mut i = 0;
    while let Some(c) = iter.next() {
        let next = iter.peek().copied();
        let last = next.is_none();
        let followed_by_ws = next.is_none_or(|n| matches!(n, ' ' | '\t') || is_break(n));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_ws => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_indicators = true,
                '#' if preceded_by_ws => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_ws = matches!(c, ' ' | '\t') || is_break(c);
        i += 1;
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_key_order() {
        let mut keys = vec!["a10", "a2", "b", "a", "_x", "A"];
        keys.sort_by(|a, b| key_cmp(a, b));
        assert_eq!(keys, vec!["_x", "A", "a", "a2", "a10", "b"]);
    }
}

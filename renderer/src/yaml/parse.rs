//! YAML text to `serde_json::Value` documents, with the position of every node.
//!
//! Scalars are typed the way kustomize's go-yaml v3 decoding types them (see
//! [`super::scalar`]); aliases are expanded and `<<` merge keys applied, as v3 does.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Value};

use super::scalar::resolve_plain;
use crate::limits;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// Positions of the nodes of one document, keyed by JSON pointer (RFC 6901; `""` is the
/// document root). For a mapping entry the position is that of its value node.
///
/// Every node has one, so the pointers are kept end to end in one string instead of one
/// allocation each (the node-by-node allocations were a large share of parsing time).
#[derive(Clone, Default)]
pub struct Positions {
    /// The pointers recorded, end to end (a pointer replaced or renamed stays, unused).
    text: String,
    /// (start, end) of a pointer in `text`, and its position; found by the pointer's hash.
    table: hashbrown::HashTable<(usize, usize, Pos)>,
}

fn pointer_hash(p: &str) -> u64 {
    use std::hash::BuildHasher;
    super::FxBuild::default().hash_one(p)
}

impl std::fmt::Debug for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Positions {
    pub fn get(&self, pointer: &str) -> Option<Pos> {
        let text = &self.text;
        self.table
            .find(pointer_hash(pointer), |&(a, b, _)| &text[a..b] == pointer)
            .map(|e| e.2)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, Pos)> {
        self.table.iter().map(|&(a, b, p)| (&self.text[a..b], p))
    }
    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
    /// Records (or replaces) the position at `pointer`.
    pub fn insert(&mut self, pointer: &str, pos: Pos) {
        let hash = pointer_hash(pointer);
        let text = &self.text;
        if let Some(e) = self
            .table
            .find_mut(hash, |&(a, b, _)| &text[a..b] == pointer)
        {
            e.2 = pos;
            return;
        }
        let start = self.text.len();
        self.text.push_str(pointer);
        let end = self.text.len();
        let text = &self.text;
        self.table
            .insert_unique(hash, (start, end, pos), |&(a, b, _)| {
                pointer_hash(&text[a..b])
            });
    }
    /// Keeps the positions whose pointer satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let text = &self.text;
        self.table.retain(|&mut (a, b, _)| keep(&text[a..b]));
    }
    /// Moves the positions at `from` and below to `to` (a key renamed after parsing).
    pub fn rename(&mut self, from: &str, to: &str) {
        let below = |p: &str| p == from || p.strip_prefix(from).is_some_and(|r| r.starts_with('/'));
        let moved: Vec<(String, Pos)> = self
            .iter()
            .filter(|(p, _)| below(p))
            .map(|(p, pos)| (format!("{to}{}", &p[from.len()..]), pos))
            .collect();
        self.retain(|p| !below(p));
        for (p, pos) in moved {
            self.insert(&p, pos);
        }
    }
}

/// Moves the entries of `map` keyed `from` or below it to `to`.
pub fn rename_pointers<V>(map: &mut super::FxHashMap<String, V>, from: &str, to: &str) {
    let below = |p: &str| p == from || p.strip_prefix(from).is_some_and(|r| r.starts_with('/'));
    let moved: Vec<String> = map.keys().filter(|p| below(p)).cloned().collect();
    for p in moved {
        let v = map.remove(&p).expect("key listed");
        map.insert(format!("{to}{}", &p[from.len()..]), v);
    }
}

/// One YAML document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub positions: Positions,
    /// Where the document's content starts.
    pub start: Pos,
    /// Plain mapping keys that go-yaml v3 types as something other than a string (`1:`,
    /// `true:`). They are kept as text here; kubectl cannot print such objects.
    pub non_string_keys: Vec<(Pos, String)>,
    /// Source text of plain scalars typed as numbers, booleans or null by YAML 1.2 or 1.1
    /// rules (`1`, `true`, `~`, `yes`), by JSON pointer: kustomize re-reads annotation values
    /// as the text that was written, and reads kustomization files with YAML 1.1 typing.
    pub raw_scalars: super::FxHashMap<String, String>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct YamlError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// Escapes one JSON-pointer segment.
pub fn escape_pointer(seg: &str) -> Cow<'_, str> {
    if seg.contains(['~', '/']) {
        Cow::Owned(seg.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(seg)
    }
}

/// What a mapping key written twice means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// go-yaml v3 (resources, patches): an error.
    Refuse,
    /// go-yaml v2 (kustomization files, read through sigs.k8s.io/yaml): the last one wins.
    LastWins,
}

/// Parses every document of `text`. Empty documents (only comments or nothing) yield
/// `Value::Null` and are kept so callers can decide (kustomize skips them).
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    parse_documents_with(text, Duplicates::Refuse)
}

/// [`parse_documents`], with a choice of what a duplicate mapping key means.
pub fn parse_documents_with(
    text: &str,
    duplicates: Duplicates,
) -> Result<Vec<Document>, YamlError> {
    check_characters(text)?;
    let mut b = Builder {
        duplicates,
        open_block_at_eof: unterminated_last_line(text),
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        positions: Default::default(),
        odd_keys: Vec::new(),
        raw: Default::default(),
        depth: 0,
        decoded: 0,
        aliased: 0,
        pointer_bytes: 0,
        pointer_budget: limits::POINTER_BYTES_BASE
            .saturating_add(text.len().saturating_mul(limits::POINTER_BYTES_PER_BYTE)),
    };
    let mut docs = Vec::new();
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                (b.decoded, b.aliased) = (0, 0);
                let (ev, span) = b.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    docs.push(Document {
                        value: Value::Null,
                        positions: Positions::default(),
                        start: pos(&span),
                        non_string_keys: vec![],
                        raw_scalars: Default::default(),
                    });
                    continue;
                }
                let mut ptr = String::new();
                let value = b.node(ev, span, &mut ptr)?;
                if let Err((total, limit)) = limits::charge_nodes(b.decoded) {
                    return Err(err(
                        &span,
                        format!(
                            "the render parsed {total} YAML nodes with this document, more than {limit}"
                        ),
                    ));
                }
                docs.push(Document {
                    value,
                    positions: std::mem::take(&mut b.positions),
                    start: pos(&span),
                    non_string_keys: std::mem::take(&mut b.odd_keys),
                    raw_scalars: std::mem::take(&mut b.raw),
                });
            }
            other => {
                return Err(err(&span, format!("unexpected YAML event {other:?}")));
            }
        }
    }
    Ok(docs)
}

/// Character offset of the input's last line when it has content and no line break after
/// it. A block scalar whose content runs into such a line gets no final line break from
/// go-yaml (clip and keep add the break only when one was read), where the YAML spec, and
/// saphyr, add one.
fn unterminated_last_line(text: &str) -> Option<usize> {
    if text.ends_with(['\n', '\r']) {
        return None;
    }
    let start = text.rfind(['\n', '\r']).map_or(0, |i| i + 1);
    if text[start..].trim_matches([' ', '\t']).is_empty() {
        return None;
    }
    Some(text[..start].chars().count())
}

/// go-yaml's reader refuses control characters anywhere in the input, even inside quotes.
fn check_characters(text: &str) -> Result<(), YamlError> {
    let bad = |c: char| !matches!(c as u32, 0x09 | 0x0a | 0x0d | 0x20..=0x7e | 0x85 | 0xa0..=0xd7ff | 0xe000..=0xfffd | 0x10000..);
    if !text.chars().any(bad) {
        return Ok(());
    }
    for (n, line) in text.split('\n').enumerate() {
        if let Some((col, _)) = line.chars().enumerate().find(|&(_, c)| bad(c)) {
            return Err(YamlError {
                line: n as u32 + 1,
                col: col as u32 + 1,
                message: "control characters are not allowed".into(),
            });
        }
    }
    Ok(())
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line() as u32,
        col: span.start.col() as u32 + 1,
    }
}

fn err(span: &Span, message: String) -> YamlError {
    let p = pos(span);
    YamlError {
        line: p.line,
        col: p.col,
        message,
    }
}

fn scan_err(e: ScanError) -> YamlError {
    YamlError {
        line: e.marker().line() as u32,
        col: e.marker().col() as u32 + 1,
        message: e.info().to_string(),
    }
}

/// Deep documents would otherwise overflow the stack on adversarial input.
const MAX_DEPTH: usize = 512;

/// go-yaml v3's guard against alias bombs ("billion laughs"): once a document has decoded
/// more than 1000 nodes, more than 100 of them through aliases, the share decoded through
/// aliases may not exceed 99% (falling to 10% between 400k and 4M decoded nodes).
fn excessive_aliasing(decoded: usize, aliased: usize) -> bool {
    const LOW: f64 = 400_000.0;
    const HIGH: f64 = 4_000_000.0;
    if aliased <= 100 || decoded <= 1000 {
        return false;
    }
    let d = decoded as f64;
    let allowed = if d <= LOW {
        0.99
    } else if d >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((d - LOW) / (HIGH - LOW))
    };
    aliased as f64 / d > allowed
}

struct Builder<'a> {
    duplicates: Duplicates,
    /// Byte offset where the input's last line starts when that line has content and no
    /// line break after it (see [`unterminated_last_line`]).
    open_block_at_eof: Option<usize>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored values with the number of nodes each expands to.
    anchors: HashMap<usize, (Value, usize)>,
    positions: Positions,
    odd_keys: Vec<(Pos, String)>,
    raw: super::FxHashMap<String, String>,
    depth: usize,
    /// Nodes of the current document so far, counting each alias as its expansion.
    decoded: usize,
    /// Of those, nodes decoded through aliases.
    aliased: usize,
    /// Bytes of node paths recorded (positions, raw scalars) for the whole input.
    pointer_bytes: usize,
    pointer_budget: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(x)) => Ok(x),
            Some(Err(e)) => Err(scan_err(e)),
            None => Err(YamlError {
                line: 0,
                col: 0,
                message: "unexpected end of YAML".into(),
            }),
        }
    }

    /// Expands alias `id`, refusing alias bombs before copying anything.
    #[inline(never)]
    fn alias(&mut self, id: usize, span: &Span) -> Result<&Value, YamlError> {
        let Some((v, n)) = self.anchors.get(&id) else {
            return Err(err(span, "unknown anchor".into()));
        };
        self.decoded += n;
        self.aliased += n;
        if excessive_aliasing(self.decoded, self.aliased) {
            return Err(err(span, "document contains excessive aliasing".into()));
        }
        Ok(v)
    }

    /// Kept out of [`Self::node`] so its frame stays small: `node` recurses once per level of
    /// nesting, up to [`MAX_DEPTH`], on the caller's stack.
    #[inline(never)]
    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        span: &Span,
        ptr: &str,
    ) -> Result<Value, YamlError> {
        let mut v = scalar_value(text, style, tag).map_err(|m| err(span, m))?;
        if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
            && self
                .open_block_at_eof
                .is_some_and(|last| span.end.index() > last)
            && let Value::String(s) = &mut v
            && s.ends_with('\n')
        {
            s.pop();
        }
        if style == ScalarStyle::Plain
            && tag.is_none()
            && (!v.is_string() || super::scalar::v2_needs_quotes(text))
        {
            self.record(ptr, span)?;
            self.raw.insert(ptr.to_string(), text.to_string());
        }
        if anchor > 0 {
            self.anchors.insert(anchor, (v.clone(), 1));
        }
        Ok(v)
    }

    /// Counts the bytes of one recorded node path against the input's budget: without it a
    /// long key over many leaves costs key length × leaves.
    fn record(&mut self, ptr: &str, span: &Span) -> Result<(), YamlError> {
        self.pointer_bytes += ptr.len();
        if self.pointer_bytes > self.pointer_budget {
            return Err(err(
                span,
                format!(
                    "document too large: its node paths add up to more than {} bytes (long keys over many values)",
                    self.pointer_budget
                ),
            ));
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span, ptr: &mut String) -> Result<Value, YamlError> {
        self.record(ptr, &span)?;
        self.positions.insert(ptr, pos(&span));
        let first = self.decoded;
        if !matches!(ev, Event::Alias(_)) {
            self.decoded += 1;
        }
        if self.decoded > limits::MAX_NODES {
            return Err(err(
                &span,
                format!("document has more than {} nodes", limits::MAX_NODES),
            ));
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.scalar(&text, style, anchor, tag.as_deref(), &span, ptr)
            }
            Event::Alias(id) => self.alias(id, &span).cloned(),
            Event::SequenceStart(anchor, _) => {
                self.enter(&span)?;
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&items.len().to_string());
                    items.push(self.node(ev, sp, ptr)?);
                    ptr.truncate(len);
                }
                self.depth -= 1;
                let v = Value::Array(items);
                if anchor > 0 {
                    self.anchors
                        .insert(anchor, (v.clone(), self.decoded - first));
                }
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                self.enter(&span)?;
                let v = Value::Object(self.mapping(ptr)?);
                self.depth -= 1;
                if anchor > 0 {
                    self.anchors
                        .insert(anchor, (v.clone(), self.decoded - first));
                }
                Ok(v)
            }
            other => Err(err(&span, format!("unexpected YAML event {other:?}"))),
        }
    }

    fn enter(&mut self, span: &Span) -> Result<(), YamlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(span, "YAML nested too deeply".into()));
        }
        Ok(())
    }

    fn mapping(&mut self, ptr: &mut String) -> Result<Map<String, Value>, YamlError> {
        let mut map = Map::new();
        let mut merges: Vec<Map<String, Value>> = Vec::new();
        loop {
            let (kev, kspan) = self.next()?;
            if matches!(kev, Event::MappingEnd) {
                break;
            }
            let (key, is_merge) = match &kev {
                Event::Scalar(text, style, _, tag) => {
                    self.decoded += 1;
                    let merge = text == "<<" && *style == ScalarStyle::Plain && tag.is_none();
                    if !merge
                        && !matches!(
                            scalar_value(text, *style, tag.as_deref()),
                            Ok(Value::String(_))
                        )
                    {
                        self.odd_keys.push((pos(&kspan), text.to_string()));
                    }
                    (key_text(text, *style, tag.as_deref()), merge)
                }
                Event::Alias(id) => (value_as_key(self.alias(*id, &kspan)?), false),
                _ => return Err(err(&kspan, "complex mapping keys are not supported".into())),
            };
            if key.len() > limits::MAX_KEY_BYTES {
                return Err(err(
                    &kspan,
                    format!(
                        "mapping key too long: {} bytes, the limit is {}",
                        key.len(),
                        limits::MAX_KEY_BYTES
                    ),
                ));
            }
            let (vev, vspan) = self.next()?;
            let len = ptr.len();
            ptr.push('/');
            ptr.push_str(&escape_pointer(&key));
            if !is_merge && map.contains_key(&key) && self.duplicates == Duplicates::LastWins {
                // The earlier value is replaced: so are the positions of its nodes.
                let below = format!("{ptr}/");
                self.positions.retain(|p| !p.starts_with(&below));
                self.raw.retain(|p, _| p != ptr && !p.starts_with(&below));
            }
            let value = self.node(vev, vspan, ptr)?;
            ptr.truncate(len);
            if is_merge {
                match value {
                    Value::Object(m) => merges.push(m),
                    Value::Array(items) => {
                        for it in items {
                            match it {
                                Value::Object(m) => merges.push(m),
                                _ => {
                                    return Err(err(&kspan, "map merge requires maps".into()));
                                }
                            }
                        }
                    }
                    _ => return Err(err(&kspan, "map merge requires a map".into())),
                }
                continue;
            }
            if map.contains_key(&key) && self.duplicates == Duplicates::Refuse {
                return Err(err(&kspan, format!("mapping key {key:?} already defined")));
            }
            map.insert(key, value);
        }
        // Explicit keys win over merged ones; earlier merge sources win over later ones.
        for m in merges {
            for (k, v) in m {
                map.entry(k).or_insert(v);
            }
        }
        Ok(map)
    }
}

/// Map keys become JSON object keys, so every key is text; v3 would decode `1: x` to an int
/// key, which json.Marshal then prints as "1".
fn key_text(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> String {
    match scalar_value(text, style, tag) {
        Ok(v) => value_as_key(&v),
        Err(_) => text.to_string(),
    }
}

fn value_as_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Number(n) => super::scalar::format_number(n),
        other => other.to_string(),
    }
}

fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    // Non-core tags: v3 decodes the scalar by its plain resolution, so only core tags matter.
    if let Some(tag) = tag
        && (tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!")
    {
        return match tag.suffix.as_str() {
            "str" => Ok(Value::String(text.to_string())),
            "null" => Ok(Value::Null),
            "bool" | "int" | "float" => {
                let v = resolve_plain(text);
                let ok = match tag.suffix.as_str() {
                    "bool" => v.is_boolean(),
                    "int" => v.is_i64() || v.is_u64(),
                    _ => v.is_number(),
                };
                if ok {
                    Ok(v)
                } else {
                    Err(format!("cannot decode {text:?} as !!{}", tag.suffix))
                }
            }
            _ => Ok(Value::String(text.to_string())),
        };
    }
    Ok(match style {
        ScalarStyle::Plain => resolve_plain(text),
        _ => Value::String(text.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_types() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - {c: 'y'}\n---\n# empty\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value["a"], Value::from(1));
        assert_eq!(docs[0].positions.get("/a"), Some(Pos { line: 1, col: 4 }));
        assert_eq!(
            docs[0].positions.get("/b/1/c"),
            Some(Pos { line: 4, col: 9 })
        );
        assert!(docs[1].value.is_null());
    }

    #[test]
    fn aliases_and_merges() {
        let docs = parse_documents("a: &x {p: 1}\nb:\n  <<: *x\n  q: 2\n").unwrap();
        assert_eq!(docs[0].value["b"]["p"], Value::from(1));
        assert_eq!(docs[0].value["b"]["q"], Value::from(2));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut bomb = String::from("a0: &a0 [lol]\n");
        for l in 1..10 {
            bomb.push_str(&format!(
                "a{l}: &a{l} [{}]\n",
                vec![format!("*a{}", l - 1); 9].join(", ")
            ));
        }
        let e = parse_documents(&bomb).unwrap_err();
        assert!(e.message.contains("excessive aliasing"), "{e}");
        // Ordinary reuse is fine.
        let mut ok = String::from("base: &b {x: 1, y: [1, 2, 3]}\n");
        for i in 0..200 {
            ok.push_str(&format!("k{i}: {{<<: *b, z: {i}}}\n"));
        }
        assert_eq!(
            parse_documents(&ok).unwrap()[0].value["k7"]["y"][2],
            Value::from(3)
        );
    }

    #[test]
    fn errors_have_lines() {
        let e = parse_documents("a: 1\nb: [\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
        let e = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}

//! The `sops` metadata block: recipients, MAC, and which values are encrypted.

use serde_json::{Map, Value, json};

use super::SopsError;

/// The age stanza of one recipient: the data key, age-encrypted and ASCII-armored.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeStanza {
    pub recipient: String,
    pub enc: String,
}

/// Which values sops encrypts (at most one rule is set; none means `_unencrypted` suffix).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub unencrypted_suffix: Option<String>,
    pub encrypted_suffix: Option<String>,
    pub unencrypted_regex: Option<String>,
    pub encrypted_regex: Option<String>,
    pub mac_only_encrypted: bool,
}

/// The rule sops applies when a file names none.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

#[derive(Debug, Clone)]
pub(crate) struct CompiledRules {
    rules: Rules,
    unencrypted_regex: Option<regex::Regex>,
    encrypted_regex: Option<regex::Regex>,
}

impl Rules {
    pub(crate) fn compile(&self, file: &str) -> Result<CompiledRules, SopsError> {
        let set = [
            &self.unencrypted_suffix,
            &self.encrypted_suffix,
            &self.unencrypted_regex,
            &self.encrypted_regex,
        ]
        .iter()
        .filter(|r| r.as_deref().is_some_and(|s| !s.is_empty()))
        .count();
        if set > 1 {
            return Err(SopsError::malformed(
                file,
                "more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex",
            ));
        }
        let mut rules = self.clone();
        if set == 0 {
            rules.unencrypted_suffix = Some(DEFAULT_UNENCRYPTED_SUFFIX.to_string());
        }
        // sops matches with Go's RE2 syntax; the regex crate accepts the same syntax.
        let compile = |r: &Option<String>| -> Result<Option<regex::Regex>, SopsError> {
            r.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    regex::Regex::new(s)
                        .map_err(|e| SopsError::malformed(file, format!("regex {s:?}: {e}")))
                })
                .transpose()
        };
        Ok(CompiledRules {
            unencrypted_regex: compile(&rules.unencrypted_regex)?,
            encrypted_regex: compile(&rules.encrypted_regex)?,
            rules,
        })
    }
}

impl CompiledRules {
    /// sops `shouldBeEncrypted`: every key of the path counts, not only the last.
    pub(crate) fn should_encrypt(&self, path: &[String]) -> bool {
        let r = &self.rules;
        let mut encrypted = true;
        if let Some(suffix) = r.unencrypted_suffix.as_deref().filter(|s| !s.is_empty())
            && path.iter().any(|k| k.ends_with(suffix))
        {
            encrypted = false;
        }
        if let Some(suffix) = r.encrypted_suffix.as_deref().filter(|s| !s.is_empty()) {
            encrypted = path.iter().any(|k| k.ends_with(suffix));
        }
        if let Some(re) = &self.unencrypted_regex
            && path.iter().any(|k| re.is_match(k))
        {
            encrypted = false;
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|k| re.is_match(k));
        }
        encrypted
    }

    pub(crate) fn mac_only_encrypted(&self) -> bool {
        self.rules.mac_only_encrypted
    }
}

#[derive(Debug, Clone)]
pub struct Metadata {
    pub age: Vec<AgeStanza>,
    /// Recipients of other kinds (PGP fingerprints, KMS keys), named in errors only.
    pub others: Vec<String>,
    pub last_modified: String,
    pub mac: String,
    pub rules: Rules,
    pub version: String,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Metadata {
    /// Reads the `sops` mapping (already unflattened for dotenv and INI).
    pub fn from_value(file: &str, v: &Value) -> Result<Metadata, SopsError> {
        let m = v
            .as_object()
            .ok_or_else(|| SopsError::malformed(file, "the `sops` entry is not a mapping"))?;
        let get = |k: &str| m.get(k).and_then(text).filter(|s| !s.is_empty());
        let mut groups: Vec<&Map<String, Value>> = vec![m];
        if let Some(kg) = m.get("key_groups").and_then(Value::as_array) {
            if kg.len() > 1 {
                return Err(SopsError::Unsupported {
                    file: file.into(),
                    message: format!("{} key groups (Shamir secret sharing)", kg.len()),
                });
            }
            groups.extend(kg.iter().filter_map(Value::as_object));
        }
        let mut age = Vec::new();
        let mut others = Vec::new();
        for g in groups {
            for a in g.get("age").and_then(Value::as_array).into_iter().flatten() {
                let (Some(recipient), Some(enc)) = (
                    a.get("recipient").and_then(text),
                    a.get("enc").and_then(text),
                ) else {
                    return Err(SopsError::malformed(
                        file,
                        "age entry without recipient/enc",
                    ));
                };
                age.push(AgeStanza { recipient, enc });
            }
            for (kind, id) in [
                ("pgp", "fp"),
                ("kms", "arn"),
                ("gcp_kms", "resource_id"),
                ("azure_kv", "vault_url"),
                ("hc_vault", "key_name"),
                ("hckms", "key_id"),
            ] {
                for k in g.get(kind).and_then(Value::as_array).into_iter().flatten() {
                    let name = k.get(id).and_then(text).unwrap_or_default();
                    others.push(format!("{kind} {name}"));
                }
            }
        }
        let mac_only_encrypted = match m.get("mac_only_encrypted") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        if get("unencrypted_comment_regex").is_some() || get("encrypted_comment_regex").is_some() {
            return Err(SopsError::Unsupported {
                file: file.into(),
                message: "encrypted_comment_regex / unencrypted_comment_regex".into(),
            });
        }
        Ok(Metadata {
            age,
            others,
            last_modified: get("lastmodified")
                .ok_or_else(|| SopsError::malformed(file, "no lastmodified"))?,
            mac: get("mac").ok_or_else(|| SopsError::malformed(file, "no mac"))?,
            rules: Rules {
                unencrypted_suffix: get("unencrypted_suffix"),
                encrypted_suffix: get("encrypted_suffix"),
                unencrypted_regex: get("unencrypted_regex"),
                encrypted_regex: get("encrypted_regex"),
                mac_only_encrypted,
            },
            version: get("version").unwrap_or_default(),
        })
    }

    /// All recipients, for messages.
    pub fn recipients(&self) -> Vec<String> {
        self.age
            .iter()
            .map(|a| a.recipient.clone())
            .chain(self.others.iter().cloned())
            .collect()
    }

    /// The mapping as sops writes it (keys in the order sops' YAML store prints them).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        let age: Vec<Value> = self
            .age
            .iter()
            .map(|a| json!({"recipient": a.recipient, "enc": a.enc}))
            .collect();
        m.insert("age".into(), Value::Array(age));
        m.insert("lastmodified".into(), json!(self.last_modified));
        m.insert("mac".into(), json!(self.mac));
        let r = &self.rules;
        for (k, v) in [
            ("unencrypted_suffix", &r.unencrypted_suffix),
            ("encrypted_suffix", &r.encrypted_suffix),
            ("unencrypted_regex", &r.unencrypted_regex),
            ("encrypted_regex", &r.encrypted_regex),
        ] {
            if let Some(v) = v.as_deref().filter(|s| !s.is_empty()) {
                m.insert(k.into(), json!(v));
            }
        }
        if r.mac_only_encrypted {
            m.insert("mac_only_encrypted".into(), json!(true));
        }
        m.insert("version".into(), json!(self.version));
        Value::Object(m)
    }
}

const MAP_SEP: &str = "__map_";
const LIST_SEP: &str = "__list_";

/// Flattened metadata keys of dotenv files (`age__list_0__map_recipient`) back into a tree
/// (sops `stores/flatten.go`).
pub fn unflatten(file: &str, items: &[(String, String)]) -> Result<Value, SopsError> {
    let mut root = Value::Object(Map::new());
    for (key, value) in items {
        let mut node = &mut root;
        let tokens = tokenize(key);
        for (i, tok) in tokens.iter().enumerate() {
            let last = i + 1 == tokens.len();
            let fresh = || {
                if last {
                    Value::String(value.clone())
                } else if matches!(tokens[i + 1], Token::List(_)) {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                }
            };
            node = match tok {
                Token::Map(k) => {
                    let Value::Object(m) = node else {
                        return Err(SopsError::malformed(file, format!("metadata key {key}")));
                    };
                    m.entry(k.clone()).or_insert_with(fresh)
                }
                Token::List(n) => {
                    let Value::Array(a) = node else {
                        return Err(SopsError::malformed(file, format!("metadata key {key}")));
                    };
                    if *n > 1024 {
                        return Err(SopsError::malformed(file, format!("metadata key {key}")));
                    }
                    while a.len() <= *n {
                        a.push(Value::Null);
                    }
                    if a[*n].is_null() {
                        a[*n] = fresh();
                    }
                    &mut a[*n]
                }
            };
        }
    }
    Ok(root)
}

/// The inverse of [`unflatten`], for writing dotenv files.
pub fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}{MAP_SEP}{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}{LIST_SEP}{i}"), v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

enum Token {
    Map(String),
    List(usize),
}

fn tokenize(path: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = path;
    let mut current = Token::Map(String::new());
    loop {
        let next = [MAP_SEP, LIST_SEP]
            .iter()
            .filter_map(|sep| rest.find(sep).map(|i| (i, *sep)))
            .min_by_key(|(i, _)| *i);
        let (end, sep) = match next {
            Some((i, sep)) => (i, Some(sep)),
            None => (rest.len(), None),
        };
        let text = &rest[..end];
        tokens.push(match current {
            Token::Map(_) => Token::Map(text.to_string()),
            Token::List(_) => Token::List(text.parse().unwrap_or(0)),
        });
        match sep {
            Some(sep) => {
                current = if sep == MAP_SEP {
                    Token::Map(String::new())
                } else {
                    Token::List(0)
                };
                rest = &rest[end + sep.len()..];
            }
            None => return tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_round_trips() {
        let v = json!({"age": [{"recipient": "age1x", "enc": "a\nb"}], "mac": "m"});
        let mut flat = Vec::new();
        flatten("", &v, &mut flat);
        assert!(flat.contains(&("age__list_0__map_recipient".into(), "age1x".into())));
        assert_eq!(unflatten("f", &flat).unwrap(), v);
    }

    #[test]
    fn rules_follow_sops() {
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let default = Rules::default().compile("f").unwrap();
        assert!(default.should_encrypt(&path(&["data", "password"])));
        assert!(!default.should_encrypt(&path(&["a_unencrypted", "b"])));
        let regex = Rules {
            encrypted_regex: Some("^(data|stringData)$".into()),
            ..Default::default()
        }
        .compile("f")
        .unwrap();
        assert!(regex.should_encrypt(&path(&["data", "password"])));
        assert!(!regex.should_encrypt(&path(&["metadata", "name"])));
        let two = Rules {
            encrypted_regex: Some("a".into()),
            encrypted_suffix: Some("b".into()),
            ..Default::default()
        };
        assert!(two.compile("f").is_err());
    }
}

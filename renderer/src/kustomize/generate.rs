//! `configMapGenerator` and `secretGenerator`: objects from the `generators` module, merged
//! into the build by behavior, with provenance pointing at the generator's lines.

use std::collections::HashMap;

use serde_json::Value;

use super::error::{ErrorKind, RenderError};
use super::kfile::{KFile, is_within, resolve};
use super::resource::{Mark, ResId, ResMap, Resource};
use crate::generators::{
    GeneratorArgs, GeneratorOptions, apply_behavior, generate_config_map, generate_secret,
    parse_file_source, parse_literal,
};
use crate::provenance::{Origin, SetBy, push_key};
use crate::source::{Source, SourceError};
use crate::yaml::scalar::v2_needs_quotes;

pub fn run(source: &dyn Source, k: &KFile, rm: &mut ResMap) -> Result<(), RenderError> {
    let global: Option<GeneratorOptions> = match k.get("generatorOptions") {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            k.error(
                ErrorKind::Yaml,
                "/generatorOptions",
                format!("generatorOptions: {e}"),
            )
        })?),
        None => None,
    };
    let mut generated_any = false;
    for field in ["configMapGenerator", "secretGenerator"] {
        let Some(v) = k.get(field) else { continue };
        let Value::Array(entries) = v else {
            return Err(k.error(
                ErrorKind::Yaml,
                &format!("/{field}"),
                format!("{field} must be a list"),
            ));
        };
        for (i, e) in entries.iter().enumerate() {
            let ptr = format!("/{field}/{i}");
            let args: GeneratorArgs = serde_json::from_value(e.clone())
                .map_err(|err| k.error(ErrorKind::Yaml, &ptr, format!("{field}: {err}")))?;
            let opts = [args.options.as_ref(), global.as_ref()];
            for (kind, map) in opts
                .into_iter()
                .flatten()
                .flat_map(|o| [("labels", &o.labels), ("annotations", &o.annotations)])
            {
                if let Some(key) = map
                    .iter()
                    .flatten()
                    .map(|(k, _)| k)
                    .find(|k| v2_needs_quotes(k))
                {
                    return Err(k.error(
                        ErrorKind::Invalid,
                        &ptr,
                        super::transform::yaml11_key(kind, key),
                    ));
                }
            }
            for (j, lit) in args.literals.iter().enumerate() {
                if let Some((key, _)) = parse_literal(lit)
                    && !matches!(crate::yaml::scalar::resolve_plain(&key), Value::String(_))
                {
                    return Err(k.error(
                        ErrorKind::Invalid,
                        &format!("{ptr}/literals/{j}"),
                        super::target::non_string_key(&key),
                    ));
                }
            }
            let mut read = |rel: &str| -> Result<Vec<u8>, SourceError> {
                let path = resolve(&k.dir, rel)
                    .filter(|p| is_within(&k.dir, p))
                    .ok_or_else(|| SourceError::EscapesRoot {
                        path: rel.to_string(),
                    })?;
                source.read(&path)
            };
            let generated = if field == "configMapGenerator" {
                generate_config_map(&args, global.as_ref(), &mut read)
            } else {
                generate_secret(&args, global.as_ref(), &mut read)
            }
            .map_err(|err| k.error(ErrorKind::Invalid, &ptr, err.to_string()))?;
            generated_any = true;
            let id = ResId::of(&generated.object);
            let existing = rm.items.iter().position(|r| r.any_id(|x| x == &id));
            let merged = apply_behavior(
                existing.map(|i| (&rm.items[i].value, rm.items[i].needs_hash)),
                generated,
            )
            .map_err(|err| k.error(ErrorKind::Invalid, &ptr, err.to_string()))?;
            let marks = generator_marks(k, &ptr, &args, &merged.object);
            match existing {
                Some(i) => {
                    let r = &mut rm.items[i];
                    r.value = merged.object;
                    r.needs_hash = merged.needs_hash;
                    let depth = r.depth();
                    for (p, o) in marks {
                        r.marks.insert(p, Mark { origin: o, depth });
                    }
                }
                None => {
                    let r = Resource {
                        value: merged.object,
                        marks: marks
                            .into_iter()
                            .map(|(p, o)| {
                                (
                                    p,
                                    Mark {
                                        origin: o,
                                        depth: 0,
                                    },
                                )
                            })
                            .collect(),
                        chain: vec![],
                        file: k.path.clone(),
                        previous_ids: vec![],
                        needs_hash: merged.needs_hash,
                        prefixes: vec![],
                        suffixes: vec![],
                        origin: super::resource::ResOrigin::Generator(
                            if field == "configMapGenerator" {
                                "ConfigMapGenerator"
                            } else {
                                "SecretGenerator"
                            },
                        ),
                        transformations: vec![],
                        var_refs: vec![],
                    };
                    rm.append_all(vec![r], &k.path, k.pos(&ptr).line)?;
                }
            }
        }
    }
    if generated_any {
        rm.reindex();
    }
    Ok(())
}

/// Each data key points at the literal, file or env entry it came from; the rest of the
/// object at the generator's `name`.
fn generator_marks(
    k: &KFile,
    ptr: &str,
    args: &GeneratorArgs,
    obj: &Value,
) -> HashMap<String, Origin> {
    let origin = |p: &str| {
        let pos = k.pos(p);
        Origin {
            file: k.path.clone(),
            line: pos.line,
            col: pos.col,
            set_by: SetBy::Generator,
        }
    };
    let mut key_origin: HashMap<String, Origin> = HashMap::new();
    for (j, lit) in args.literals.iter().enumerate() {
        if let Some((key, _)) = parse_literal(lit) {
            key_origin.insert(key, origin(&format!("{ptr}/literals/{j}")));
        }
    }
    for (j, f) in args.files.iter().enumerate() {
        if let Ok((key, _)) = parse_file_source(f) {
            key_origin.insert(key, origin(&format!("{ptr}/files/{j}")));
        }
    }
    let env_origin = if !args.envs.is_empty() {
        Some(origin(&format!("{ptr}/envs/0")))
    } else if !args.env.is_empty() {
        Some(origin(&format!("{ptr}/env")))
    } else {
        None
    };
    let whole = origin(&format!("{ptr}/name"));
    let mut marks = HashMap::new();
    for field in ["data", "binaryData"] {
        if let Some(Value::Object(m)) = obj.get(field) {
            for key in m.keys() {
                let o = key_origin
                    .get(key)
                    .cloned()
                    .or_else(|| env_origin.clone())
                    .unwrap_or_else(|| whole.clone());
                let mut p = field.to_string();
                push_key(&mut p, key, false);
                marks.insert(p, o);
            }
        }
    }
    for f in ["apiVersion", "kind", "metadata.name", "type", "immutable"] {
        marks.insert(f.to_string(), whole.clone());
    }
    marks
}

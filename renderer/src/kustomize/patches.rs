//! `patchesStrategicMerge`, `patches` and `patchesJson6902`: loading patch text, choosing
//! targets, applying with the `patch` module, and recording provenance.

use std::sync::Arc;

use serde_json::Value;

use super::error::{ErrorKind, RenderError};
use super::kfile::{KFile, is_within, read_text, resolve};
use super::resource::{ResId, ResMap, marks_from_positions};
use super::select::Selector;
use crate::patch::{PatchOptions, apply_json6902, apply_strategic_merge_owned};
use crate::provenance::SetBy;
use crate::provenance::{element_segment, push_key, push_segment};
use crate::schema::Schema;
use crate::source::{EntryKind, Source};
use crate::yaml::{Document, parse_documents};

/// Patch text with where it came from.
struct PatchText {
    file: Arc<str>,
    /// Added to line numbers inside `docs` (inline patches live inside the kustomization).
    line_offset: u32,
    docs: Vec<Document>,
}

fn load(
    source: &dyn Source,
    k: &KFile,
    pointer: &str,
    path: Option<&str>,
    inline: Option<&str>,
) -> Result<PatchText, RenderError> {
    let at = k.pos(pointer);
    let (file, text, line_offset) = match (path, inline) {
        (Some(p), _) => {
            let full = resolve(&k.dir, p)
                .filter(|f| is_within(&k.dir, f))
                .ok_or_else(|| {
                    k.error(
                        ErrorKind::OutsideRoot,
                        pointer,
                        format!("security; file '{p}' is not in or below '{}'", k.dir),
                    )
                })?;
            if source.kind(&full) != Some(EntryKind::File) {
                return Err(k.error(
                    ErrorKind::Missing,
                    pointer,
                    format!("patch file {p:?}: no such file"),
                ));
            }
            (Arc::from(full.as_str()), read_text(source, &full)?, 0)
        }
        (None, Some(t)) => {
            // The parser places a block scalar at its first content line, so the inline text's
            // line 1 is the value's line either way.
            let offset = at.line.saturating_sub(1);
            (k.path.clone(), t.to_string(), offset)
        }
        (None, None) => {
            return Err(k.error(
                ErrorKind::Invalid,
                pointer,
                "patch has neither path nor patch",
            ));
        }
    };
    let docs = parse_documents(&text).map_err(|e| {
        RenderError::new(ErrorKind::Yaml, &file, e.line + line_offset, e.message)
            .at(e.line + line_offset, e.col)
    })?;
    if let Some((p, key)) = docs.iter().find_map(|d| d.non_string_keys.first()) {
        let line = p.line + line_offset;
        return Err(RenderError::new(
            ErrorKind::Yaml,
            &file,
            line,
            super::target::non_string_key(key),
        )
        .at(line, p.col));
    }
    let docs = docs.into_iter().filter(|d| !d.value.is_null()).collect();
    Ok(PatchText {
        file,
        line_offset,
        docs,
    })
}

fn shift(marks: &mut super::resource::Marks, offset: u32, depth: usize) {
    for m in marks.values_mut() {
        m.origin.line += offset;
        m.depth = depth;
    }
}

/// Applies one strategic-merge patch document to the selected resources (or, untargeted,
/// to the one resource with the patch's id).
fn apply_smp(
    schema: &Schema,
    rm: &mut ResMap,
    pt: &PatchText,
    doc: &Document,
    target: Option<&Selector>,
    options: PatchOptions,
) -> Result<(), RenderError> {
    let indices: Vec<usize> = match target {
        Some(sel) => (0..rm.items.len())
            .filter(|&i| sel.matches(&rm.items[i]))
            .collect(),
        None => {
            let id = ResId::of(&doc.value);
            let found: Vec<usize> = (0..rm.items.len())
                .filter(|&i| rm.items[i].any_id(|x| x == &id))
                .collect();
            if found.len() != 1 {
                let what = if found.is_empty() {
                    "no matches"
                } else {
                    "multiple matches"
                };
                return Err(RenderError::new(
                    ErrorKind::Invalid,
                    &pt.file,
                    doc.start.line + pt.line_offset,
                    format!("{what} for Id {id}; failed to find unique target for patch"),
                ));
            }
            found
        }
    };
    let mut patch_value = doc.value.clone();
    super::resource::stringify_annotations(&mut patch_value, &doc.raw_scalars, "");
    let mut deleted = Vec::new();
    let patched = indices.clone();
    for i in indices {
        let r = &mut rm.items[i];
        if options.allow_name_change || options.allow_kind_change {
            r.store_previous_id();
        }
        // A failed patch fails the render, so the object can be moved into the merge.
        let value = std::mem::take(&mut r.value);
        let out =
            apply_strategic_merge_owned(value, &patch_value, schema, target.is_some(), options)
                .map_err(|e| {
                    RenderError::new(
                        ErrorKind::Invalid,
                        &pt.file,
                        doc.start.line + pt.line_offset,
                        e.to_string(),
                    )
                })?;
        match out {
            None => deleted.push(i),
            Some(v) => {
                r.value = v;
                let depth = r.depth();
                let mut marks =
                    marks_from_positions(&doc.value, &doc.positions, "", &pt.file, SetBy::Patch);
                shift(&mut marks, pt.line_offset, depth);
                // The patch's own identity fields select the target; they set nothing.
                for f in ["apiVersion", "kind", "metadata.name", "metadata.namespace"] {
                    marks.remove(f);
                }
                r.marks.extend(marks);
            }
        }
    }
    for i in deleted.into_iter().rev() {
        rm.items.remove(i);
    }
    if !patched.is_empty() {
        rm.reindex();
    }
    Ok(())
}

/// `patchesStrategicMerge:` entries are file paths or inline YAML.
pub fn strategic_merge_entries(
    schema: &Schema,
    source: &dyn Source,
    k: &KFile,
    rm: &mut ResMap,
) -> Result<(), RenderError> {
    let Some(Value::Array(entries)) = k.get("patchesStrategicMerge") else {
        return Ok(());
    };
    for (i, e) in entries.iter().enumerate() {
        let ptr = format!("/patchesStrategicMerge/{i}");
        let Some(s) = e.as_str() else {
            return Err(k.error(
                ErrorKind::Yaml,
                &ptr,
                "patchesStrategicMerge entries must be strings",
            ));
        };
        let is_file = !s.contains('\n')
            && resolve(&k.dir, s).is_some_and(|p| source.kind(&p) == Some(EntryKind::File));
        let pt = if is_file {
            load(source, k, &ptr, Some(s), None)?
        } else {
            load(source, k, &ptr, None, Some(s))?
        };
        for doc in &pt.docs {
            apply_smp(schema, rm, &pt, doc, None, PatchOptions::default())?;
        }
    }
    Ok(())
}

/// `patches:` — each entry a strategic-merge or JSON 6902 patch, optionally targeted.
pub fn patch_entries(
    schema: &Schema,
    source: &dyn Source,
    k: &KFile,
    rm: &mut ResMap,
) -> Result<(), RenderError> {
    let Some(v) = k.get("patches") else {
        return Ok(());
    };
    let Value::Array(entries) = v else {
        return Err(k.error(ErrorKind::Yaml, "/patches", "patches must be a list"));
    };
    for (i, e) in entries.iter().enumerate() {
        let ptr = format!("/patches/{i}");
        let path = e
            .get("path")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        // kustomize's PatchTransformer trims the inline text (`strings.TrimSpace`), so a
        // block scalar on its last line ends at the end of the text. Leading space is kept:
        // it changes no value, and line numbers count from it.
        let inline = e
            .get("patch")
            .and_then(Value::as_str)
            .map(str::trim_end)
            .filter(|s| !s.trim_start().is_empty());
        let text_ptr = if path.is_some() {
            format!("{ptr}/path")
        } else {
            format!("{ptr}/patch")
        };
        let pt = load(source, k, &text_ptr, path, inline)?;
        let target = match e.get("target").filter(|t| !t.is_null()) {
            Some(t) => Some(
                Selector::from_value(t)
                    .map_err(|m| k.error(ErrorKind::Invalid, &format!("{ptr}/target"), m))?,
            ),
            None => None,
        };
        let opt = |f: &str| {
            e.pointer(&format!("/options/{f}"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let options = PatchOptions {
            allow_name_change: opt("allowNameChange"),
            allow_kind_change: opt("allowKindChange"),
        };
        if pt.docs.len() == 1 && pt.docs[0].value.is_array() {
            json6902(k, rm, &pt, &pt.docs[0], target.as_ref(), &text_ptr)?;
            continue;
        }
        for doc in &pt.docs {
            if !doc.value.is_object() {
                return Err(k.error(
                    ErrorKind::Invalid,
                    &text_ptr,
                    "unable to parse SM or JSON patch",
                ));
            }
            apply_smp(schema, rm, &pt, doc, target.as_ref(), options)?;
        }
    }
    Ok(())
}

/// `patchesJson6902:` — always targeted.
pub fn json6902_entries(
    source: &dyn Source,
    k: &KFile,
    rm: &mut ResMap,
) -> Result<(), RenderError> {
    let Some(Value::Array(entries)) = k.get("patchesJson6902") else {
        return Ok(());
    };
    for (i, e) in entries.iter().enumerate() {
        let ptr = format!("/patchesJson6902/{i}");
        let path = e
            .get("path")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let inline = e
            .get("patch")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let text_ptr = if path.is_some() {
            format!("{ptr}/path")
        } else {
            format!("{ptr}/patch")
        };
        let pt = load(source, k, &text_ptr, path, inline)?;
        let target = e.get("target").ok_or_else(|| {
            k.error(
                ErrorKind::Invalid,
                &ptr,
                "patchesJson6902 entry needs a target",
            )
        })?;
        let sel = Selector::from_value(target)
            .map_err(|m| k.error(ErrorKind::Invalid, &format!("{ptr}/target"), m))?;
        let Some(doc) = pt.docs.first() else { continue };
        json6902(k, rm, &pt, doc, Some(&sel), &text_ptr)?;
    }
    Ok(())
}

fn json6902(
    k: &KFile,
    rm: &mut ResMap,
    pt: &PatchText,
    doc: &Document,
    target: Option<&Selector>,
    pointer: &str,
) -> Result<(), RenderError> {
    let Some(sel) = target else {
        return Err(k.error(
            ErrorKind::Invalid,
            pointer,
            "unable to apply json patch without target",
        ));
    };
    let Value::Array(ops) = &doc.value else {
        return Err(k.error(
            ErrorKind::Invalid,
            pointer,
            "a JSON 6902 patch must be a list of operations",
        ));
    };
    for r in rm.items.iter_mut().filter(|r| sel.matches(r)) {
        r.value = apply_json6902(&r.value, &doc.value).map_err(|e| {
            RenderError::new(
                ErrorKind::Invalid,
                &pt.file,
                doc.start.line + pt.line_offset,
                e.to_string(),
            )
        })?;
        let depth = r.depth();
        for (i, op) in ops.iter().enumerate() {
            let (Some(path), Some(value)) =
                (op.get("path").and_then(Value::as_str), op.get("value"))
            else {
                continue;
            };
            let Some(field) = pointer_to_field_path(&r.value, path) else {
                continue;
            };
            let base = format!("/{i}/value");
            let mut marks = marks_under(value, &doc.positions, &base, &field, &pt.file);
            shift(&mut marks, pt.line_offset, depth);
            r.marks.extend(marks);
        }
    }
    rm.reindex();
    Ok(())
}

/// The field path of a JSON pointer inside `v` (which must already hold the value).
fn pointer_to_field_path(v: &Value, pointer: &str) -> Option<String> {
    let mut cur = v;
    let mut path = String::new();
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match cur {
            Value::Object(m) => {
                let root = path.is_empty();
                push_key(&mut path, &seg, root);
                cur = m.get(&seg)?;
            }
            Value::Array(a) => {
                let i = if seg == "-" {
                    a.len().checked_sub(1)?
                } else {
                    seg.parse().ok()?
                };
                push_segment(&mut path, &element_segment(a, i));
                cur = a.get(i)?;
            }
            _ => return None,
        }
    }
    Some(path)
}

/// Marks for every leaf of an operation's value, re-rooted at `field`.
fn marks_under(
    value: &Value,
    positions: &crate::yaml::Positions,
    base_pointer: &str,
    field: &str,
    file: &Arc<str>,
) -> super::resource::Marks {
    let inner = marks_from_positions(value, positions, base_pointer, file, SetBy::Patch);
    inner
        .into_iter()
        .map(|(p, m)| {
            let full = if p.is_empty() {
                field.to_string()
            } else if p.starts_with('[') || field.is_empty() {
                format!("{field}{p}")
            } else {
                format!("{field}.{p}")
            };
            (full, m)
        })
        .collect()
}

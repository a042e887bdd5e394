//! `-o text|json|yaml` for the read-only commands: one data model per command, serialized
//! with stable camelCase names, or formatted as text by the command itself.

use std::fmt::Write as _;

use clap::ValueEnum;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    /// For people
    #[default]
    Text,
    /// For scripts; field names are stable
    Json,
    /// The JSON document as YAML
    Yaml,
}

/// Serializes `value` as JSON or YAML; `None` for text, which each command formats itself.
pub fn serialize<T: Serialize>(value: &T, format: DataFormat) -> Option<String> {
    let json = serde_json::to_value(value).expect("reports serialize to JSON");
    match format {
        DataFormat::Text => None,
        DataFormat::Json => {
            let mut text = serde_json::to_string_pretty(&json).expect("JSON values serialize");
            text.push('\n');
            Some(text)
        }
        DataFormat::Yaml => Some(renderer::yaml::to_yaml(&json)),
    }
}

/// Left-aligned columns two spaces apart, trailing blanks trimmed. `paint(row, column, text)`
/// styles a padded body cell after widths are measured, so colour never skews the alignment.
pub fn table<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    paint: impl Fn(usize, usize, &str) -> String,
) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_string);
    for (i, row) in std::iter::once(&header).chain(rows).enumerate() {
        let line = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(col, (cell, w))| {
                let padded = format!("{cell:w$}");
                if i == 0 {
                    padded
                } else {
                    paint(i - 1, col, &padded)
                }
            })
            .collect::<Vec<_>>()
            .join("  ");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// "3m ago", "in 1h12m": how long from `now` to `then`, coarse enough to read at a glance.
pub fn relative(then: Timestamp, now: Timestamp) -> String {
    let delta: SignedDuration = then.duration_since(now);
    let secs = delta.as_secs();
    let span = human(secs.unsigned_abs());
    if secs < 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if d > 0 {
        let _ = write!(out, "{d}d{h}h");
    } else if h > 0 {
        let _ = write!(out, "{h}h{m}m");
    } else if m > 0 {
        let _ = write!(out, "{m}m{s}s");
    } else {
        let _ = write!(out, "{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(relative(t("2026-11-26T11:57:00Z"), now), "3m0s ago");
        assert_eq!(relative(t("2026-11-26T13:12:05Z"), now), "in 1h12m");
        assert_eq!(relative(t("2026-11-24T10:00:00Z"), now), "2d2h ago");
        assert_eq!(relative(now, now), "in 0s");
    }

    #[test]
    fn table_aligns_by_characters_and_paints_after_padding() {
        let rows = [
            ["a→b".to_string(), "x".to_string()],
            ["long cell".to_string(), String::new()],
        ];
        let text = table(["ONE", "TWO"], &rows, |row, col, cell| {
            if col == 1 {
                format!("<{row}{cell}>")
            } else {
                cell.to_string()
            }
        });
        assert_eq!(
            text,
            "ONE        TWO\na→b        <0x  >\nlong cell  <1   >\n"
        );
    }

    #[test]
    fn text_is_left_to_the_command() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct R {
            tracked_ref: &'static str,
        }
        assert_eq!(
            serialize(
                &R {
                    tracked_ref: "main"
                },
                DataFormat::Text
            ),
            None
        );
        let json = serialize(
            &R {
                tracked_ref: "main",
            },
            DataFormat::Json,
        )
        .unwrap();
        assert!(json.contains("\"trackedRef\": \"main\""), "{json}");
        let yaml = serialize(
            &R {
                tracked_ref: "main",
            },
            DataFormat::Yaml,
        )
        .unwrap();
        assert_eq!(yaml, "trackedRef: main\n");
    }
}

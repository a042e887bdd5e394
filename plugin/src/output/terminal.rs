//! Text from the cluster or from Git (annotations, status messages, object names) reaches the
//! terminal through the printer; escape sequences in it could clear the screen, move the
//! cursor over earlier lines, set the window title or plant hyperlinks. Everything printed is
//! passed through [`for_terminal`]: only colour (SGR) sequences survive, and only when colour
//! is on (the printer's own styling).

use std::borrow::Cow;

const ESC: char = '\u{1b}';

/// `text` without control characters other than line feed and tab, and without escape
/// sequences other than SGR (`ESC [ … m`) when `keep_colour`.
pub fn for_terminal(text: &str, keep_colour: bool) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| is_control(c) && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == ESC {
            match chars.peek().map(|&(_, n)| n) {
                Some('[') => {
                    chars.next();
                    // Parameters and intermediates, then one final byte.
                    let mut end = None;
                    for (i, n) in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&n) {
                            end = Some((i, n));
                            break;
                        }
                        if !('\u{20}'..='\u{3f}').contains(&n) {
                            break;
                        }
                    }
                    if let Some((i, 'm')) = end
                        && keep_colour
                    {
                        out.push_str(&text[start..=i]);
                    }
                }
                Some(']' | 'P' | '_' | '^' | 'X') => {
                    // OSC, DCS, APC, PM, SOS: up to BEL or ST (ESC \).
                    chars.next();
                    while let Some((_, n)) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == ESC && chars.peek().map(|&(_, x)| x) == Some('\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            }
            continue;
        }
        if c == '\n' || c == '\t' || !is_control(c) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// C0 controls, DEL and C1 controls (U+009B is a one-character CSI).
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_colour_survives_and_only_when_colour_is_on() {
        let hostile = "ok\u{1b}[2J\u{1b}[1;1Hx\u{1b}]0;pwned\u{7}y\u{1b}]8;;http://evil\u{1b}\\z\u{9b}31m\rw\u{1b}[31mred\u{1b}[0m\n\tend";
        assert_eq!(
            for_terminal(hostile, true),
            "okxyz31mw\u{1b}[31mred\u{1b}[0m\n\tend"
        );
        assert_eq!(for_terminal(hostile, false), "okxyz31mwred\n\tend");
        assert!(matches!(for_terminal("plain\n", false), Cow::Borrowed(_)));
        assert_eq!(
            for_terminal("unterminated \u{1b}[12", true),
            "unterminated "
        );
        assert_eq!(for_terminal("a\u{1b}", true), "a");
    }
}

//! What counts as visible text. A nickname or a message made only of characters that draw
//! nothing (zero-width and format characters, odd spaces, Hangul and Braille fillers) would
//! show as an empty name or an empty bubble, and a name with invisible characters inside can
//! pass for another person's. The categories come from the Unicode database (via
//! `unicode-properties`), not from a hand-kept list, so new format characters are covered too.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Characters that draw nothing, or nothing a reader can tell from a space.
pub fn is_invisible(c: char) -> bool {
    match c.general_category() {
        // Cf: zero-width space and joiners, direction marks, soft hyphen, tag characters...
        GeneralCategory::Format
        | GeneralCategory::Control
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator
        | GeneralCategory::Unassigned => true,
        // Zs other than the plain space: no-break, ideographic, en/em spaces...
        GeneralCategory::SpaceSeparator => c != ' ',
        // Letters and symbols whose glyph is blank by design, and combining marks that are
        // default-ignorable (grapheme joiner, variation selectors).
        _ => matches!(
            c,
            '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}' | '\u{034F}'
                | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{FE00}'..='\u{FE0F}'
                | '\u{E0100}'..='\u{E01EF}'
        ),
    }
}

/// Whether `text` shows nothing at all: empty once spaces and invisible characters are gone.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fillers_and_format_characters_are_blank() {
        for blank in [
            "",
            " ",
            "\u{3164}",
            "\u{00AD}",
            "\u{034F}",
            "\u{061C}",
            "\u{180E}",
            "\u{2800}",
            "\u{E0041}",
            "\u{3164}\u{200B}",
            " \u{200B} \u{FEFF}",
            "\u{3000}",
            "\u{2028}",
        ] {
            assert!(is_blank(blank), "{:?}", blank.escape_unicode().to_string());
        }
    }

    #[test]
    fn real_text_is_not() {
        for text in [
            "hi",
            " a ",
            "é",
            "日本",
            "😀",
            "a\u{200B}",
            "\u{0301}x",
            "-",
        ] {
            assert!(!is_blank(text), "{text:?}");
        }
    }
}

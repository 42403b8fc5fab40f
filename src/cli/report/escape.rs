//! Escaping for HTML text and attribute values (quoted with `"` or `'`), and for SVG, which
//! the page inlines. Every string that comes from the trail or the cluster passes through
//! [`escape`] before it is written into the page.

/// `&`, `<`, `>`, `"` and `'` as character references, and control characters (other than
/// tab and newline), which HTML does not allow, as U+FFFD. Safe in element text and in
/// quoted attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, ending in `…` when cut (before escaping).
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_in_text_become_character_references() {
        assert_eq!(
            escape("<script>alert('x')</script> & more"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"
        );
    }

    #[test]
    fn an_escaped_value_cannot_leave_its_attribute_quotes() {
        let hostile = r#"x" onmouseover="alert(1)' y='"#;
        let escaped = escape(hostile);
        assert!(!escaped.contains('"') && !escaped.contains('\''));
        assert_eq!(escaped, "x&quot; onmouseover=&quot;alert(1)&#39; y=&#39;");
    }

    #[test]
    fn ampersands_are_escaped_once_and_plain_text_is_unchanged() {
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(
            escape("rijkscloud-nl/gov-général"),
            "rijkscloud-nl/gov-général"
        );
    }

    #[test]
    fn control_characters_are_replaced_but_tabs_and_newlines_kept() {
        assert_eq!(
            escape("a\u{0}b\u{1b}[31mc\td\n"),
            "a\u{FFFD}b\u{FFFD}[31mc\td\n"
        );
    }

    #[test]
    fn shorten_cuts_long_text_with_an_ellipsis_on_a_character_boundary() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcdé", 4), "abc…");
        assert_eq!(shorten("ééééé", 3), "éé…");
    }
}

//! Nesting is bounded before the YAML parser runs, because the parser only refuses a deep
//! document after reading all of it, which a crafted document makes take minutes.

/// The deepest nesting of collections `plan` parses; Kubernetes objects stay far below it.
pub const MAX_NESTING: usize = 64;

/// Where the text nests collections deeper than [`MAX_NESTING`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Deep {
    pub(super) line: usize,
    pub(super) document: usize,
}

/// A scan of the text for nesting, before the YAML parser sees it: the parser reads a whole
/// document before it refuses one nested too deep, which takes seconds to minutes for a
/// document of brackets. Counts flow collections (`[`, `{`) outside quoted scalars, comments
/// and block scalars, and block sequences and complex keys opened on one line (`- - -`).
pub(super) fn too_deep(text: &str) -> Option<Deep> {
    let mut flow = 0usize;
    let mut quote: Option<u8> = None;
    let mut block_scalar: Option<usize> = None;
    let mut document = 1;
    let mut content = false;
    for (number, line) in text.split('\n').enumerate() {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        if let Some(parent) = block_scalar {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut rest = bytes;
        if quote.is_none() && flow == 0 {
            let marker = |m: &[u8]| {
                bytes.starts_with(m) && bytes.get(3).is_none_or(|b| b.is_ascii_whitespace())
            };
            if marker(b"---") {
                if content {
                    document += 1;
                    content = false;
                }
                rest = bytes.get(3..).unwrap_or_default();
            } else if marker(b"...") {
                continue;
            }
            // Block sequence entries and complex keys opened on one line: `- - - x`.
            let mut opened = 0;
            let mut tokens = rest.get(indent.min(rest.len())..).unwrap_or_default();
            while let [b'-' | b'?', b' ' | b'\t', tail @ ..] = tokens {
                opened += 1;
                tokens = tail;
                while let [b' ' | b'\t', tail @ ..] = tokens {
                    tokens = tail;
                }
            }
            if opened > MAX_NESTING {
                return Some(Deep {
                    line: number + 1,
                    document,
                });
            }
        }
        // Whether a quote or bracket here starts a node, and whether the text is inside a
        // plain scalar (in block context, where brackets and quotes are only text).
        let mut at_start = true;
        let mut plain = false;
        let mut previous: u8 = b' ';
        let mut index = 0;
        while let Some(&byte) = rest.get(index) {
            index += 1;
            if let Some(open) = quote {
                if open == b'"' && byte == b'\\' {
                    index += 1;
                } else if byte == open {
                    if open == b'\'' && rest.get(index) == Some(&b'\'') {
                        index += 1;
                    } else {
                        quote = None;
                        at_start = false;
                    }
                }
                previous = byte;
                continue;
            }
            if byte.is_ascii_whitespace() {
                previous = byte;
                continue;
            }
            if byte == b'#' && previous.is_ascii_whitespace() {
                break;
            }
            content = true;
            previous = byte;
            let blank_after = rest.get(index).is_none_or(u8::is_ascii_whitespace);
            if flow == 0 && plain {
                if byte == b':' && blank_after {
                    plain = false;
                    at_start = true;
                }
                continue;
            }
            match byte {
                b'"' | b'\'' if at_start => {
                    quote = Some(byte);
                }
                b'[' | b'{' if at_start || flow > 0 => {
                    flow += 1;
                    if flow > MAX_NESTING {
                        return Some(Deep {
                            line: number + 1,
                            document,
                        });
                    }
                    at_start = true;
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    at_start = false;
                }
                b',' if flow > 0 => at_start = true,
                b':' if blank_after || flow > 0 => at_start = true,
                b'-' | b'?' if blank_after => at_start = true,
                b'|' | b'>' if flow == 0 && at_start => {
                    block_scalar = Some(indent);
                    break;
                }
                // An anchor or a tag comes before the node it names.
                b'&' | b'!' if at_start => {
                    while rest.get(index).is_some_and(|b| {
                        !(b.is_ascii_whitespace() || (flow > 0 && b",[]{}".contains(b)))
                    }) {
                        index += 1;
                    }
                }
                _ => {
                    plain = flow == 0;
                    at_start = false;
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_collections_deeper_than_the_bound_are_found_before_parsing() {
        assert_eq!(
            too_deep(&"[".repeat(100_000)),
            Some(Deep {
                line: 1,
                document: 1
            })
        );
        assert_eq!(
            too_deep(&format!("a: 1\n---\nb: {}", "{a: ".repeat(65))),
            Some(Deep {
                line: 3,
                document: 2
            })
        );
        assert!(too_deep(&"- ".repeat(100_000)).is_some());
        for prefix in [
            "a: &anchor ",
            "a: !!seq ",
            "- ",
            "--- ",
            "a:\n  b: ",
            "[x, ",
        ] {
            let text = format!("{prefix}{}", "[".repeat(65));
            assert!(too_deep(&text).is_some(), "{text}");
        }
    }

    #[test]
    fn brackets_in_scalars_comments_and_block_scalars_are_not_nesting() {
        let text = format!(
            "a: '{0}'\nb: \"{0}\"\nc: x{0}\n# {0}\nd: |\n  {0}\n  {0}\ne: [don't, {{f: g}}]\n",
            "[".repeat(100)
        );
        assert_eq!(too_deep(&text), None);
        let nested = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(too_deep(&nested), None);
    }

    #[test]
    fn an_escaped_quote_does_not_end_a_quoted_scalar() {
        let text = format!("a: \"\\\" {0}\"\nb: 'it''s {0}'\n", "[".repeat(100));
        assert_eq!(too_deep(&text), None);
    }
}
